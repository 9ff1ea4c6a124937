"""nox sessions: ``analytic`` (CPU tests), ``lint``, ``bench``, and ``perf`` (GPU runners)."""

import nox

nox.options.sessions = ["lint", "analytic"]
nox.options.default_venv_backend = "venv"

TEST_EXTRAS = ".[dev,torch,onnx]"


@nox.session
def analytic(session: nox.Session) -> None:
    """The README's test command: every analytic test, no GPU needed."""
    session.install("-e", TEST_EXTRAS)
    session.run("pytest", "-m", "analytic", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def bench(session: nox.Session) -> None:
    """Print the analytic benchmarks' figures (no timing is asserted)."""
    session.install("-e", TEST_EXTRAS)
    session.run("pytest", "unit_tests/test_benchmarks.py", "--benchmark-only", *session.posargs)


@nox.session
def perf(session: nox.Session) -> None:
    """GPU regression suite. Placeholder until the measurement harness lands:
    runs the GPU-marked tests, which skip with a reason when no GPU is visible."""
    session.install("-e", ".[dev,torch,gpu]")
    session.run("pytest", "-m", "gpu", "perf_tests", *session.posargs)
