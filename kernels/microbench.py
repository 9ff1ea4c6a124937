"""Microbenchmarks that calibrate the roofline: GEMM peak, copy bandwidth, the kernel-class terms, conv
width sweep, latency table.

Each benchmark keeps its operands on the device, captures its op in a
``torch.cuda.CUDAGraph`` (after a warmup on a side stream, as the PyTorch CUDA
semantics notes, "CUDA Graphs", require), and times ``graph.replay`` with
``kernels.timing.measure`` on a dedicated ``torch.cuda.Stream`` (DESIGN.md,
"Measuring on a GPU"). The figures they produce are the *achievable* roof of
``roofline.hardware.gpus``: the best large-GEMM rate per datatype (the utilization
study's peak: V100 100 TFLOP/s achieved vs 125 datasheet) and a STREAM-like
device-to-device copy bandwidth. The kernel-class benchmarks (depthwise conv,
narrow grouped conv, pointwise ops, fused attention; section "kernel classes")
measure the terms of ``roofline.hardware.efficiency`` that the roof alone does
not give: ``cuda_core_compute``, ``depthwise_bandwidth``, ``attention_compute``.

Counting conventions:

* GEMM FLOPs = 2 x M x N x K: FLOPs are always 2 x multiply-accumulates
  (``torch.utils.flop_counter``; DESIGN.md, "Core definitions").
* copy bytes = read + write = 2 x buffer size, as McCalpin's STREAM "Copy"
  kernel counts ``a[i] = b[i]`` (STREAM FAQ, "How are the bytes counted?").

The pure helpers (``gemm_dtypes``, ``gemm_flops``, ``copy_bytes``,
``predicted_sweep``, ``unmeasurable_reason``, the kernel-class networks, counts
and derivations ``depthwise_terms``, ``grouped_terms``, ``pointwise_checks``,
``attention_terms``) need neither torch nor CUDA; everything that measures
imports torch lazily and needs a CUDA GPU.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from kernels.provenance import provenance
from kernels.timing import Measurement, TimingConfig, measure
from roofline.analysis import latency_table
from roofline.analysis.engines import get_engine
from roofline.analysis.predict import FusedNetwork, evaluate
from roofline.analysis.staircase import staircase
from roofline.analysis.target import Target
from roofline.dtypes import DTYPE_BYTES
from roofline.errors import RooflineError
from roofline.hardware.efficiency import CALIBRATED_TERMS, KernelEfficiency, efficiency_for
from roofline.hardware.gpus import GPU, match_device
from roofline.model.fusion import Kernel
from roofline.model.ir import Conv, Elementwise, Linear, MatMul, Network, Norm, Softmax, scale_batch

Progress = Callable[[str], None] | None

#: torch dtype attribute per roofline dtype. TF32 is fp32 storage with tensor-core math
#: (``roofline.dtypes``).
TORCH_DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32", "tf32": "float32",
                "fp8": "float8_e4m3fn"}  # fmt: skip
#: Report order of GEMM dtypes: the inference dtypes first, IEEE fp32 last.
GEMM_ORDER = ("fp16", "bf16", "fp8", "tf32", "fp32")
#: Dtypes the layer benchmarks (conv sweep, latency table) run; fp8/int8 layers need quantized kernels.
LAYER_DTYPES = ("fp16", "bf16", "tf32", "fp32")
#: Eager iterations on a side stream before capture: the CUDA graphs notes warm up with 3.
CAPTURE_WARMUP_ITERATIONS = 3
#: Latency tables measured here are of PyTorch eager kernels (the backend name of
#: ``roofline.analysis.latency_table``).
TABLE_BACKEND = "pytorch"
#: The default timing: 2 s warmup, 10 kept windows of 0.5 s (``kernels.timing.TimingConfig``).
DEFAULT_TIMING = TimingConfig()
#: Leave this fraction of free device memory unused: cuBLAS/cuDNN workspaces and the graph pool need room.
MEMORY_HEADROOM = 0.9


# ---------------------------------------------------------------------------------------------- pure helpers
def _parse_cc(compute_capability: str) -> tuple[int, int]:
    try:
        major, minor = (int(part) for part in str(compute_capability).split("."))
    except ValueError:
        raise RooflineError(
            f"compute capability must look like '8.0' (major.minor), got {compute_capability!r}"
        ) from None
    return major, minor


def gemm_dtypes(compute_capability: str) -> tuple[str, ...]:
    """The dtypes whose GEMM runs at a meaningful (datasheet-listed) rate on ``compute_capability``.

    * fp32 everywhere (CUDA-core SGEMM).
    * fp16 from 7.0, where tensor cores appear (CUDA C++ Programming Guide, "Warp Matrix Functions":
      wmma needs sm_70), and on 5.3, 6.0 and 6.2, which run FP16 at twice the FP32 rate (Programming
      Guide, "Arithmetic Instructions" throughput table; 6.1 runs FP16 at 1/64 rate, so not there).
    * bf16 and tf32 from 8.0 (NVIDIA A100 Tensor Core GPU Architecture whitepaper, 2020: Ampere adds
      BF16 and TF32 tensor-core math; ``torch.backends.cuda.matmul.allow_tf32`` selects TF32).
    * fp8 from 8.9 (FP8 tensor cores arrive with Ada, sm_89, and Hopper, sm_90: NVIDIA Ada and H100
      architecture whitepapers; cuBLASLt FP8 matmul and so ``torch._scaled_mm`` require CC >= 8.9).

    int8 is left out: its GEMM (``torch._int_mm``) is a private op with shape limits, so int8 keeps the
    datasheet x default-efficiency roof.
    """
    cc = _parse_cc(compute_capability)
    runs = {"fp32"}
    if cc >= (7, 0) or cc in ((5, 3), (6, 0), (6, 2)):
        runs.add("fp16")
    if cc >= (8, 0):
        runs |= {"bf16", "tf32"}
    if cc >= (8, 9):
        runs.add("fp8")
    return tuple(d for d in GEMM_ORDER if d in runs)


def _positive_int(value: Any, what: str, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise RooflineError(f"{what} must be a positive integer, got {value!r}; {fix}")
    return int(value)


def gemm_flops(m: int, n: int, k: int) -> int:
    """FLOPs of an (m x k) @ (k x n) GEMM: 2 x m x n x k (FLOPs = 2 x MACs, ``torch.utils.flop_counter``)."""
    for name, value in (("m", m), ("n", n), ("k", k)):
        _positive_int(value, f"GEMM dimension {name}", "pass a matrix size >= 1")
    return 2 * m * n * k


def copy_bytes(nbytes: int) -> int:
    """DRAM traffic of copying ``nbytes``: read + write = 2 x nbytes (McCalpin's STREAM "Copy" counting)."""
    return 2 * _positive_int(nbytes, "copy size in bytes", "pass a buffer size >= 1")


def _check_dtype(dtype: str, allowed: Sequence[str], what: str) -> None:
    if dtype not in DTYPE_BYTES:
        raise RooflineError(f"unknown dtype {dtype!r}: choose one of {', '.join(DTYPE_BYTES)}")
    if dtype not in allowed:
        raise RooflineError(f"{what} runs {', '.join(allowed)}, not {dtype}; pick one of those")


# ------------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Result:
    """One microbenchmark: its measurement (rates in ``unit`` per window) and the datasheet figure."""

    name: str  # "gemm-fp16", "copy"
    dtype: str  # the roofline dtype a GEMM ran, or the copy buffer's element type
    measurement: Measurement
    unit: str  # "flop/s" or "B/s"
    datasheet: (
        float | None
    )  # the figure to compare with, in ``unit``; None when the GPU is not in the database
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:  # frozen means frozen: no dict shared with the caller
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))

    @property
    def rate(self) -> float:
        """Median over the kept windows (``Measurement.median``), in ``unit``."""
        return self.measurement.median

    @property
    def ratio(self) -> float | None:
        """Measured / datasheet."""
        return None if not self.datasheet else self.rate / self.datasheet

    @property
    def stable(self) -> bool:
        return self.measurement.invalid_reason is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "unit": self.unit,
            "median": self.rate,
            "datasheet": self.datasheet,
            "ratio_to_datasheet": self.ratio,
            "stable": self.stable,
            "details": dict(self.details),
            # Lists, not tuples: the dict goes into JSON files and should read back equal.
            "measurement": {
                k: list(v) if isinstance(v, tuple) else v for k, v in self.measurement.to_dict().items()
            },
        }


# ------------------------------------------------------------------------------------------ device plumbing
def device_gpu(device: int | None = None) -> GPU:
    """The database entry of a CUDA device (default: the current one), via
    ``roofline.hardware.gpus.match_device``."""
    import torch

    props = torch.cuda.get_device_properties(torch.cuda.current_device() if device is None else device)
    cc = f"{props.major}.{props.minor}"
    return match_device(props.name, cc, props.multi_processor_count, props.total_memory)


def _gpu_or_none(gpu: GPU | None) -> GPU | None:
    if gpu is not None:
        return gpu
    try:
        return device_gpu()
    except RooflineError:  # an unknown GPU can still be measured; it just has no datasheet to compare with
        return None


def _device() -> Any:
    """The current CUDA device (``torch.cuda.set_device`` picks it; calibrate's ``--device``)."""
    import torch

    return torch.device("cuda", torch.cuda.current_device())


def _current_cc() -> str:
    import torch

    major, minor = torch.cuda.get_device_capability()
    return f"{major}.{minor}"


def _check_fits(nbytes: int, what: str, fix: str) -> None:
    import torch

    free_bytes, _total = torch.cuda.mem_get_info()
    if nbytes > free_bytes * MEMORY_HEADROOM:
        raise RooflineError(
            f"{what} needs {nbytes / 2**30:.1f} GiB but {free_bytes / 2**30:.1f} GiB are free on the GPU; "
            f"{fix}"
        )


@contextmanager
def _math_mode(dtype: str | None, cudnn_benchmark: bool = False) -> Iterator[None]:
    """fp32 means IEEE fp32 and tf32 means TF32 tensor-core math, for cuBLAS and cuDNN; restored on exit.

    Only the warmup and the capture need the flags: a captured graph replays the kernels chosen then.
    torch enables TF32 for cuDNN convolutions by default (CUDA semantics notes, "TensorFloat-32"), so
    fp32 must switch it off explicitly. ``cudnn.benchmark`` autotunes each conv shape once, in the
    warmup, as an inference engine's builder would. ``dtype=None`` (a copy) leaves the math flags alone.
    """
    import torch

    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    )
    if dtype is not None:
        tf32 = dtype == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = cudnn_benchmark or saved[2]
    try:
        yield
    finally:
        (
            torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32,
            torch.backends.cudnn.benchmark,
        ) = saved


def _capture(op: Callable[[], Any]) -> tuple[Any, Any]:
    """(graph, static output) of ``op`` captured after a warmup on a side stream.

    The recipe of the PyTorch CUDA semantics notes ("CUDA Graphs", whole-network capture): warm up on a
    side stream so lazy initialization (cuBLAS handles, workspaces, cuDNN autotuning) happens outside
    the capture, then capture under ``torch.cuda.graph``.
    """
    import torch

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.inference_mode():
        with torch.cuda.stream(side):
            for _ in range(CAPTURE_WARMUP_ITERATIONS):
                op()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            output = op()
    torch.cuda.synchronize()
    return graph, output


def _time(
    op: Callable[[], Any], items_per_launch: int, config: TimingConfig, progress: Progress, math: str | None,
    cudnn_benchmark: bool = False,
) -> Measurement:  # fmt: skip
    """Capture ``op`` (under ``math``'s flags) and time its replays on a dedicated stream."""
    import torch

    with _math_mode(math, cudnn_benchmark):
        graph, output = _capture(op)
    stream = torch.cuda.Stream()
    try:
        return measure(graph.replay, stream, items_per_launch, config, progress)
    finally:
        del graph, output  # free the graph's private memory pool before the next benchmark allocates
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------------------------------- GEMM
def gemm(
    dtype: str,
    size: int = 8192,
    config: TimingConfig = DEFAULT_TIMING,
    progress: Progress = None,
    *,
    gpu: GPU | None = None,
) -> Result:
    """Rate of a square ``size`` x ``size`` x ``size`` GEMM at ``dtype`` on the current CUDA device.

    fp16/bf16/fp32/tf32 run ``torch.mm`` into a preallocated output; tf32 is fp32 tensors with
    ``torch.backends.cuda.matmul.allow_tf32 = True``, fp32 the same with it False (the previous
    setting is restored). fp8 runs ``torch._scaled_mm`` on e4m3 operands with fp32 scalar
    (tensor-wise) scales, the second operand column-major as cuBLASLt's FP8 matmul requires, a bf16
    output and ``use_fast_accum=True`` (the fastest accumulation mode, what a peak means).
    Operands are random normal: all-zero inputs draw less power and clock higher than real data.
    FLOPs per launch = 2 x size^3 (``gemm_flops``). ``gpu`` (default: the device's database entry)
    supplies the datasheet peak to compare with.
    """
    import torch

    _check_dtype(dtype, tuple(TORCH_DTYPES), "the GEMM benchmark")
    size = _positive_int(size, "GEMM size", "pass e.g. 8192")
    cc = _current_cc()
    if dtype not in gemm_dtypes(cc):
        raise RooflineError(
            f"a {dtype} GEMM has no fast path on CC {cc}; this GPU runs: {', '.join(gemm_dtypes(cc))}"
        )
    if dtype == "fp8" and size % 16:
        raise RooflineError(f"fp8 GEMMs need sizes divisible by 16 (torch._scaled_mm), got {size}")
    # A, B and C at the element size; fp8 also has its fp32 random source and a bf16 output.
    per_element_bytes = 1 + 1 + 2 + 4 if dtype == "fp8" else 3 * DTYPE_BYTES[dtype]
    _check_fits(per_element_bytes * size * size, f"a {size}^3 {dtype} GEMM", "pass a smaller size")
    gpu = _gpu_or_none(gpu)
    device = _device()
    say = progress or (lambda _message: None)
    say(f"gemm {dtype} {size}x{size}x{size}")
    details: dict[str, Any] = {"size": size, "m": size, "n": size, "k": size}
    if dtype == "fp8":
        fp8 = torch.float8_e4m3fn
        a = torch.randn(size, size, device=device).to(fp8)
        b = torch.randn(size, size, device=device).to(fp8).t()  # column-major (K, N)
        scale_a = torch.ones((), device=device, dtype=torch.float32)
        scale_b = torch.ones((), device=device, dtype=torch.float32)

        def op() -> Any:
            return torch._scaled_mm(a, b, scale_a, scale_b, out_dtype=torch.bfloat16, use_fast_accum=True)

        details.update(op="torch._scaled_mm", operands="float8_e4m3fn", out_dtype="bfloat16",
                       use_fast_accum=True, scaling="tensor-wise fp32")  # fmt: skip
    else:
        tdtype = getattr(torch, TORCH_DTYPES[dtype])
        a = torch.randn(size, size, device=device, dtype=tdtype)
        b = torch.randn(size, size, device=device, dtype=tdtype)
        c = torch.empty(size, size, device=device, dtype=tdtype)

        def op() -> Any:
            return torch.mm(a, b, out=c)

        details.update(op="torch.mm", operands=TORCH_DTYPES[dtype], allow_tf32=dtype == "tf32")
    measurement = _time(op, gemm_flops(size, size, size), config, progress, dtype)
    datasheet = gpu.peak_flops_s.get(dtype) if gpu is not None else None
    return Result(f"gemm-{dtype}", dtype, measurement, "flop/s", datasheet, details)


def gemm_peak(
    dtype: str,
    sizes: Sequence[int] = (4096, 8192, 16384),
    config: TimingConfig = DEFAULT_TIMING,
    progress: Progress = None,
    *,
    gpu: GPU | None = None,
) -> Result:
    """The best ``gemm`` over ``sizes``: the size that fills a GPU's waves best differs per GPU.

    Stable measurements win over unstable ones; among those, the highest median rate. The winner's
    details record every size's rate (``rates_by_size``).
    """
    if not sizes:
        raise RooflineError("gemm_peak needs at least one size, e.g. (4096, 8192, 16384)")
    gpu = _gpu_or_none(gpu)
    results = [gemm(dtype, size, config, progress, gpu=gpu) for size in sizes]
    best = max(results, key=lambda r: (r.stable, r.rate))
    rates = {str(r.details["size"]): r.rate for r in results}
    return replace(best, details={**best.details, "rates_by_size": rates})


# --------------------------------------------------------------------------------------------------- copy
def copy_bandwidth(
    nbytes: int = 1 << 30,
    config: TimingConfig = DEFAULT_TIMING,
    progress: Progress = None,
    *,
    gpu: GPU | None = None,
) -> Result:
    """Device-to-device copy bandwidth: ``dst.copy_(src)`` of two ``nbytes`` uint8 buffers, in B/s.

    Bytes per launch = 2 x nbytes (``copy_bytes``: STREAM "Copy" counts the read and the write). 1 GiB
    per buffer dwarfs any L2 (50 MiB on H100), so the traffic is DRAM traffic. A same-dtype contiguous
    ``copy_`` is one device-to-device memcpy, which a CUDA graph captures as a memcpy node.
    """
    import torch

    items = copy_bytes(nbytes)
    _check_fits(items, f"a {nbytes}-byte copy", "pass a smaller nbytes")
    gpu = _gpu_or_none(gpu)
    device = _device()
    say = progress or (lambda _message: None)
    say(f"copy {nbytes / 2**20:.0f} MiB device to device")
    src = torch.randint(0, 256, (nbytes,), dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)

    def op() -> Any:
        return dst.copy_(src)

    measurement = _time(op, items, config, progress, None)
    datasheet = gpu.dram_bandwidth_bytes_s if gpu is not None else None
    details = {"nbytes": nbytes, "op": "Tensor.copy_ (device to device)", "bytes_per_launch": items}
    return Result("copy", "uint8", measurement, "B/s", datasheet, details)


# -------------------------------------------------------------------------------------------- kernel classes
# One uniform efficiency over-predicts the networks built from depthwise, narrow grouped and attention
# layers (DESIGN.md, "Engines, accumulators and kernel classes"), so ``roofline.hardware.efficiency`` times
# each class with its own terms. These benchmarks measure them on the GPU, each on one representative
# shape, and invert the model's formula for that class (``roofline.analysis.predict.kernel_times``):
#
#   depthwise_bandwidth = bytes / time / datasheet DRAM bandwidth     (a memory-bound depthwise conv)
#   cuda_core_compute   = FLOPs / time / FP32 CUDA-core peak          (a narrow grouped conv on CUDA cores;
#                                                                     a depthwise conv gives a lower bound)
#   attention_compute   = FLOPs / time / the GEMM rate of the roof    (fused attention)
#
# Bytes and FLOPs are the model's own counts of the kernels PyTorch eager launches (``model_counts``: the
# layer as IR, fused with the "torch" engine's rules), so a depthwise or attention term put back into the
# model predicts the measured time (the grouped rule is subtler: ``grouped_terms``). FLOPs = 2 x MACs.
# The benchmarks run FP16 and channels-last, the PyTorch backend's layout; the terms are per GPU
# generation, not per dtype.

#: The dtype of the kernel-class benchmarks: FP16, the inference dtype the default terms describe.
CLASS_DTYPE = "fp16"
#: The engine whose kernels the benchmarks launch: eager PyTorch, one ATen kernel per op
#: (``roofline/analysis/data/engines.toml``, ``[engine.torch]``); the model counts bytes per those kernels.
CLASS_ENGINE = "torch"
#: Every working set is at least this many times the GPU's L2, so a launch streams from DRAM: with a
#: streaming (read-once) access pattern an LRU-like cache holds at most 1/8 of it when the next launch
#: starts re-reading, and that part is evicted before it is reached (the same reason ``copy_bandwidth``
#: uses a 1 GiB buffer, 20x the H100's 50 MiB L2).
L2_MULTIPLE = 8
#: The depthwise benchmark: a MobileNet/EfficientNet-style 3x3, stride-1 depthwise conv at 56x56.
DEPTHWISE_CHANNELS, DEPTHWISE_SPATIAL, DEPTHWISE_KERNEL = 512, 56, 3
#: The grouped benchmark: a ResNeXt-style 3x3 grouped conv, 256 channels at 28x28 (ResNeXt-50 32x4d's
#: stage 2 is 256 channels in 32 groups of 8: Xie et al., "Aggregated Residual Transformations", Table 1),
#: with 32, 64 and 128 groups (8, 4 and 2 channels per group: narrower than a tensor-core tile's K).
GROUPED_CHANNELS, GROUPED_SPATIAL, GROUPED_KERNEL = 256, 28, 3
GROUPED_GROUPS = (32, 64, 128)
#: The pointwise benchmarks: a residual add and a BN (eval) + ReLU at ResNet stage 1's 256 x 56 x 56.
POINTWISE_CHANNELS, POINTWISE_SPATIAL = 256, 56
#: The attention benchmark: B x H x S x 64, H = 16, B = ATTENTION_TOKENS / S (the same tokens per launch
#: at every S, 4096 query blocks of 128 rows: many waves on any GPU, so the wave model's q is ~1).
ATTENTION_SEQ_LENS = (1024, 4096)
ATTENTION_HEADS, ATTENTION_HEAD_DIM, ATTENTION_TOKENS = 16, 64, 32768
#: A CUDA-core efficiency this small switches the CUDA-core path of ``kernel_times``' grouped-conv
#: ``min(tensor-core time, CUDA-core time)`` off, leaving the tensor-core formula alone.
_CUDA_CORES_OFF = 1e-12


class ClippedTermWarning(RuntimeWarning):
    """A measured efficiency above 1, clipped to 1: L2 hits, clocks above the datasheet boost, or FP16
    CUDA-core math at twice the FP32 rate. The term is kept at 1; the raw value stays in the record."""


@dataclass(frozen=True)
class KernelTiming:
    """One timed kernel-class shape: the model's FLOPs and bytes for it and the time one launch took.

    ``time_s`` = 1 / median launches per second of the graph-captured op (the back-to-back time per
    launch, as ``measured_latency_table`` counts it); ``measurement`` holds the windows (None for
    synthetic timings).
    """

    label: str
    time_s: float
    flops: int
    nbytes: int
    invalid_reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    measurement: Measurement | None = None

    def __post_init__(self) -> None:
        if isinstance(self.time_s, bool) or not isinstance(self.time_s, (int, float)):
            raise RooflineError(f"{self.label}: time_s must be a number of seconds, got {self.time_s!r}")
        if not (math.isfinite(self.time_s) and self.time_s > 0):
            raise RooflineError(
                f"{self.label}: time_s must be positive and finite, got {self.time_s!r}; re-run it"
            )
        if self.flops < 0 or self.nbytes < 1:
            raise RooflineError(
                f"{self.label}: needs flops >= 0 and bytes >= 1, got {self.flops}, {self.nbytes}"
            )
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))

    @property
    def flops_s(self) -> float:
        return self.flops / self.time_s

    @property
    def bytes_s(self) -> float:
        return self.nbytes / self.time_s

    @property
    def stable(self) -> bool:
        return self.invalid_reason is None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "label": self.label, "time_s": self.time_s, "flops": self.flops, "bytes": self.nbytes,
            "flops_s": self.flops_s, "bytes_s": self.bytes_s, "stable": self.stable,
            "invalid_reason": self.invalid_reason, "details": dict(self.details),
        }  # fmt: skip
        if self.measurement is not None:
            out["measurement"] = {
                k: list(v) if isinstance(v, tuple) else v for k, v in self.measurement.to_dict().items()
            }
        return out


@dataclass(frozen=True)
class Term:
    """A derived efficiency term: the raw ratio, the value a calibration writes (clipped to (0, 1]), and
    ``basis``, the figures it came from."""

    name: str  # a KernelEfficiency field ("cuda_core_compute", ...), or "bandwidth" for the pointwise check
    raw: float
    basis: str

    def __post_init__(self) -> None:
        if not (math.isfinite(self.raw) and self.raw > 0):
            raise RooflineError(f"{self.name} came out {self.raw!r}; a term needs a positive time and count")

    @property
    def value(self) -> float:
        return min(self.raw, 1.0)

    @property
    def clipped(self) -> bool:
        return self.raw > 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "raw": self.raw, "clipped": self.clipped, "basis": self.basis}


def derive_term(name: str, raw: float, basis: str) -> Term:
    """``Term(name, raw, basis)``, warning (``ClippedTermWarning``) when ``raw`` > 1 is clipped to 1."""
    term = Term(name, float(raw), basis)
    if term.clipped:
        warnings.warn(
            f"{name} measured {term.raw:.3f} > 1, clipped to 1 ({basis}): L2 hits, clocks above the "
            "datasheet boost, or FP16 math faster than the FP32 peak",
            ClippedTermWarning,
            stacklevel=2,
        )
    return term


def _tflops(rate: float) -> str:
    return f"{rate / 1e12:.3g} TFLOP/s"


def _gbs(rate: float) -> str:
    return f"{rate / 1e9:.4g} GB/s"


# ------------------------------------------------------------------------ kernel classes: shapes and counts
def batch_beyond_l2(per_image_bytes: int, l2_bytes: int, multiple: int = L2_MULTIPLE) -> int:
    """The smallest batch whose traffic is at least ``multiple`` x ``l2_bytes`` (``L2_MULTIPLE``)."""
    _positive_int(per_image_bytes, "bytes per image", "pass the model's byte count of one image")
    _positive_int(l2_bytes, "L2 size in bytes", "pass GPU.l2_bytes")
    _positive_int(multiple, "L2 multiple", "pass e.g. 8")
    return max(1, -(-multiple * l2_bytes // per_image_bytes))  # integer ceil: exact at any size


def default_batch(network: Network, gpu: GPU) -> int:
    """``batch_beyond_l2`` of ``network``'s activation bytes per image (what grows with the batch; the
    weights are read once) on ``gpu``'s L2."""
    per_image = model_counts(network, 2).nbytes - model_counts(network, 1).nbytes
    return batch_beyond_l2(per_image, gpu.l2_bytes)


def depthwise_network(
    channels: int = DEPTHWISE_CHANNELS, spatial: int = DEPTHWISE_SPATIAL, kernel: int = DEPTHWISE_KERNEL
) -> Network:
    """The depthwise benchmark's layer: ``kernel`` x ``kernel``, stride 1, groups = channels, at batch 1."""
    return sweep_network(channels, spatial, kernel, channels, name="dwconv", groups=channels)


def grouped_network(
    groups: int,
    channels: int = GROUPED_CHANNELS,
    spatial: int = GROUPED_SPATIAL,
    kernel: int = GROUPED_KERNEL,
) -> Network:
    """The grouped benchmark's layer: ``channels`` -> ``channels`` in ``groups`` groups, at batch 1."""
    if _positive_int(groups, "groups", "pass e.g. 32") >= channels:
        raise RooflineError(f"groups = {groups} of {channels} channels is depthwise, not grouped; pass fewer")
    return sweep_network(channels, spatial, kernel, channels, name="gconv", groups=groups)


def _shape(channels: int, spatial: int) -> tuple[int, int, int, int]:
    _positive_int(channels, "channels", "pass a positive integer")
    _positive_int(spatial, "spatial", "pass a positive integer")
    return (1, channels, spatial, spatial)


def add_network(channels: int = POINTWISE_CHANNELS, spatial: int = POINTWISE_SPATIAL) -> Network:
    """An elementwise add of two ``channels`` x ``spatial``^2 tensors (a residual add), at batch 1."""
    shape = _shape(channels, spatial)
    add = Elementwise(name="add", inputs=("a", "b"), output="add", input_shapes=(shape, shape),
                      output_shape=shape, fn="add")  # fmt: skip
    return Network(name="add", inputs=(("a", shape), ("b", shape)), outputs=("add",), layers=(add,))


def bn_relu_network(channels: int = POINTWISE_CHANNELS, spatial: int = POINTWISE_SPATIAL) -> Network:
    """A batch norm (inference) then a ReLU, at batch 1: two kernels under eager PyTorch."""
    shape = _shape(channels, spatial)
    bn = Norm(name="bn", inputs=("x",), output="bn", input_shapes=(shape,), output_shape=shape, fn="batch",
              channels=channels)  # fmt: skip
    relu = Elementwise(name="relu", inputs=("bn",), output="relu", input_shapes=(shape,), output_shape=shape,
                       fn="relu")  # fmt: skip
    return Network(name="bn-relu", inputs=(("x", shape),), outputs=("relu",), layers=(bn, relu))


def attention_network(seq: int, heads: int = ATTENTION_HEADS, head_dim: int = ATTENTION_HEAD_DIM) -> Network:
    """softmax(Q K^T) V for one sample of ``heads`` x ``seq`` x ``head_dim``: a score matmul, its softmax
    and the matmul by V, which ``roofline.model.fusion`` rule 6 makes one attention kernel (the scores
    never reach DRAM). K enters transposed, as the score matmul reads it."""
    for what, value in (("seq", seq), ("heads", heads), ("head_dim", head_dim)):
        _positive_int(value, what, "pass a positive integer")
    qv, kt, scores = (1, heads, seq, head_dim), (1, heads, head_dim, seq), (1, heads, seq, seq)
    layers = (
        MatMul(name="scores", inputs=("q", "kt"), output="scores", input_shapes=(qv, kt),
               output_shape=scores),
        Softmax(name="softmax", inputs=("scores",), output="softmax", input_shapes=(scores,),
                output_shape=scores),
        MatMul(name="attn", inputs=("softmax", "v"), output="attn", input_shapes=(scores, qv),
               output_shape=qv),
    )  # fmt: skip
    return Network(name=f"attention-s{seq}", inputs=(("q", qv), ("kt", kt), ("v", qv)), outputs=("attn",),
                   layers=layers)  # fmt: skip


def attention_flops(batch: int, heads: int, seq: int, head_dim: int) -> int:
    """FLOPs of non-causal attention: Q K^T and P V are each 2 x B H S^2 d, so 4 x B x H x S^2 x d
    (FlashAttention-2, Dao 2023, section 4.1, counts the forward pass the same way)."""
    for what, value in (("batch", batch), ("heads", heads), ("seq", seq), ("head_dim", head_dim)):
        _positive_int(value, what, "pass a positive integer")
    return 4 * batch * heads * seq * seq * head_dim


@dataclass(frozen=True)
class ModelCounts:
    """What the model counts for a network's kernels at a batch: total FLOPs and DRAM bytes."""

    flops: int
    nbytes: int
    kernels: tuple[str, ...]  # Kernel.describe() of each, to show which kernels were counted


def model_counts(
    network: Network, batch: int, dtype: str = CLASS_DTYPE, engine: str = CLASS_ENGINE
) -> ModelCounts:
    """FLOPs and bytes of ``network`` at ``batch`` as ``roofline.analysis.predict`` counts them: the
    network fused by ``engine``'s rules (``FusedNetwork.of``), activations x batch + weights once, at
    ``dtype``'s element size."""
    batch = _positive_int(batch, "batch", "pass e.g. 32")
    fused = FusedNetwork.of(network, get_engine(engine).fusion)
    return ModelCounts(
        flops=int(round(float(fused.flops.sum()) * batch)),
        nbytes=int(round(float(fused.bytes(batch, DTYPE_BYTES[dtype]).sum()))),
        kernels=tuple(k.describe() for k in fused.kernels),
    )


def tensor_core_flops_s(network: Network, batch: int, gpu: GPU, gemm_flops_s: float | None = None) -> float:
    """The model's tensor-core rate for ``network``'s one kernel at ``batch``: FLOPs over the compute time
    of ``kernel_times``' dense formula (fill, alignment, waves) with the CUDA-core path switched off.

    That rate is proportional to the roof's GEMM rate P, so it is rescaled to ``gemm_flops_s`` (a
    measured GEMM rate) when given; otherwise it is on the default roof (datasheet x gemm_compute).
    """
    base = efficiency_for(gpu)
    target = Target(
        gpu, CLASS_DTYPE, engine=CLASS_ENGINE, efficiency=base.replace(cuda_core_compute=_CUDA_CORES_OFF)
    )
    estimate = evaluate(network, target, batch)
    if len(estimate.flops) != 1:
        raise RooflineError(f"{network.name} is {len(estimate.flops)} kernels; pass a one-kernel network")
    rate = float(estimate.flops[0] / estimate.compute_s[0])
    if gemm_flops_s is not None:
        rate *= gemm_flops_s / target.roof.flops_s
    return rate


def gemm_reference(gpu: GPU, gemm_flops_s: float | None = None) -> tuple[float, str]:
    """(the GEMM rate attention_compute is a fraction of, where it comes from).

    ``kernel_times`` times attention at ``roof.flops_s x attention_compute``; with a calibration the roof is
    its measured fp16 GEMM (torch.mm: FP32 accumulation, as PyTorch's flash attention also accumulates), so
    that is the reference when given. Without one, the model's roof: the FP32-accumulate fp16 datasheet
    peak x the generation's gemm_compute (``roofline.hardware.calibration.achievable_roof``).
    """
    if gemm_flops_s is not None:
        if not gemm_flops_s > 0:
            raise RooflineError(
                f"the GEMM rate must be positive, got {gemm_flops_s!r}; pass the measured fp16 rate"
            )
        return float(gemm_flops_s), f"measured fp16 GEMM {_tflops(gemm_flops_s)}"
    eff = efficiency_for(gpu)
    rate = gpu.peak(CLASS_DTYPE, "fp32") * eff.gemm_compute
    return (
        rate,
        f"datasheet fp16 x gemm_compute {eff.gemm_compute:g} = {_tflops(rate)} (no fp16 GEMM measured)",
    )


# ---------------------------------------------------------------------- kernel classes: derivations (pure)
@dataclass(frozen=True)
class DepthwiseResult:
    """The depthwise benchmark: its timing, whether the model calls it memory-bound, and both terms.

    ``depthwise_bandwidth`` is None when the kernel is compute-bound (the bytes say nothing then);
    ``cuda_core_compute_lower_bound`` is always reported: a memory-bound kernel could compute faster.
    """

    timing: KernelTiming
    memory_bound: bool
    depthwise_bandwidth: Term | None
    cuda_core_compute_lower_bound: Term

    def to_dict(self) -> dict[str, Any]:
        return {
            "timing": self.timing.to_dict(),
            "memory_bound": self.memory_bound,
            "depthwise_bandwidth": None
            if self.depthwise_bandwidth is None
            else self.depthwise_bandwidth.to_dict(),
            "cuda_core_compute_lower_bound": self.cuda_core_compute_lower_bound.to_dict(),
        }


def depthwise_terms(
    timing: KernelTiming, gpu: GPU, efficiency: KernelEfficiency | None = None
) -> DepthwiseResult:
    """Invert the model's depthwise time, max(FLOPs / (P_fp32 x cuda_core_compute), bytes / (B x
    depthwise_bandwidth)) (``roofline.hardware.efficiency``), for one measured ``timing``.

    Memory-bound means the bytes term is the larger under ``efficiency`` (default: the GPU generation's
    terms), as the model would time it. Then depthwise_bandwidth = bytes / time / datasheet DRAM
    bandwidth. FLOPs / time / FP32 peak is a lower bound of cuda_core_compute either way: the CUDA cores
    did at least that much work in that time.
    """
    eff = efficiency or efficiency_for(gpu)
    fp32 = gpu.peak("fp32")
    memory_s = timing.nbytes / (gpu.dram_bandwidth_bytes_s * eff.depthwise_bandwidth)
    compute_s = timing.flops / (fp32 * eff.cuda_core_compute)
    memory_bound = memory_s >= compute_s
    bandwidth = None
    if memory_bound:
        bandwidth = derive_term(
            "depthwise_bandwidth", timing.bytes_s / gpu.dram_bandwidth_bytes_s,
            f"{timing.label}: {_gbs(timing.bytes_s)} / datasheet {_gbs(gpu.dram_bandwidth_bytes_s)}",
        )  # fmt: skip
    lower = derive_term(
        "cuda_core_compute", timing.flops_s / fp32,
        f"lower bound, {timing.label}: {_tflops(timing.flops_s)} / FP32 peak {_tflops(fp32)}",
    )  # fmt: skip
    return DepthwiseResult(timing, memory_bound, bandwidth, lower)


@dataclass(frozen=True)
class GroupedResult:
    """The grouped benchmark: one timing per group count, the model's tensor-core rate for each, and
    cuda_core_compute (None when no group count ran at or above its tensor-core rate)."""

    timings: tuple[KernelTiming, ...]
    tensor_core_flops_s: tuple[float, ...]
    cuda_core_compute: Term | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "timings": [t.to_dict() for t in self.timings],
            "tensor_core_flops_s": list(self.tensor_core_flops_s),
            "on_cuda_cores": [
                t.flops_s >= r for t, r in zip(self.timings, self.tensor_core_flops_s, strict=True)
            ],
            "cuda_core_compute": None if self.cuda_core_compute is None else self.cuda_core_compute.to_dict(),
        }


def grouped_terms(
    timings: Sequence[KernelTiming], tensor_core_flops_s: Sequence[float], gpu: GPU
) -> GroupedResult:
    """cuda_core_compute from grouped convs of several group widths.

    The model times a grouped conv as min(tensor-core time, FLOPs / (P_fp32 x cuda_core_compute)), the
    faster path, as a library picks the faster kernel. A width that ran below the model's tensor-core rate
    (``tensor_core_flops_s``) cannot be explained by any value of the term, since min() never predicts
    slower than the tensor-core path; a width that ran at or above it is one the CUDA-core (direct
    grouped) kernels won, and its FLOPs / time / FP32 peak is the term that reproduces it. Of those the
    best is taken (stable measurements first), as the GEMM peak is the best GEMM. None when no width ran
    at or above its tensor-core rate: then the tensor-core path explains every width.
    """
    if len(timings) != len(tensor_core_flops_s) or not timings:
        raise RooflineError("pass one tensor-core rate per grouped timing, and at least one timing")
    fp32 = gpu.peak("fp32")
    won = [t for t, rate in zip(timings, tensor_core_flops_s, strict=True) if t.flops_s >= rate]
    term = None
    if won:
        best = max(won, key=lambda t: (t.stable, t.flops_s))
        term = derive_term(
            "cuda_core_compute", best.flops_s / fp32,
            f"{best.label}: {_tflops(best.flops_s)} / FP32 peak {_tflops(fp32)}, best of the "
            f"{len(won)} of {len(timings)} group widths at or above the tensor-core model",
        )  # fmt: skip
    return GroupedResult(tuple(timings), tuple(float(r) for r in tensor_core_flops_s), term)


@dataclass(frozen=True)
class PointwiseResult:
    """The pointwise benchmarks: bytes / time / datasheet DRAM bandwidth for each, a check of the
    ``bandwidth`` term (not a new term; the copy benchmark measures the roof's bandwidth)."""

    timings: tuple[KernelTiming, ...]
    bandwidth: tuple[Term, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "timings": [t.to_dict() for t in self.timings],
            "bandwidth": [b.to_dict() for b in self.bandwidth],
        }


def pointwise_checks(timings: Sequence[KernelTiming], gpu: GPU) -> PointwiseResult:
    """bandwidth = bytes / time / datasheet DRAM bandwidth for each pointwise timing."""
    bw = gpu.dram_bandwidth_bytes_s
    terms = tuple(
        derive_term("bandwidth", t.bytes_s / bw, f"{t.label}: {_gbs(t.bytes_s)} / datasheet {_gbs(bw)}")
        for t in timings
    )
    return PointwiseResult(tuple(timings), terms)


@dataclass(frozen=True)
class AttentionResult:
    """The attention benchmark: one timing per sequence length, the GEMM rate it is compared with, and
    attention_compute."""

    timings: tuple[KernelTiming, ...]
    gemm_flops_s: float
    gemm_source: str
    attention_compute: Term

    def to_dict(self) -> dict[str, Any]:
        return {
            "timings": [t.to_dict() for t in self.timings],
            "gemm_flops_s": self.gemm_flops_s,
            "gemm_source": self.gemm_source,
            "attention_compute": self.attention_compute.to_dict(),
        }


def attention_terms(
    timings: Sequence[KernelTiming], gemm_flops_s: float, gemm_source: str
) -> AttentionResult:
    """attention_compute = FLOPs / time / ``gemm_flops_s`` (``gemm_reference``) of the best timing.

    The best sequence length (stable first) is the class's asymptotic rate, as the GEMM peak is the best
    GEMM size: the model's wave quantization, not this term, accounts for shapes that fill the GPU worse.
    """
    if not timings:
        raise RooflineError("attention_terms needs at least one timing")
    if not gemm_flops_s > 0:
        raise RooflineError(f"the GEMM rate must be positive, got {gemm_flops_s!r}")
    best = max(timings, key=lambda t: (t.stable, t.flops_s))
    term = derive_term(
        "attention_compute", best.flops_s / gemm_flops_s,
        f"{best.label}: {_tflops(best.flops_s)} / {gemm_source}",
    )  # fmt: skip
    return AttentionResult(tuple(timings), float(gemm_flops_s), gemm_source, term)


@dataclass(frozen=True)
class KernelClasses:
    """All kernel-class benchmarks of one GPU; ``terms()`` is what a calibration file records."""

    gpu: str  # database key
    depthwise: DepthwiseResult | None = None
    grouped: GroupedResult | None = None
    pointwise: PointwiseResult | None = None
    attention: AttentionResult | None = None

    def terms(self) -> dict[str, Term]:
        """The calibrated terms (``roofline.hardware.efficiency.CALIBRATED_TERMS``) that were measured.

        cuda_core_compute is the larger of the grouped conv's estimate and the depthwise conv's lower
        bound: a depthwise conv did reach the lower bound on CUDA cores, and a smaller term would make the
        model time it compute-bound, slower than it measured. Either alone is used when only it exists.
        """
        terms: dict[str, Term] = {}
        cuda_core = [t for t in (
            self.grouped.cuda_core_compute if self.grouped else None,
            self.depthwise.cuda_core_compute_lower_bound if self.depthwise else None,
        ) if t is not None]  # fmt: skip
        if cuda_core:
            terms["cuda_core_compute"] = max(cuda_core, key=lambda t: t.raw)
        if self.depthwise is not None and self.depthwise.depthwise_bandwidth is not None:
            terms["depthwise_bandwidth"] = self.depthwise.depthwise_bandwidth
        if self.attention is not None:
            terms["attention_compute"] = self.attention.attention_compute
        return {name: terms[name] for name in CALIBRATED_TERMS if name in terms}

    def kernel_efficiency(self) -> dict[str, float]:
        """The calibration file's ``kernel_efficiency`` object: term -> value in (0, 1]."""
        return {name: term.value for name, term in self.terms().items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpu": self.gpu,
            "dtype": CLASS_DTYPE,
            "engine": CLASS_ENGINE,
            "terms": {name: term.to_dict() for name, term in self.terms().items()},
            **{
                name: None if result is None else result.to_dict()
                for name, result in (
                    ("depthwise", self.depthwise),
                    ("grouped", self.grouped),
                    ("pointwise", self.pointwise),
                    ("attention", self.attention),
                )
            },  # fmt: skip
        }


# ------------------------------------------------------------------------ kernel classes: measurements
def require_cuda() -> None:
    """Raise ``RooflineError`` with the reason when torch cannot run CUDA kernels here."""
    from kernels.backends.base import cuda_unavailable_reason

    reason = cuda_unavailable_reason()
    if reason is not None:
        raise RooflineError(f"{reason}; the kernel-class microbenchmarks measure a CUDA GPU")


def _class_gpu(gpu: GPU | None) -> GPU:
    """The database entry to compare with: the terms need its datasheet bandwidth and FP32 peak."""
    require_cuda()
    return gpu if gpu is not None else device_gpu()


def _timed(
    label: str, op: Callable[[], Any], counts: ModelCounts, config: TimingConfig, progress: Progress,
    details: Mapping[str, Any], cudnn_benchmark: bool = False,
) -> KernelTiming:  # fmt: skip
    m = _time(op, 1, config, progress, CLASS_DTYPE, cudnn_benchmark)
    details = {**details, "kernels": list(counts.kernels)}
    return KernelTiming(label, 1.0 / m.median, counts.flops, counts.nbytes, m.invalid_reason, details, m)


def _tensor(shape: tuple[int, ...], dtype: str, device: Any, channels_last: bool = True) -> Any:
    import torch

    t = torch.randn(shape, device=device, dtype=getattr(torch, TORCH_DTYPES[dtype]))
    return t.contiguous(memory_format=torch.channels_last) if channels_last and t.dim() == 4 else t


def conv_program(
    batch: int, channels: int, spatial: int, kernel: int, groups: int, dtype: str, device: Any
) -> Callable[[], Any]:
    """``F.conv2d`` of a channels-last ``batch`` x ``channels`` x ``spatial``^2 input by ``channels``
    filters in ``groups`` groups, stride 1, 'same' padding, no bias: the depthwise (groups = channels) and
    grouped benchmarks' op."""
    import torch.nn.functional as F

    x = _tensor((batch, channels, spatial, spatial), dtype, device)
    w = _tensor((channels, channels // groups, kernel, kernel), dtype, device)

    def program() -> Any:
        return F.conv2d(x, w, None, 1, kernel // 2, 1, groups)

    return program


def add_program(batch: int, channels: int, spatial: int, dtype: str, device: Any) -> Callable[[], Any]:
    """``torch.add(a, b, out=c)`` on channels-last tensors: reads two, writes one (one eager kernel)."""
    import torch

    a = _tensor((batch, channels, spatial, spatial), dtype, device)
    b = _tensor((batch, channels, spatial, spatial), dtype, device)
    c = torch.empty_like(a)

    def program() -> Any:
        return torch.add(a, b, out=c)

    return program


def bn_relu_program(batch: int, channels: int, spatial: int, dtype: str, device: Any) -> Callable[[], Any]:
    """``F.batch_norm(training=False)`` then an in-place ReLU: two eager kernels, BN reading and writing
    the tensor and ReLU reading and writing it again, as the "torch" engine's model counts them. The
    statistics and affine are at ``dtype``, as in a model converted with ``.half()``."""
    import torch
    import torch.nn.functional as F

    x = _tensor((batch, channels, spatial, spatial), dtype, device)
    mean, weight, bias = (_tensor((channels,), dtype, device) for _ in range(3))
    var = _tensor((channels,), dtype, device).abs_() + 0.5

    def program() -> Any:
        return torch.relu_(F.batch_norm(x, mean, var, weight, bias, False))

    return program


def attention_program(
    batch: int, heads: int, seq: int, head_dim: int, dtype: str, device: Any
) -> Callable[[], Any]:
    """``F.scaled_dot_product_attention(q, k, v)`` on ``batch`` x ``heads`` x ``seq`` x ``head_dim`` tensors:
    non-causal, no mask, no dropout (dropout would draw random numbers inside the captured graph)."""
    import torch.nn.functional as F

    q, k, v = (_tensor((batch, heads, seq, head_dim), dtype, device, False) for _ in range(3))

    def program() -> Any:
        return F.scaled_dot_product_attention(q, k, v)

    return program


def depthwise_conv(
    config: TimingConfig = DEFAULT_TIMING,
    progress: Progress = None,
    *,
    gpu: GPU | None = None,
    channels: int = DEPTHWISE_CHANNELS,
    spatial: int = DEPTHWISE_SPATIAL,
    kernel: int = DEPTHWISE_KERNEL,
    batch: int | None = None,
) -> DepthwiseResult:
    """Time a depthwise conv (``depthwise_network``, ``conv_program`` with groups = channels) on this GPU
    and derive its terms (``depthwise_terms``). FP16, channels-last, cuDNN autotuned (``cudnn.benchmark``)
    during the capture warmup; batch (default) from ``default_batch``."""
    gpu = _class_gpu(gpu)
    network = depthwise_network(channels, spatial, kernel)
    batch = batch or default_batch(network, gpu)
    counts = model_counts(network, batch)
    _check_fits(counts.nbytes, f"the depthwise benchmark at batch {batch}", "pass a smaller batch")
    label = f"dwconv{kernel}x{kernel} C{channels} {spatial}x{spatial} batch {batch}"
    if progress:
        progress(label)
    program = conv_program(batch, channels, spatial, kernel, channels, CLASS_DTYPE, _device())
    details = {"op": "F.conv2d groups=C", "channels": channels, "spatial": spatial, "kernel": kernel,
               "batch": batch, "layout": "channels_last"}  # fmt: skip
    timing = _timed(label, program, counts, config, progress, details, cudnn_benchmark=True)
    return depthwise_terms(timing, gpu)


def grouped_conv(
    config: TimingConfig = DEFAULT_TIMING,
    progress: Progress = None,
    *,
    gpu: GPU | None = None,
    gemm_flops_s: float | None = None,
    groups: Sequence[int] = GROUPED_GROUPS,
    channels: int = GROUPED_CHANNELS,
    spatial: int = GROUPED_SPATIAL,
    kernel: int = GROUPED_KERNEL,
    batch: int | None = None,
) -> GroupedResult:
    """Time grouped convs (``conv_program``) at each of ``groups`` and derive cuda_core_compute
    (``grouped_terms``). FP16, channels-last, cuDNN autotuned; each is compared with the model's
    tensor-core rate (``tensor_core_flops_s``) on ``gemm_flops_s``, the measured fp16 GEMM, when given.
    One batch for every width (``default_batch``: the activations do not depend on the group count)."""
    gpu = _class_gpu(gpu)
    if not groups:
        raise RooflineError("grouped_conv needs at least one group count, e.g. (32, 64, 128)")
    networks = [grouped_network(g, channels, spatial, kernel) for g in groups]
    batch = batch or default_batch(networks[0], gpu)
    timings, rates = [], []
    for g, network in zip(groups, networks, strict=True):
        counts = model_counts(network, batch)
        _check_fits(counts.nbytes, f"the grouped benchmark at batch {batch}", "pass a smaller batch")
        label = f"conv{kernel}x{kernel}/g{g} C{channels} {spatial}x{spatial} batch {batch}"
        if progress:
            progress(label)
        program = conv_program(batch, channels, spatial, kernel, g, CLASS_DTYPE, _device())
        details = {"op": "F.conv2d", "groups": g, "channels_per_group": channels // g, "channels": channels,
                   "spatial": spatial, "kernel": kernel, "batch": batch,
                   "layout": "channels_last"}  # fmt: skip
        timings.append(_timed(label, program, counts, config, progress, details, cudnn_benchmark=True))
        rates.append(tensor_core_flops_s(network, batch, gpu, gemm_flops_s))
    return grouped_terms(timings, rates, gpu)


def pointwise(
    config: TimingConfig = DEFAULT_TIMING,
    progress: Progress = None,
    *,
    gpu: GPU | None = None,
    channels: int = POINTWISE_CHANNELS,
    spatial: int = POINTWISE_SPATIAL,
    batch: int | None = None,
) -> PointwiseResult:
    """Time a residual add (``add_program``) and a BN in eval mode + ReLU (``bn_relu_program``), FP16
    channels-last, and check the bandwidth they reach (``pointwise_checks``)."""
    gpu = _class_gpu(gpu)
    add_net, bn_net = add_network(channels, spatial), bn_relu_network(channels, spatial)
    batch = batch or default_batch(add_net, gpu)
    where = f"C{channels} {spatial}x{spatial} batch {batch}"
    timings = []
    for name, network, build, op in (
        ("add", add_net, add_program, "torch.add(out=)"),
        ("bn+relu", bn_net, bn_relu_program, "F.batch_norm(training=False) + relu_"),
    ):
        counts = model_counts(network, batch)
        _check_fits(counts.nbytes, f"the {name} benchmark at batch {batch}", "pass a smaller batch")
        if progress:
            progress(f"{name} {where}")
        program = build(batch, channels, spatial, CLASS_DTYPE, _device())
        details = {"op": op, "shape": [batch, channels, spatial, spatial], "layout": "channels_last"}
        timings.append(_timed(f"{name} {where}", program, counts, config, progress, details))
    return pointwise_checks(timings, gpu)


def attention(
    config: TimingConfig = DEFAULT_TIMING,
    progress: Progress = None,
    *,
    gpu: GPU | None = None,
    gemm_flops_s: float | None = None,
    seq_lens: Sequence[int] = ATTENTION_SEQ_LENS,
    heads: int = ATTENTION_HEADS,
    head_dim: int = ATTENTION_HEAD_DIM,
    tokens: int = ATTENTION_TOKENS,
) -> AttentionResult:
    """Time ``F.scaled_dot_product_attention`` (``attention_program``) on FP16 B x H x S x d tensors at each
    of ``seq_lens`` and derive attention_compute (``attention_terms``) against ``gemm_reference``.

    B = ``tokens`` // S. PyTorch dispatches to its fastest fused kernel (FlashAttention-2 on sm_80 and
    newer for FP16, d = 64: PyTorch docs, ``torch.nn.functional.scaled_dot_product_attention``), as timm's
    attention does. FLOPs = 4 x B x H x S^2 x d (``attention_flops``, checked equal to the model's count of
    its fused attention kernel, ``attention_network``).
    """
    import torch

    gpu = _class_gpu(gpu)
    if not seq_lens:
        raise RooflineError("attention needs at least one sequence length, e.g. (1024, 4096)")
    _positive_int(tokens, "tokens", "pass e.g. 32768")
    reference, source = gemm_reference(gpu, gemm_flops_s)
    timings = []
    for seq in seq_lens:
        batch = max(1, tokens // _positive_int(seq, "every sequence length", "pass e.g. 1024"))
        counts = model_counts(attention_network(seq, heads, head_dim), batch)
        if counts.flops != attention_flops(batch, heads, seq, head_dim):  # the model and the paper agree
            raise RooflineError(
                f"the model counts {counts.flops} attention FLOPs, not 4 B H S^2 d: a model bug"
            )
        _check_fits(counts.nbytes, f"attention at S = {seq}", "pass fewer tokens")
        label = f"sdpa B{batch} H{heads} S{seq} d{head_dim}"
        if progress:
            progress(label)
        program = attention_program(batch, heads, seq, head_dim, CLASS_DTYPE, _device())
        details = {"op": "F.scaled_dot_product_attention", "batch": batch, "heads": heads, "seq": seq,
                   "head_dim": head_dim,
                   "flash_sdp_enabled": torch.backends.cuda.flash_sdp_enabled()}  # fmt: skip
        timings.append(_timed(label, program, counts, config, progress, details))
    return attention_terms(timings, reference, source)


def kernel_classes(
    config: TimingConfig = DEFAULT_TIMING,
    progress: Progress = None,
    *,
    gpu: GPU | None = None,
    gemm_flops_s: float | None = None,
) -> KernelClasses:
    """Every kernel-class benchmark on this GPU. ``gemm_flops_s``: the measured fp16 GEMM rate (the roof
    a calibration sets), which the grouped conv's tensor-core model and attention_compute refer to."""
    gpu = _class_gpu(gpu)
    return KernelClasses(
        gpu=gpu.key,
        depthwise=depthwise_conv(config, progress, gpu=gpu),
        grouped=grouped_conv(config, progress, gpu=gpu, gemm_flops_s=gemm_flops_s),
        pointwise=pointwise(config, progress, gpu=gpu),
        attention=attention(config, progress, gpu=gpu, gemm_flops_s=gemm_flops_s),
    )


# ------------------------------------------------------------------------------------------ conv width sweep
@dataclass(frozen=True)
class SweepPoint:
    """One width of a conv width sweep; unpacks as ``(width, measured_s, predicted_s)``."""

    width: int
    measured_s: float  # 1 / median launches per second of the graph-captured layer
    predicted_s: float  # roofline.analysis.staircase's latency for the same shape
    invalid_reason: str | None = None  # the measurement's, when its windows did not stabilize

    def __iter__(self) -> Iterator[Any]:
        return iter((self.width, self.measured_s, self.predicted_s))


def sweep_network(
    in_channels: int = 64, spatial: int = 56, kernel: int = 3, width: int = 64, name: str = "conv",
    groups: int = 1,
) -> Network:  # fmt: skip
    """One stride-1, 'same'-padded ``kernel`` x ``kernel`` conv, ``in_channels`` -> ``width`` in ``groups``
    groups, at batch 1."""
    for what, value in (("in_channels", in_channels), ("spatial", spatial), ("kernel", kernel),
                        ("width", width), ("groups", groups)):  # fmt: skip
        _positive_int(value, what, "pass a positive integer")
    if kernel % 2 == 0:
        raise RooflineError(f"kernel must be odd so 'same' padding keeps {spatial}x{spatial}, got {kernel}")
    if in_channels % groups or width % groups:
        raise RooflineError(
            f"groups = {groups} must divide both channel counts ({in_channels} -> {width}); pass a divisor"
        )
    in_shape = (1, in_channels, spatial, spatial)
    layer = Conv(
        name=name, inputs=("x",), output=name, input_shapes=(in_shape,),
        output_shape=(1, width, spatial, spatial), kernel=(kernel, kernel), stride=(1, 1),
        padding=(kernel // 2, kernel // 2), dilation=(1, 1), groups=groups,
    )  # fmt: skip
    return Network(name=f"conv{kernel}x{kernel}-{in_channels}-{spatial}", inputs=(("x", in_shape),),
                   outputs=(name,), layers=(layer,))  # fmt: skip


def _widths(widths: Sequence[int]) -> np.ndarray:
    values = sorted({_positive_int(w, "every width", "pass output channel counts >= 1") for w in widths})
    if not values:
        raise RooflineError("widths must name at least one output channel count")
    return np.asarray(values, dtype=np.int64)


def predicted_sweep(
    target: Target,
    batch: int = 32,
    widths: Sequence[int] = tuple(range(16, 513, 16)),
    *,
    in_channels: int = 64,
    spatial: int = 56,
    kernel: int = 3,
) -> np.ndarray:
    """``roofline.analysis.staircase``'s latency (s) of the sweep's conv at each of ``widths``
    (sorted, unique)."""
    batch = _positive_int(batch, "batch", "pass e.g. 32")
    values = _widths(widths)
    fused = FusedNetwork.of(sweep_network(in_channels, spatial, kernel, int(values[-1])))
    return staircase(fused, "conv", target, batch, values).latency_s


def conv_width_sweep(
    target: Target,
    batch: int = 32,
    widths: Sequence[int] = tuple(range(16, 513, 16)),
    config: TimingConfig = DEFAULT_TIMING,
    progress: Progress = None,
    *,
    in_channels: int = 64,
    spatial: int = 56,
    kernel: int = 3,
) -> list[SweepPoint]:
    """Measured and predicted latency of one conv layer as its output width varies (the staircase).

    The layer is a ResNet stage-1 conv by default: 3x3, stride 1, 56x56, 64 -> ``width`` channels, no
    bias, channels_last, at ``dtype`` (the PyTorch backend's layout; cuDNN autotuned per shape). Each
    width is graph-captured and timed on its own; measured latency = 1 / median launches per second, the
    back-to-back time per launch that a network's sequential kernels see. The prediction is
    ``roofline.analysis.staircase`` for the same shape (``predicted_sweep``), so steps line up width by width.
    """
    import torch
    import torch.nn.functional as F

    gpu, dtype = target.gpu, target.dtype
    _check_dtype(dtype, LAYER_DTYPES, "the conv sweep")
    batch = _positive_int(batch, "batch", "pass e.g. 32")
    values = _widths(widths)
    predicted = predicted_sweep(
        target, batch, values, in_channels=in_channels, spatial=spatial, kernel=kernel
    )
    _check_device(gpu)
    say = progress or (lambda _message: None)
    device = _device()
    tdtype = getattr(torch, TORCH_DTYPES[dtype])
    x = torch.randn(batch, in_channels, spatial, spatial, device=device, dtype=tdtype)
    x = x.contiguous(memory_format=torch.channels_last)
    points = []
    for width, predicted_s in zip(values, predicted, strict=True):
        say(f"conv{kernel}x{kernel} {in_channels}->{width} at {spatial}x{spatial}, batch {batch}, {dtype}")
        w = torch.randn(int(width), in_channels, kernel, kernel, device=device, dtype=tdtype)
        w = w.contiguous(memory_format=torch.channels_last)

        def op(w: Any = w) -> Any:
            return F.conv2d(x, w, None, 1, kernel // 2)

        m = _time(op, 1, config, progress, dtype, cudnn_benchmark=True)
        points.append(SweepPoint(int(width), 1.0 / m.median, float(predicted_s), m.invalid_reason))
    return points


# --------------------------------------------------------------------------------- measured latency table
def _check_device(gpu: GPU) -> None:
    here = device_gpu()
    if here.key != gpu.key:
        raise RooflineError(
            f"this GPU is {here.key}, not {gpu.key}: measurements hold for the GPU they ran on; "
            f"pass {here.key}"
        )


#: The fused activations ``kernel_program`` rebuilds: all of ``roofline.model.fusion.ACTIVATIONS``. Their
#: parameters (clamp/hardtanh bounds, leaky_relu slope) are not in the IR; torch's defaults stand in,
#: which does not change the time of a one-read-one-write elementwise kernel.
TORCH_ACTIVATIONS = frozenset(
    {
        "relu", "relu6", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh",
        "hardswish", "hardsigmoid", "hardtanh", "clamp", "mish", "softplus",
    }
)  # fmt: skip


def unmeasurable_reason(kernel: Kernel) -> str | None:
    """None when ``measured_latency_table`` can rebuild ``kernel`` in torch, else why it stays predicted.

    Rebuilt: a conv (1-3 spatial dims, any groups, depthwise included) or linear anchor, then
    ``roofline.model.fusion``'s epilogue: a batch norm folded into the anchor's weights (a bias), the
    activations of ``TORCH_ACTIVATIONS`` and one residual add. Everything else stays predicted:
    pointwise chains, pools, matmuls, softmax, resize, unsupported ops, and conv/linear kernels with an
    epilogue op outside that list (an activation ``roofline.model.fusion`` learns later).
    """
    anchor = kernel.anchor
    if isinstance(anchor, Conv):
        if not 1 <= len(anchor.kernel) <= 3:
            return f"{len(anchor.kernel)}-d convolution"
    elif not isinstance(anchor, Linear):
        return f"{anchor.op} kernels are not rebuilt in torch"
    for layer in kernel.fused:
        if isinstance(layer, Norm) and layer.fn == "batch":
            continue
        if isinstance(layer, Elementwise) and layer.fn == "add":
            continue
        if isinstance(layer, Elementwise) and layer.fn in TORCH_ACTIVATIONS and not layer.weights:
            continue
        return f"fused {layer.describe()} is not rebuilt in torch"
    return None


def kernel_program(kernel: Kernel, batch: int, dtype: str, device: Any) -> Callable[[], Any]:
    """A closure that runs ``kernel`` at ``batch`` in torch (random weights and inputs on ``device``).

    The anchor becomes ``F.conv{1,2,3}d`` or ``F.linear``; a batch norm right after it is folded into a
    bias, as inference engines fold it (``roofline.model.fusion`` rule 1); activations and the residual add
    follow in the kernel's order. 4-d and 5-d activations and weights are channels-last. PyTorch eager
    runs the epilogue as separate elementwise kernels (cuDNN/cuBLAS fuse no activation here), so a
    measured entry is what PyTorch takes for the fused kernel, not what a fusing engine would.
    ``unmeasurable_reason`` must be None for ``kernel``.
    """
    import torch
    import torch.nn.functional as F

    reason = unmeasurable_reason(kernel)
    if reason is not None:
        raise RooflineError(f"{kernel.describe()} cannot be rebuilt in torch: {reason}")
    tdtype = getattr(torch, TORCH_DTYPES[dtype])
    anchor = kernel.anchor
    activations: dict[str, Callable[[Any], Any]] = {
        "relu": F.relu, "relu6": F.relu6, "leaky_relu": F.leaky_relu, "elu": F.elu, "gelu": F.gelu,
        "silu": F.silu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "hardswish": F.hardswish,
        "hardsigmoid": F.hardsigmoid, "hardtanh": F.hardtanh, "mish": F.mish, "softplus": F.softplus,
        "clamp": lambda y: torch.clamp(y, 0.0, 6.0),
    }  # fmt: skip

    def tensor(shape: tuple[int, ...]) -> Any:
        t = torch.randn(shape, device=device, dtype=tdtype)
        if t.dim() == 4:
            return t.contiguous(memory_format=torch.channels_last)
        if t.dim() == 5:
            return t.contiguous(memory_format=torch.channels_last_3d)
        return t

    x = tensor(scale_batch(anchor.input_shapes[0], batch, 1))
    folded_bn = any(isinstance(layer, Norm) for layer in kernel.fused)
    weight_shape = anchor.weight_shapes()[0]
    weight = tensor(weight_shape)
    bias = tensor((weight_shape[0],)) if anchor.bias or folded_bn else None
    if isinstance(anchor, Conv):
        dims = len(anchor.kernel)
        conv = getattr(F, f"conv{dims}d")
        stride = anchor.stride or (1,) * dims
        padding = anchor.padding or (0,) * dims
        dilation = anchor.dilation or (1,) * dims

        def run_anchor() -> Any:
            return conv(x, weight, bias, stride, padding, dilation, anchor.groups)
    else:

        def run_anchor() -> Any:
            return F.linear(x, weight, bias)

    steps: list[Callable[[Any], Any]] = []
    for layer in kernel.fused:
        if isinstance(layer, Norm):
            continue  # folded into ``bias`` above
        if layer.fn == "add":
            residual = tensor(scale_batch(layer.output_shape, batch, 1))
            steps.append(lambda y, r=residual: y.add_(r))
        else:
            steps.append(activations[layer.fn])

    def program() -> Any:
        y = run_anchor()
        for step in steps:
            y = step(y)
        return y

    return program


def measured_latency_table(
    network: str | Network,
    target: Target,
    batch: int = 1,
    config: TimingConfig = DEFAULT_TIMING,
    progress: Progress = None,
) -> latency_table.LatencyTable:
    """A latency table of ``network`` on this GPU: conv/linear kernels measured, the rest predicted.

    Every distinct fused kernel (``roofline.analysis.latency_table.kernel_key``) gets the roofline prediction
    (``predicted_table``); those ``unmeasurable_reason`` accepts (conv or linear anchor, folded batch
    norm, activations, one residual add) are rebuilt by ``kernel_program``, graph-captured, timed, and
    replace it with ``source="measured"``. latency_s = 1 / median launches per second over the kept
    windows; ``samples`` = timed launches (launches per window x windows). A measurement whose windows
    never stabilized keeps the prediction. The table's backend is "pytorch": eager PyTorch kernels,
    epilogue unfused (see ``kernel_program``).
    """

    from roofline.model.resolve import resolve

    dtype = target.dtype
    _check_dtype(dtype, LAYER_DTYPES, "a measured latency table")
    batch = _positive_int(batch, "batch", "pass e.g. 1 or 32")
    net = resolve(network) if isinstance(network, str) else network
    _check_device(target.gpu)
    estimate = evaluate(net, target, batch)
    predicted = latency_table.predicted_table(estimate, backend=TABLE_BACKEND)
    say = progress or (lambda _message: None)
    import torch

    made = provenance()
    where = (
        f"kernels.microbench on {made['host']}, {made['date']}: torch {torch.__version__} eager in a CUDA "
        f"graph, {torch.cuda.get_device_name()}"
    )
    device = _device()
    measured: dict[str, latency_table.Entry] = {}
    skipped: dict[str, int] = {}
    for kernel in estimate.fused.kernels:
        key = latency_table.kernel_key(kernel, batch)
        if key in measured:
            continue
        reason = unmeasurable_reason(kernel)
        if reason is not None:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        say(f"{kernel.name} ({kernel.describe()}), batch {batch}, {dtype}")
        program = kernel_program(kernel, batch, dtype, device)
        m = _time(program, 1, config, progress, dtype, cudnn_benchmark=True)
        if m.invalid_reason is not None:
            say(f"{kernel.name}: {m.invalid_reason}; keeping the prediction")
            continue
        stamp = f"{where}; 1/median of {len(m.samples)} windows"
        measured[key] = latency_table.Entry(
            1.0 / m.median, "measured", m.launches_per_window * len(m.samples), stamp
        )
    for reason, count in skipped.items():
        say(f"predicted, not measured ({count} kernels): {reason}")
    table = latency_table.LatencyTable(target.gpu.key, dtype, TABLE_BACKEND, measured)
    return latency_table.merge(predicted, table)
