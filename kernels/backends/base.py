"""The one small interface every runtime backend implements: build or load, launch, describe.

A backend owns its input and output buffers on the device (allocated by torch,
so every backend shares one allocator and one stream type) and enqueues one
inference per ``launch()`` on ``self.stream`` without synchronizing; the timing
loop in ``kernels.timing`` brackets blocks of launches with CUDA events. Where
the runtime allows it, ``build`` captures the launch in a CUDA graph so that
``launch()`` is one graph replay and host enqueue cost stays off the critical path.
"""

from __future__ import annotations

import importlib
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

# name -> "module:Class". Imported lazily: a backend's runtime (tensorrt, onnxruntime) may be absent.
REGISTRY = {
    "torch": "kernels.backends.torch_backend:TorchBackend",
    "tensorrt": "kernels.backends.tensorrt:TensorRTBackend",
    "onnxruntime": "kernels.backends.onnxruntime:OnnxRuntimeBackend",
}


#: Backends that also run on the CPU (the suite's CPU mode, ``--perf-device cpu``).
CPU_BACKENDS = ("torch",)


def cuda_unavailable_reason(check_arch: bool = True) -> str | None:
    """None when torch can run CUDA kernels on GPU 0 (every backend allocates its buffers with torch),
    else why not, in one line.

    ``torch.cuda.is_available()`` is False without a GPU or driver, or with a driver too old for torch's
    CUDA; torch then warns why, and that warning is the reason given. With ``check_arch``, a GPU whose
    compute capability this torch build has no kernels for (a CUDA 12.8 or 13 torch on a V100: no sm_70,
    pytorch/pytorch#172352) is unavailable too: every kernel would fail with "no kernel image is
    available". That check reads the device's properties (``get_device_capability``) and the build's
    flags (``get_arch_list``) and runs no kernel; ``check_arch=False`` skips it where no CUDA state should
    be initialized at all (the xdist controller, which measures nothing).
    """
    try:
        import torch
    except ImportError:
        return "torch is not installed (pip install 'roofline[torch]')"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
    if not available:
        said = next((str(w.message).strip().splitlines()[0] for w in caught if str(w.message).strip()), "")
        cuda = f"torch {torch.__version__}, CUDA {torch.version.cuda or 'none (a CPU-only build)'}"
        return (
            f"no CUDA GPU visible (torch.cuda.is_available() is False; {cuda}){': ' + said if said else ''}"
        )
    if check_arch:
        return arch_mismatch(
            torch.cuda.get_device_capability(0), torch.cuda.get_arch_list(), torch.__version__
        )
    return None


def arch_mismatch(capability: tuple[int, int], arch_list: list[str], torch_version: str = "") -> str | None:
    """Why a torch build with ``arch_list`` (``torch.cuda.get_arch_list()``: ``sm_XY`` SASS, ``compute_XY``
    PTX) cannot run on a GPU of ``capability``, or None.

    SASS runs on its own major version at an equal or higher minor (sm_80 code on an sm_86 GPU); PTX is
    JIT-compiled for any GPU at or above it (CUDA C++ Programming Guide, "Binary Compatibility" and
    "PTX Compatibility"). An empty list (a build that does not say) is not judged.
    """
    major, minor = capability
    if not arch_list:
        return None
    for arch in arch_list:
        kind, _, number = arch.partition("_")
        if not number.isdigit():
            continue
        a_major, a_minor = divmod(int(number), 10)  # sm_86 -> (8, 6), sm_120 -> (12, 0)
        if kind == "sm" and a_major == major and a_minor <= minor:
            return None
        if kind == "compute" and (a_major, a_minor) <= (major, minor):
            return None
    return (
        f"torch {torch_version} has no kernels for this GPU's compute capability {major}.{minor} "
        f'(it was built for {" ".join(arch_list)}): install the stack for this GPU (README, "GPU stacks")'
    )


def cpu_unavailable_reason(name: str) -> str | None:
    """None when backend ``name`` can measure on the CPU (the suite's CPU mode), else why not."""
    if name not in CPU_BACKENDS:
        return f"backend {name} runs on a GPU only (the CPU mode runs {', '.join(CPU_BACKENDS)})"
    try:
        import torch  # noqa: F401
    except ImportError:
        return "torch is not installed (pip install 'roofline[torch]')"
    return None


class BackendUnavailable(RuntimeError):
    """The backend's runtime is not installed or cannot run here; the message says why."""


@dataclass(frozen=True)
class ModelSpec:
    """What a benchmark runs: ``source`` is ``timm:NAME`` or ``torchvision:NAME``."""

    source: str
    resolution: int
    batch: int
    dtype: str = "fp16"

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, 3, self.resolution, self.resolution)


class Backend(ABC):
    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def unavailable_reason(cls) -> str | None:
        """None when the runtime imports and can run on this machine, else why not (one line)."""

    @classmethod
    @abstractmethod
    def version(cls) -> str:
        """The runtime's version string; part of the environment fingerprint."""

    @abstractmethod
    def build(self, spec: ModelSpec, cache_dir: Path) -> None:
        """Build (or load from ``cache_dir``) what ``launch`` runs, and allocate device buffers."""

    @abstractmethod
    def launch(self) -> None:
        """Enqueue one inference on ``self.stream``; must not synchronize the host."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Backend name, version and the options that shape performance (JSON-able)."""

    stream: Any  # torch.cuda.Stream, set by build()

    def close(self) -> None:  # noqa: B027 - optional hook, most backends free on garbage collection
        """Release engines and buffers early (optional)."""


def backend_class(name: str) -> type[Backend]:
    """The class registered as ``name``; importing it must not need its runtime."""
    if name not in REGISTRY:
        raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(REGISTRY)}")
    module, _, cls = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def require(name: str) -> type[Backend]:
    """``backend_class(name)``, raising BackendUnavailable with the reason when it cannot run."""
    cls = backend_class(name)
    reason = cls.unavailable_reason()
    if reason:
        raise BackendUnavailable(f"backend {name} is unavailable: {reason}")
    return cls
