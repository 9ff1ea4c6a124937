"""Microbenchmarks that calibrate the roofline: GEMM peak, copy bandwidth, conv width sweep, latency table.

Each benchmark keeps its operands on the device, captures its op in a
``torch.cuda.CUDAGraph`` (after a warmup on a side stream, as the PyTorch CUDA
semantics notes, "CUDA Graphs", require), and times ``graph.replay`` with
``kernels.timing.measure`` on a dedicated ``torch.cuda.Stream`` (DESIGN.md,
"Measuring on a GPU"). The figures they produce are the *achievable* roof of
``roofline.hardware.gpus``: the best large-GEMM rate per datatype (the utilization
study's peak: V100 100 TFLOP/s achieved vs 125 datasheet) and a STREAM-like
device-to-device copy bandwidth.

Counting conventions:

* GEMM FLOPs = 2 x M x N x K: FLOPs are always 2 x multiply-accumulates
  (``torch.utils.flop_counter``; DESIGN.md, "Core definitions").
* copy bytes = read + write = 2 x buffer size, as McCalpin's STREAM "Copy"
  kernel counts ``a[i] = b[i]`` (STREAM FAQ, "How are the bytes counted?").

The pure helpers (``gemm_dtypes``, ``gemm_flops``, ``copy_bytes``,
``predicted_sweep``, ``unmeasurable_reason``) need neither torch nor CUDA;
everything that measures imports torch lazily and needs a CUDA GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from kernels.provenance import provenance
from kernels.timing import Measurement, TimingConfig, measure
from roofline.analysis import latency_table
from roofline.analysis.predict import FusedNetwork, evaluate
from roofline.analysis.staircase import staircase
from roofline.analysis.target import Target
from roofline.dtypes import DTYPE_BYTES
from roofline.errors import RooflineError
from roofline.hardware.gpus import GPU, match_device
from roofline.model.fusion import Kernel
from roofline.model.ir import Conv, Elementwise, Linear, Network, Norm, scale_batch

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
    in_channels: int = 64, spatial: int = 56, kernel: int = 3, width: int = 64, name: str = "conv"
) -> Network:
    """One stride-1, 'same'-padded ``kernel`` x ``kernel`` conv, ``in_channels`` -> ``width``, at batch 1."""
    for what, value in (("in_channels", in_channels), ("spatial", spatial), ("kernel", kernel),
                        ("width", width)):  # fmt: skip
        _positive_int(value, what, "pass a positive integer")
    if kernel % 2 == 0:
        raise RooflineError(f"kernel must be odd so 'same' padding keeps {spatial}x{spatial}, got {kernel}")
    in_shape = (1, in_channels, spatial, spatial)
    layer = Conv(
        name=name, inputs=("x",), output=name, input_shapes=(in_shape,),
        output_shape=(1, width, spatial, spatial), kernel=(kernel, kernel), stride=(1, 1),
        padding=(kernel // 2, kernel // 2), dilation=(1, 1),
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
