"""Which CUDA stack a GPU runner installs: torch / TensorRT / ONNX Runtime versions per GPU generation.

``constraints/stacks.toml`` lists the stacks (one pip constraints file each) in order of preference;
``nox -s perf`` asks nvidia-smi for the runner's GPUs and driver and takes the first stack that fits
every GPU (``choose``), or checks the one named by ``-- --stack NAME`` / ``ROOFLINE_PERF_STACK``. A
runner that fits no stack, or not the named one, ends the session with one line (``StackError``)
naming the GPU, the driver and what the stack needs, before anything is installed.

Why stacks at all: the newest torch, TensorRT 11 and onnxruntime-gpu wheels are CUDA 13 builds, which
need driver >= 580 and have no Volta code; TensorRT dropped Volta in 10.5 and PyTorch's CUDA 12.8
builds drop sm_70 from 2.11 (shared/DESIGN.md, "Facts about these machines"; the sources of each pin
are in its constraints file). A runner without a matching stack cannot start CUDA at all.

Standard library only: the noxfile imports this before any project dependency is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STACKS = ROOT / "constraints" / "stacks.toml"
STACK_ENV = "ROOFLINE_PERF_STACK"  # names the stack when no --stack is given
NVIDIA_SMI_QUERY = ("nvidia-smi", "--query-gpu=name,compute_cap,driver_version", "--format=csv,noheader")
#: What every stack installs besides the project's own extras (versions from its constraints file).
GPU_PACKAGES = ("torch", "torchvision", "onnxruntime-gpu", "nvidia-ml-py", "pytest-xdist")


class StackError(ValueError):
    """One line: which GPU, driver or stack does not fit, and what to do."""


def _version(text: str, what: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.strip().split("."))
    except ValueError:
        raise StackError(f"{what} {text!r} is not a dotted version number") from None


def _show(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


@dataclass(frozen=True)
class Gpu:
    """One GPU as nvidia-smi reports it."""

    name: str
    compute_capability: tuple[int, ...]
    driver: str  # as nvidia-smi prints it ("535.104.05": compared as numbers, shown as printed)

    def describe(self) -> str:
        return f"{self.name} (compute capability {_show(self.compute_capability)}, driver {self.driver})"


@dataclass(frozen=True)
class Stack:
    name: str
    constraints: Path
    cuda: str
    min_compute_capability: tuple[int, ...]
    max_compute_capability: tuple[int, ...]
    min_driver: str
    tensorrt: str  # the TensorRT distribution to install (tensorrt-cu12 / tensorrt-cu13)
    runners: str

    def pins(self) -> dict[str, str]:
        """``name==version`` lines of the constraints file, as {normalized name: version}."""
        pins = {}
        for line in self.constraints.read_text().splitlines():
            requirement = line.split("#", 1)[0].strip()
            if not requirement:
                continue
            name, sep, version = requirement.partition("==")
            if not sep:
                raise StackError(f"{self.constraints}: {requirement!r} is not an exact pin (name==version)")
            pins[_normalize(name)] = version.strip()
        return pins

    def mismatch(self, gpu: Gpu) -> str | None:
        """Why ``gpu`` cannot run this stack (None when it can)."""
        cc = gpu.compute_capability
        if not self.min_compute_capability <= cc <= self.max_compute_capability:
            return (
                f"{gpu.describe()}: stack {self.name} supports compute capability "
                f"{_show(self.min_compute_capability)} to {_show(self.max_compute_capability)}"
            )
        if _version(gpu.driver, f"{gpu.name}: driver") < _version(
            self.min_driver, f"stack {self.name} min_driver"
        ):
            return f"{gpu.describe()}: stack {self.name} (CUDA {self.cuda}) needs driver >= {self.min_driver}"
        return None


def _normalize(name: str) -> str:
    """PEP 503 name normalization (runs of -, _ and . are one -, lower case)."""
    out, last_dash = [], False
    for ch in name.strip().lower():
        dash = ch in "-_."
        if not (dash and last_dash):
            out.append("-" if dash else ch)
        last_dash = dash
    return "".join(out)


def load_stacks(path: Path = DEFAULT_STACKS) -> dict[str, Stack]:
    """The stacks of ``path``, in file (preference) order; StackError on a bad file."""
    try:
        raw = tomllib.loads(Path(path).read_text())["stack"]
        stacks = {}
        for name, table in raw.items():
            low, high = (_version(v, f"stack {name} compute_capability") for v in table["compute_capability"])
            _version(str(table["min_driver"]), f"stack {name} min_driver")
            stacks[name] = Stack(
                name=name, constraints=Path(path).parent / table["constraints"], cuda=str(table["cuda"]),
                min_compute_capability=low, max_compute_capability=high,
                min_driver=str(table["min_driver"]),
                tensorrt=table["tensorrt"], runners=table["runners"],
            )  # fmt: skip
    except (OSError, KeyError, TypeError, ValueError, tomllib.TOMLDecodeError) as exc:
        if isinstance(exc, StackError):
            raise
        raise StackError(f"{path} is not a valid stack list ({type(exc).__name__}: {exc})") from None
    return stacks


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """GPUs from ``nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader``."""
    gpus = []
    for line in text.strip().splitlines():
        fields = [f.strip() for f in line.rsplit(",", 2)]
        if len(fields) != 3:
            raise StackError(f"cannot read nvidia-smi's line {line!r} (expected: name, compute_cap, driver)")
        name, cc, driver = fields
        _version(driver, f"{name}: driver")  # a readable number now, not at the first comparison
        gpus.append(Gpu(name, _version(cc, f"{name}: compute capability"), driver))
    if not gpus:
        raise StackError(
            "nvidia-smi lists no GPU: the GPU suite needs one (the CPU mode does not: nox -s perf-cpu)"
        )
    return gpus


def query_gpus(run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> list[Gpu]:
    """The runner's GPUs from nvidia-smi; StackError (one line) when there is no driver or it fails."""
    if shutil.which(NVIDIA_SMI_QUERY[0]) is None and run is subprocess.run:
        raise StackError(
            "nvidia-smi not found: this runner has no NVIDIA driver, so no stack can run here "
            "(the CPU mode needs none: nox -s perf-cpu)"
        )
    try:
        done = run(list(NVIDIA_SMI_QUERY), capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise StackError(f"nvidia-smi failed to run: {exc}") from None
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise StackError(f"nvidia-smi failed (exit {done.returncode}): {tail}")
    return parse_nvidia_smi(done.stdout)


def choose(stacks: dict[str, Stack], gpus: Sequence[Gpu], requested: str | None = None) -> tuple[Stack, str]:
    """(stack, why it was chosen). ``requested`` must fit every GPU; otherwise the first stack that does.

    StackError names the GPU and what each candidate needs: a runner whose GPU or driver fits no stack
    cannot start CUDA, and installing anyway only moves the failure into every test.
    """
    if not gpus:
        raise StackError("no GPU to choose a stack for")
    if requested is not None:
        if requested not in stacks:
            raise StackError(f"unknown stack {requested!r}: choose one of {', '.join(stacks)}")
        stack = stacks[requested]
        problems = [p for p in map(stack.mismatch, gpus) if p]
        if problems:
            fitting = [s.name for s in stacks.values() if not any(map(s.mismatch, gpus))]
            hint = f"use --stack {fitting[0]}" if fitting else "no stack fits: update the driver"
            raise StackError(f"stack {requested} does not fit this runner: {problems[0]}; {hint}")
        return stack, "requested"
    for stack in stacks.values():
        if not any(stack.mismatch(gpu) for gpu in gpus):
            return stack, "chosen for " + "; ".join(g.describe() for g in gpus)
    reasons = "; ".join(p for s in stacks.values() for p in [s.mismatch(gpus[0])] if p)
    raise StackError(f"no stack fits this runner: {reasons}")


def split_stack_option(
    posargs: Sequence[str], env: dict[str, str] | None = None
) -> tuple[str | None, list[str]]:
    """(requested stack, the other arguments): ``--stack NAME`` or ``--stack=NAME`` in ``posargs``, else
    ``ROOFLINE_PERF_STACK`` from ``env``. The rest go to pytest unchanged."""
    env = os.environ if env is None else env
    requested, rest = None, []
    args = iter(posargs)
    for arg in args:
        if arg == "--stack":
            requested = next(args, None)
            if requested is None:
                raise StackError("--stack needs a name (see constraints/stacks.toml)")
        elif arg.startswith("--stack="):
            requested = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return requested or env.get(STACK_ENV) or None, rest
