"""nox sessions: ``analytic`` (CPU tests), ``lint``, ``bench``, ``perf`` and ``gpu-smoke`` (GPU runners),
``perf-cpu`` (the GPU suite's flow on the CPU).

The GPU sessions install one CUDA stack (constraints/stacks.toml, kernels/stacks.py): the one named by
``-- --stack NAME`` or ``ROOFLINE_PERF_STACK``, else the first that fits the GPUs and driver nvidia-smi
reports. The choice is printed; a runner that fits no stack, or not the named one, ends the session in
one line before anything is installed.
"""

import subprocess
import sys
from pathlib import Path

import nox

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernels import stacks  # noqa: E402 - standard library only, importable before any install

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


def _stack(session: nox.Session) -> tuple[stacks.Stack, list[str]]:
    """The runner's stack and the arguments left for the command; one line and a failed session when the
    GPU, driver and stack do not fit."""
    try:
        requested, rest = stacks.split_stack_option(session.posargs)
        stack, why = stacks.choose(stacks.load_stacks(), stacks.query_gpus(), requested)
    except stacks.StackError as exc:
        session.error(str(exc))
    pins = stack.pins()
    chosen = ", ".join(f"{name} {pins[name]}" for name in ("torch", stack.tensorrt, "onnxruntime-gpu"))
    session.log(f"GPU stack {stack.name} (CUDA {stack.cuda}: {chosen}), {why}")
    return stack, rest


def _wants_tensorrt(args: list[str]) -> bool:
    return "--backend=tensorrt" in args or any(
        a == "--backend" and b == "tensorrt" for a, b in zip(args, args[1:], strict=False)
    )


def _install_stack(session: nox.Session, stack: stacks.Stack, require_tensorrt: bool) -> None:
    """The project and the stack's packages, then TensorRT on its own: its wheels fetch their libraries
    from pypi.nvidia.com, outside the package index, so it can fail where the rest installs. Then it is
    one line naming the package; the torch and ONNX Runtime backends work without it, and only a session
    that requires it (``--backend tensorrt``) stops."""
    constraints = ("-c", str(stack.constraints))
    session.install(*constraints, "-e", TEST_EXTRAS, *stacks.GPU_PACKAGES)
    package = f"{stack.tensorrt}=={stack.pins()[stack.tensorrt]}"
    python = Path(session.bin) / "python"
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *constraints, stack.tensorrt],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode == 0:
        session.log(f"installed {package}")
        return
    lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    cause = next((line for line in reversed(lines) if "error" in line.lower()), lines[-1] if lines else "")
    message = (
        f"{package} could not be installed (TensorRT's wheels download their libraries from "
        f"pypi.nvidia.com, outside the package index; pip: {cause[:200]})"
    )
    if require_tensorrt:
        session.error(f"{message}; --backend tensorrt needs it")
    session.warn(f"{message}; the TensorRT benchmarks skip, the torch and onnxruntime backends run")


@nox.session
def perf(session: nox.Session) -> None:
    """The GPU regression suite: measure, gate against baselines/<gpu>.json, write perf-results.json.

    ``nox -s perf -- --update-baselines`` records new baselines (measured twice, written unless the two
    differ by more than the gate's threshold); ``-- --stack NAME`` picks the CUDA stack; ``-- -n auto``
    runs one xdist worker per visible GPU (pytest-benchmark is off under xdist: read perf-results.json);
    ``-- --backend tensorrt`` fails instead of skipping when TensorRT is missing. A GPU is required:
    without a usable one the session fails in one line (``--require-gpu``).
    """
    stack, args = _stack(session)
    _install_stack(session, stack, require_tensorrt=_wants_tensorrt(args))
    distributed = any(a == "-n" or a.startswith(("-n", "--numprocesses")) for a in args)
    if distributed:
        session.log("under -n, pytest-benchmark is disabled: perf-results.json carries every entry")
    json_args = [] if distributed else ["--benchmark-json=perf-benchmark.json"]
    session.run("pytest", "-m", "gpu", "perf_tests", "--require-gpu", *json_args, *args)


@nox.session(name="gpu-smoke")
def gpu_smoke(session: nox.Session) -> None:
    """A new runner's self-check, in a few minutes: stack, torch backend at b1/b64, the timing loop and
    its host-bound rule, NVML telemetry, calibration microbenchmarks, and an update / A-A / forced
    slowdown cycle of the suite, as PASS/FAIL lines with figures (tools/gpu_smoke.py)."""
    stack, args = _stack(session)
    _install_stack(session, stack, require_tensorrt=False)
    session.run("python", "tools/gpu_smoke.py", "--stack", stack.name, *args)


@nox.session(name="perf-cpu")
def perf_cpu(session: nox.Session) -> None:
    """The GPU suite's whole flow on the CPU (CPU mode: perf_tests/manifest-cpu.toml, process CPU time),
    e.g. ``nox -s perf-cpu -- --update-baselines``; results say device "cpu" throughout."""
    session.install("-e", TEST_EXTRAS)
    session.run(
        "pytest", "-m", "gpu", "perf_tests", "--perf-device", "cpu",
        "--perf-results", "perf-results-cpu.json", "--benchmark-json=perf-results-cpu-benchmark.json",
        *session.posargs,
    )  # fmt: skip
