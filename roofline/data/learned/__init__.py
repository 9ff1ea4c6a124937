"""The learned utilization predictor's shipped features table (README.md here: how it is built)."""
