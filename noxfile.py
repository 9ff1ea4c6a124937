"""nox sessions: ``analytic`` (CPU tests), ``lint``, ``bench``, and ``perf`` (GPU runners)."""

import nox

nox.options.sessions = ["lint", "analytic"]
nox.options.default_venv_backend = "venv"

TEST_EXTRAS = ".[dev,torch,onnx]"
GPU_EXTRAS = ".[dev,torch,onnx,gpu]"


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
    """The GPU regression suite: measure, gate against baselines/<gpu>.json, write perf-results.json.

    ``nox -s perf -- --update-baselines`` records new baselines (measured twice, written
    only where the two runs agree); ``-- -n auto`` runs one xdist worker per visible GPU;
    ``-- --backend tensorrt`` fails instead of skipping when TensorRT is missing.
    """
    session.install("-e", GPU_EXTRAS)
    session.run("pytest", "-m", "gpu", "perf_tests", "--benchmark-json=perf-benchmark.json", *session.posargs)
