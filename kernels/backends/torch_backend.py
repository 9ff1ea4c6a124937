"""PyTorch backend: FP16 (or the spec's dtype), channels_last, one CUDA graph, optional torch.compile.

The model runs in eval mode under ``torch.inference_mode`` with its input in
``channels_last`` (NHWC), the layout cuDNN's tensor-core convolutions use
natively, so no layout transposes run per layer (PyTorch tutorial "Channels
Last Memory Format"). After a few eager iterations on a side stream, the
forward pass is captured in a ``torch.cuda.CUDAGraph`` (the warmup-then-capture
recipe of the PyTorch CUDA semantics notes, "CUDA Graphs"), so ``launch()`` is
one replay. ``compile=True`` wraps the model in ``torch.compile`` with
``mode="max-autotune-no-cudagraphs"``: Inductor's own CUDA graphs would nest
inside ours.

For ``fp32`` TF32 is switched off for both matmul and cuDNN, so fp32 means IEEE
fp32 (torch enables TF32 for cuDNN convolutions by default).

``device="cpu"`` (the suite's CPU mode): the same model and input on the CPU, no
stream and no graph; ``launch()`` runs one forward pass synchronously, on
``threads`` intra-op threads (``torch.set_num_threads``; None keeps torch's
default, one per core), restored by ``close()``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from kernels.backends.base import Backend, ModelSpec, cuda_unavailable_reason

TORCH_DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}
WARMUP_ITERATIONS = 3


class TorchBackend(Backend):
    name = "torch"

    def __init__(
        self, *, cuda_graph: bool = True, compile: bool = False, channels_last: bool = True,
        device: str = "cuda", threads: int | None = None,
    ):  # fmt: skip
        if device not in ("cuda", "cpu"):
            raise ValueError(f"the torch backend runs on cuda or cpu, not {device!r}")
        self.device = device
        self.cuda_graph = cuda_graph and device == "cuda"
        self.compile = compile
        self.channels_last = channels_last
        self.threads = threads
        self.graph = None
        self.stream = None
        self.spec: ModelSpec | None = None

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return cuda_unavailable_reason()

    @classmethod
    def version(cls) -> str:
        import torch

        return torch.__version__

    def build(self, spec: ModelSpec, cache_dir: Path) -> None:
        import torch

        from kernels.models import instantiate

        if spec.dtype not in TORCH_DTYPES:
            raise ValueError(f"the torch backend runs {', '.join(TORCH_DTYPES)}, not {spec.dtype}")
        self.spec = spec
        dtype = getattr(torch, TORCH_DTYPES[spec.dtype])
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        if self.device == "cpu":
            self._threads = torch.get_num_threads()
            if self.threads is not None:
                torch.set_num_threads(self.threads)
            model = instantiate(spec.source).to(dtype=dtype, memory_format=fmt)
            self.model = torch.compile(model) if self.compile else model
            self.input = torch.randn(spec.input_shape, dtype=dtype).contiguous(memory_format=fmt)
            with torch.inference_mode():
                for _ in range(WARMUP_ITERATIONS):
                    self.output = self.model(self.input)
            return
        self._tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        if spec.dtype == "fp32":
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True  # pick the fastest conv algorithm per shape once
        model = instantiate(spec.source).to(device="cuda", dtype=dtype, memory_format=fmt)
        self.model = torch.compile(model, mode="max-autotune-no-cudagraphs") if self.compile else model
        self.input = torch.randn(spec.input_shape, device="cuda", dtype=dtype).contiguous(memory_format=fmt)
        self.stream = torch.cuda.Stream()
        self.stream.wait_stream(torch.cuda.current_stream())  # the input was written on the default stream
        with torch.inference_mode(), torch.cuda.stream(self.stream):
            for _ in range(WARMUP_ITERATIONS):
                self.output = self.model(self.input)
        self.stream.synchronize()
        if self.cuda_graph:
            self.graph = torch.cuda.CUDAGraph()
            with torch.inference_mode(), torch.cuda.graph(self.graph, stream=self.stream):
                self.output = self.model(self.input)
            self.stream.synchronize()

    def launch(self) -> None:
        # Both paths enqueue on the current stream, which kernels.timing sets to self.stream.
        if self.graph is not None:
            self.graph.replay()
            return
        import torch

        with torch.inference_mode():
            self.output = self.model(self.input)

    def describe(self) -> dict[str, Any]:
        import torch

        info = {
            "backend": self.name,
            "version": self.version(),
            "device": self.device,
            "dtype": self.spec.dtype if self.spec else None,
            "cuda_graph": self.cuda_graph,
            "compile": self.compile,
            "channels_last": self.channels_last,
        }
        if self.device == "cpu":
            return {
                **info,
                "threads": torch.get_num_threads(),
                "mkldnn": torch.backends.mkldnn.is_available(),
            }
        return {**info, "cudnn": torch.backends.cudnn.version()}

    def close(self) -> None:
        import torch

        self.graph = self.model = self.input = self.output = None
        if self.device == "cpu":
            with contextlib.suppress(AttributeError):
                torch.set_num_threads(self._threads)
            return
        with contextlib.suppress(AttributeError):
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = self._tf32
        torch.cuda.empty_cache()
