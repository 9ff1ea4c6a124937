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


def cuda_unavailable_reason() -> str | None:
    """None when torch sees a CUDA GPU (every backend allocates its buffers with torch), else why not."""
    try:
        import torch
    except ImportError:
        return "torch is not installed (pip install 'roofline[torch]')"
    if not torch.cuda.is_available():
        return "no CUDA GPU visible (torch.cuda.is_available() is False)"
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
