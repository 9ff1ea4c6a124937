"""Roofline evaluation of a fused network on one GPU, datatype and batch.

Per kernel k (Williams, Waterman, Patterson, "Roofline", CACM 2009; DESIGN.md,
"Core definitions" and "Waves and the tail effect"):

    AI_k     = FLOPs_k / bytes_k
    time_k   = max(max(FLOPs_k / (P x q_k), bytes_k / B) + t_launch, t_host)
    bound_k  = "compute" if FLOPs_k / (P x q_k) >= bytes_k / B else "memory"

where P and B are the target's achievable roof (``Target.roof``),
t_launch and t_host are the engine's per-kernel costs (``roofline.analysis.engines``), the
kernels are those the engine's fusion policy makes, and q_k is the wave
model's tile x tail efficiency (``roofline.analysis.waves``): compute time is waves x
time per wave. With the target's ``waves=False``, q_k = 1, the flat roofline. Kernels run one after
another, as in an engine's single stream, so for the network

    latency      = sum_k time_k
    throughput   = batch x images_per_sample / latency   (images/s; f per sample when folded)
    achieved     = FLOPs_per_image x throughput          (FLOP/s)
    utilization  = achieved / peak                        (DESIGN.md)
    AI           = sum_k FLOPs_k / sum_k bytes_k

The "peak" of utilization and CMR is the datasheet roof unless the target
asks for the achievable one; the result always names it.

Batch enters only through the byte and FLOP counts: activations scale with it
and weights are read once per batch, so per-kernel arrays at batch 1 are
rescaled instead of rebuilding the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from roofline.analysis.target import Target
from roofline.analysis.waves import KERNEL_CLASSES, Grid, WaveStats, decompose, work_of
from roofline.errors import RooflineError
from roofline.hardware.gpus import GPU, Roof
from roofline.model.fusion import TENSORRT, FusionPolicy, Kernel, fuse
from roofline.model.ir import Network, numel


@dataclass(frozen=True)
class FusedNetwork:
    """A network's kernels with their batch-1 counts as arrays."""

    network: Network
    policy: FusionPolicy  # the engine rules that made the kernels
    kernels: tuple[Kernel, ...]
    flops: np.ndarray  # per kernel, per image
    activation_elems: np.ndarray  # per kernel, per image
    weight_elems: np.ndarray  # per kernel, once per batch
    grid: Grid  # per kernel, how its work is cut into blocks

    @classmethod
    def of(cls, network: Network, policy: FusionPolicy = TENSORRT) -> FusedNetwork:
        per_image = network.with_batch(1)
        kernels = fuse(per_image, policy)
        return cls(
            network=per_image,
            policy=policy,
            kernels=kernels,
            flops=np.array([k.flops() for k in kernels], dtype=np.float64),
            activation_elems=np.array(
                [sum(numel(s) for _, s in k.inputs) + numel(k.output_shape) for k in kernels],
                dtype=np.float64,
            ),
            weight_elems=np.array([k.weight_elems for k in kernels], dtype=np.float64),
            grid=Grid.of([work_of(k) for k in kernels]),
        )

    def bytes(self, batch: int, dtype_bytes: int) -> np.ndarray:
        return (self.activation_elems * batch + self.weight_elems) * dtype_bytes


@dataclass(frozen=True)
class Estimate:
    """The roofline prediction of one network on one target at one batch."""

    fused: FusedNetwork
    target: Target
    batch: int
    flops: np.ndarray
    bytes: np.ndarray
    compute_s: np.ndarray
    time_s: np.ndarray
    waves: WaveStats | None  # None for the flat roofline

    @property
    def network(self) -> Network:
        return self.fused.network

    @property
    def gpu(self) -> GPU:
        return self.target.gpu

    @property
    def dtype(self) -> str:
        return self.target.dtype

    @property
    def model_roof(self) -> Roof:
        """The roof that times kernels."""
        return self.target.roof

    @property
    def peak(self) -> Roof:
        """The roof that utilization and CMR refer to."""
        return self.target.reference

    @cached_property
    def total_flops(self) -> float:
        return float(self.flops.sum())

    @cached_property
    def total_bytes(self) -> float:
        return float(self.bytes.sum())

    @property
    def arithmetic_intensity(self) -> float:
        return self.total_flops / self.total_bytes

    @property
    def bound(self) -> str:
        return "compute" if self.arithmetic_intensity >= self.peak.cmr else "memory"

    @cached_property
    def latency_s(self) -> float:
        return float(self.time_s.sum())

    @property
    def images(self) -> int:
        """Images per batch: a folded network's sample holds several."""
        return self.batch * self.network.images_per_sample

    @property
    def flops_per_image(self) -> float:
        ips = self.network.images_per_sample
        return self.network.flops() / ips if ips > 1 else self.network.flops()

    @property
    def throughput_img_s(self) -> float:
        return self.images / self.latency_s

    @property
    def achieved_flops_s(self) -> float:
        return self.total_flops / self.latency_s

    @property
    def utilization(self) -> float:
        return self.achieved_flops_s / self.peak.flops_s

    def kernel_ai(self) -> np.ndarray:
        return self.flops / self.bytes

    def kernel_bound(self) -> list[str]:
        compute = self.compute_s >= self.bytes / self.model_roof.dram_bytes_s
        return ["compute" if c and f > 0 else "memory" for c, f in zip(compute, self.flops, strict=True)]

    def to_dict(self, layers: bool = True) -> dict[str, Any]:
        net = self.network
        ips = net.images_per_sample
        out: dict[str, Any] = {
            "model": net.name,
            "source": net.source,
            "gpu": self.gpu.key,
            "gpu_name": self.gpu.name,
            "dtype": self.dtype,
            "batch": self.batch,
            "resolution": net.resolution,
            "images_per_sample": ips,
            "flops_per_image": self.flops_per_image,
            "macs_per_image": net.macs() / ips if ips > 1 else net.macs(),
            "elementwise_ops_per_image": sum(k.elementwise_ops() for k in self.fused.kernels),
            "params": net.params(),
            "bytes": self.total_bytes,
            "arithmetic_intensity": self.arithmetic_intensity,
            "cmr": self.peak.cmr,
            "bound": self.bound,
            "kernels": len(self.fused.kernels),
            "predicted": {
                "latency_s": self.latency_s,
                "throughput_img_s": self.throughput_img_s,
                "tflops": self.achieved_flops_s / 1e12,
                "utilization": self.utilization,
            },
            "peak": self.peak.to_dict(),
            "model_roof": self.model_roof.to_dict(),
            "engine": self.target.engine.to_dict(),
            "kernel_overhead_s": self.target.engine.kernel_overhead_s,
            "wave_model": self.waves is not None,
            "unsupported_ops": dict(net.unsupported_ops),
        }
        if layers:
            ai, bound = self.kernel_ai(), self.kernel_bound()
            out["layers"] = [
                {
                    "name": k.name,
                    "op": k.describe(),
                    "fused": [layer.name for layer in k.fused],
                    "flops": float(self.flops[i]),
                    "bytes": float(self.bytes[i]),
                    "arithmetic_intensity": float(ai[i]),
                    "bound": bound[i],
                    "time_s": float(self.time_s[i]),
                    **(self.waves.row(i) if self.waves is not None else {}),
                }
                for i, k in enumerate(self.fused.kernels)
            ]
        return out


def fused_for(network: Network | FusedNetwork, target: Target) -> FusedNetwork:
    """``network``'s kernels under ``target``'s engine; a network fused by other rules is fused again."""
    policy = target.engine.fusion
    if isinstance(network, FusedNetwork):
        return network if network.policy == policy else FusedNetwork.of(network.network, policy)
    return FusedNetwork.of(network, policy)


def check_batch(batch: int) -> None:
    """One-line error for a batch that is not a positive integer, shared by every evaluator."""
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise RooflineError(f"batch must be a positive integer, got {batch!r}")


def evaluate(network: Network | FusedNetwork, target: Target, batch: int = 1) -> Estimate:
    """Predict ``network`` on ``target`` at ``batch`` (see module doc)."""
    check_batch(batch)
    fused = fused_for(network, target)
    flops = fused.flops * batch
    nbytes = fused.bytes(batch, target.dtype_bytes)
    compute_s, time_s, stats = kernel_times(flops, nbytes, fused.grid, batch, target)
    if not np.isfinite(time_s).all():  # inputs are checked at the edges, so this is a bug: never print NaN
        raise FloatingPointError(f"non-finite kernel time predicting {fused.network.name} at batch {batch}")
    return Estimate(
        fused=fused, target=target, batch=batch, flops=flops, bytes=nbytes, compute_s=compute_s,
        time_s=time_s, waves=stats,
    )  # fmt: skip


def kernel_times(
    flops: np.ndarray,
    nbytes: np.ndarray,
    grid: Grid,
    batch: int,
    target: Target,
    stats: WaveStats | None = None,
) -> tuple[np.ndarray, np.ndarray, WaveStats | None]:
    """(compute_s, time_s, wave stats) per kernel at ``batch``: time_k of the module doc.

    Compute and memory time follow each kernel's class (``roofline.hardware.efficiency``,
    module doc there). Kernels are independent here, so the arrays may hold the kernels of
    many networks at once (``roofline.analysis.blocks`` evaluates whole search spaces this way).
    The wave decomposition depends only on the GPU, tiles and shapes, not on the efficiency
    terms: a caller sweeping those passes ``stats`` from a first call instead of recomputing it.
    """
    roof, eff, gpu = target.roof, target.kernel_efficiency, target.gpu
    cls = {name: grid.kernel_class == i for i, name in enumerate(KERNEL_CLASSES)}
    # Tensor-core kernels: short reductions pay the pipeline fill, unaligned channels the padding.
    k = grid.k.astype(np.float64)
    fill = np.where(k > 0, k / (k + eff.k_fill_elems), 1.0)
    align = -(-eff.tensor_alignment_bytes // target.dtype_bytes)
    channels = grid.channels.astype(np.float64)
    padding = np.where(channels > 0, channels / (np.ceil(np.maximum(channels, 1) / align) * align), 1.0)
    tensor_rate = roof.flops_s * np.where(cls["attention"], eff.attention_compute, fill * padding)
    if target.waves:
        if stats is None:
            count, m = grid.at_batch(batch)
            stats = decompose(grid.mapping, count, m, grid.n, target)
        tensor_rate = tensor_rate * stats.quantization
    cuda_core_s = flops / (gpu.peak("fp32") * eff.cuda_core_compute)
    compute_s = np.where(cls["depthwise"], cuda_core_s, flops / tensor_rate)
    compute_s = np.where(cls["grouped"], np.minimum(compute_s, cuda_core_s), compute_s)
    bandwidth = np.where(
        cls["depthwise"], gpu.dram_bandwidth_bytes_s * eff.depthwise_bandwidth, roof.dram_bytes_s
    )
    engine = target.engine
    time_s = np.maximum(
        np.maximum(compute_s, nbytes / bandwidth) + engine.kernel_overhead_s, engine.host_issue_s
    )
    return compute_s, time_s, stats
