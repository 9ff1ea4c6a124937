"""Public measured throughput tables (README.md here: source, licence, what each file is)."""
