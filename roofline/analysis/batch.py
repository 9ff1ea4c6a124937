"""Batch size: how arithmetic intensity grows with it, and the largest batch that fits.

Weights are read once per batch and activations scale with it (DESIGN.md,
"Batch size"; the GPU-utilization study's batch analysis). With F the FLOPs
and A the fused activation bytes of one image and W the weight bytes,

    AI(N)       = N F / (N A + W)                  (increasing in N)
    AI_limit    = lim N->inf AI(N) = F / A
    N_cross     = min { N : AI(N) >= CMR } = ceil(CMR W / (F - CMR A))   if F / A > CMR,
                  never otherwise

per kernel and for the whole network. The largest batch that fits in GPU
memory (the study's setting) solves

    W + N x live_per_image + workspace + reserved <= memory_bytes

where live_per_image is the peak, over the kernel sequence, of the activation
bytes alive at once: an engine such as TensorRT reuses a tensor's memory once
its last reader has run (TensorRT Developer Guide, "Memory": activation memory
is shared between layers whose lifetimes do not overlap), and intermediates
fused into a kernel never reach DRAM. The two constants below are assumptions,
not measurements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from roofline.analysis.predict import Estimate, FusedNetwork, evaluate
from roofline.analysis.target import Target
from roofline.errors import RooflineError
from roofline.model.ir import Concat, numel

#: CUDA context, cuBLAS/cuDNN handles and allocator slack: ~0.3-0.6 GB on recent
#: drivers (what nvidia-smi shows for an idle PyTorch process); rounded up.
RESERVED_BYTES = 1 << 30
#: Scratch memory a convolution or GEMM tactic may use (TensorRT's
#: ``MemoryPoolType.WORKSPACE``); 1 GiB is a common explicit setting.
WORKSPACE_BYTES = 1 << 30


def live_activation_elems(fused: FusedNetwork) -> int:
    """Peak activation elements alive at once, per image (see module doc).

    A concat is eliminated by the fusion pass: its inputs are written straight
    into the joined buffer, so they stay alive as long as the joined tensor is read.
    """
    net = fused.network
    joined = {layer.output: layer.inputs for layer in net.layers if isinstance(layer, Concat)}

    def parts(name: str) -> tuple[str, ...]:
        return tuple(p for i in joined[name] for p in parts(i)) if name in joined else (name,)

    size: dict[str, int] = {name: numel(shape) for name, shape in net.inputs}
    last_read: dict[str, int] = {}
    end = len(fused.kernels)
    for k, kernel in enumerate(fused.kernels):
        size[kernel.output] = numel(kernel.output_shape)
        for name, _ in kernel.inputs:
            for part in parts(name):
                last_read[part] = k
    for name in net.outputs:
        for part in parts(name):
            last_read[part] = end
    born = {name: -1 for name, _ in net.inputs}
    born.update({kernel.output: k for k, kernel in enumerate(fused.kernels)})
    delta = np.zeros(end + 3, dtype=np.int64)  # time -1 (inputs) .. end (outputs), then one past
    for name, start in born.items():
        # A tensor no kernel reads is still written, so it lives through its own kernel.
        stop = max(last_read.get(name, start), start)
        delta[start + 1] += size[name]
        delta[stop + 2] -= size[name]
    return int(np.cumsum(delta).max())


@dataclass(frozen=True)
class MemoryFit:
    """What one batch costs in GPU memory, and the largest batch that fits."""

    gpu_memory_bytes: int
    weight_bytes: int
    live_bytes_per_image: int
    workspace_bytes: int
    reserved_bytes: int
    max_batch: int

    def bytes_at(self, batch: int) -> int:
        fixed = self.weight_bytes + self.workspace_bytes + self.reserved_bytes
        return fixed + batch * self.live_bytes_per_image

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpu_memory_bytes": self.gpu_memory_bytes,
            "weight_bytes": self.weight_bytes,
            "live_activation_bytes_per_sample": self.live_bytes_per_image,
            "workspace_bytes": self.workspace_bytes,
            "reserved_bytes": self.reserved_bytes,
            "max_batch": self.max_batch,
        }


def memory_fit(fused: FusedNetwork, target: Target) -> MemoryFit:
    """The largest batch whose weights, peak live activations and workspace fit (module doc)."""
    gpu, dtype, dtype_bytes = target.gpu, target.dtype, target.dtype_bytes
    weights = int(fused.weight_elems.sum()) * dtype_bytes
    per_image = live_activation_elems(fused) * dtype_bytes
    free = gpu.memory_bytes - weights - WORKSPACE_BYTES - RESERVED_BYTES
    if free < per_image:
        raise RooflineError(
            f"{fused.network.name} does not fit on {gpu.name} at {dtype} even at batch 1 "
            f"({weights / 2**30:.2f} GiB of weights, {per_image / 2**20:.1f} MiB of activations per sample, "
            f"{(WORKSPACE_BYTES + RESERVED_BYTES) / 2**30:.0f} GiB workspace and context); "
            "pick a GPU with more memory or a narrower dtype"
        )
    return MemoryFit(gpu.memory_bytes, weights, per_image, WORKSPACE_BYTES, RESERVED_BYTES, free // per_image)


def resolve_batch(batch: int | str, fused: FusedNetwork, target: Target) -> int:
    """``batch`` itself, or for ``"max"`` the largest batch that fits (``memory_fit``)."""
    if batch == "max":
        return memory_fit(fused, target).max_batch
    return batch  # type: ignore[return-value]


def cmr_crossing_batch(flops: float, activation_bytes: float, weight_bytes: float, cmr: float) -> int | None:
    """Smallest batch N with N F / (N A + W) >= CMR, or None if AI never reaches it (module doc)."""
    surplus = flops - cmr * activation_bytes
    if surplus < 0 or (surplus == 0 and weight_bytes > 0):
        return None
    return 1 if surplus == 0 else max(1, math.ceil(cmr * weight_bytes / surplus))


def sweep_batches(max_batch: int) -> list[int]:
    """Powers of two up to ``max_batch``, and ``max_batch`` itself."""
    batches = [1 << i for i in range(max_batch.bit_length()) if 1 << i <= max_batch]
    return batches + ([max_batch] if batches[-1] != max_batch else [])


@dataclass(frozen=True)
class BatchSweep:
    """Predictions at each batch of ``sweep_batches``, plus the large-batch limits."""

    fused: FusedNetwork
    fit: MemoryFit
    estimates: tuple[Estimate, ...]
    ai_limit: float
    kernel_ai_limit: np.ndarray  # F / A per kernel (inf for a kernel with no activations)
    cmr_crossing_batch: int | None

    @property
    def cmr(self) -> float:
        return self.estimates[0].peak.cmr

    def compute_kernels(self) -> np.ndarray:
        """Kernels that carry FLOPs: the share above the CMR counts only these."""
        return self.fused.flops > 0

    def share_above_cmr(self, estimate: Estimate) -> float:
        mask = self.compute_kernels()
        return float((estimate.kernel_ai()[mask] >= self.cmr).mean()) if mask.any() else 0.0

    def to_dict(self, layers: bool = True) -> dict[str, Any]:
        first = self.estimates[0]
        out: dict[str, Any] = {
            "model": self.fused.network.name,
            "gpu": first.gpu.key,
            "dtype": first.dtype,
            "cmr": self.cmr,
            "max_batch": self.fit.max_batch,
            "memory": self.fit.to_dict(),
            "ai_limit": self.ai_limit,
            "cmr_crossing_batch": self.cmr_crossing_batch,
            "cmr_crossing_fits": self.cmr_crossing_batch is not None
            and self.cmr_crossing_batch <= self.fit.max_batch,
            "points": [
                {
                    "batch": e.batch,
                    "arithmetic_intensity": e.arithmetic_intensity,
                    "throughput_img_s": e.throughput_img_s,
                    "utilization": e.utilization,
                    "latency_s": e.latency_s,
                    "bound": e.bound,
                    "share_of_layers_above_cmr": self.share_above_cmr(e),
                    "memory_bytes": self.fit.bytes_at(e.batch),
                    **({"layer_arithmetic_intensity": e.kernel_ai().tolist()} if layers else {}),
                }
                for e in self.estimates
            ],
        }
        if layers:
            out["layers"] = [
                {"name": k.name, "op": k.describe(), "ai_limit": float(limit)}
                for k, limit in zip(self.fused.kernels, self.kernel_ai_limit, strict=True)
            ]
        return out


def batch_sweep(fused: FusedNetwork, target: Target) -> BatchSweep:
    """Evaluate ``fused`` on ``target`` at every batch of ``sweep_batches(max batch that fits)``."""
    fit = memory_fit(fused, target)
    estimates = tuple(evaluate(fused, target, b) for b in sweep_batches(fit.max_batch))
    dtype_bytes = target.dtype_bytes
    flops = float(fused.flops.sum())
    act_bytes = fused.activation_elems * dtype_bytes
    with np.errstate(divide="ignore"):
        kernel_limit = np.where(act_bytes > 0, fused.flops / np.maximum(act_bytes, 1e-300), np.inf)
    crossing = cmr_crossing_batch(
        flops, float(act_bytes.sum()), float(fused.weight_elems.sum()) * dtype_bytes, estimates[0].peak.cmr
    )
    return BatchSweep(fused, fit, estimates, flops / float(act_bytes.sum()), kernel_limit, crossing)
