"""Latency staircase: one layer's predicted latency as its output width varies.

For a dense convolution or linear layer with K0 output channels, every weight
(kernel, bias, folded batch norm) and every output or fused residual element
belongs to one output channel, while the input does not, so at width w

    FLOPs(w) = FLOPs(K0) x w / K0
    bytes(w) = input bytes + (weight + output + residual bytes at K0) x w / K0

and the latency is ``roofline.analysis.predict``'s kernel time with the wave model of
``roofline.analysis.waves`` (GEMM N = w). Compute time is constant while the launched
work is, so latency is a staircase in w (DESIGN.md, "Waves and the tail
effect"; the tail-effect study). A *step* is a run of widths with the same
launched work; its *optimal width* maximizes utilization x throughput, which
is the step's right edge whenever the layer is compute-bound there (latency
flat, FLOPs growing).
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from roofline.analysis.predict import FusedNetwork, fused_for, kernel_times
from roofline.analysis.target import Target
from roofline.analysis.waves import Grid, WaveStats, work_of
from roofline.errors import RooflineError
from roofline.model.ir import Conv, Linear, numel


def find_kernel(fused: FusedNetwork, layer: str) -> int:
    """Index of the kernel that runs ``layer`` (its anchor or a layer fused into it)."""
    for i, k in enumerate(fused.kernels):
        if any(member.name == layer for member in k.layers):
            return i
    names = [member.name for k in fused.kernels for member in k.layers]
    close = difflib.get_close_matches(layer, names, n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise RooflineError(
        f"{fused.network.name} has no layer {layer!r}: {hint}run `roofline analyze {fused.network.name}` "
        "for the layer names"
    )


@dataclass(frozen=True)
class Staircase:
    layer: str
    op: str
    target: Target
    batch: int
    width: int  # the layer's current width
    widths: np.ndarray
    flops: np.ndarray
    bytes: np.ndarray
    compute_s: np.ndarray
    latency_s: np.ndarray
    waves: WaveStats
    peak_flops_s: float
    closed: bool  # whether the width after the last one starts a new step

    @property
    def utilization(self) -> np.ndarray:
        return self.flops / self.latency_s / self.peak_flops_s

    @property
    def throughput_img_s(self) -> np.ndarray:
        return self.batch / self.latency_s

    @cached_property
    def step_id(self) -> np.ndarray:
        """Widths with equal launched work share a step (consecutive runs)."""
        work = self.waves.launched * self.waves.tile_m * self.waves.tile_n
        return np.concatenate([[0], np.cumsum(work[1:] != work[:-1])])

    def steps(self) -> list[dict[str, Any]]:
        """One entry per step: its width range, waves, latency and optimal width."""
        score = self.utilization * self.throughput_img_s
        out = []
        for s in range(int(self.step_id[-1]) + 1):
            idx = np.flatnonzero(self.step_id == s)
            best = idx[np.argmax(score[idx])]
            out.append(
                {
                    "first_width": int(self.widths[idx[0]]),
                    "last_width": int(self.widths[idx[-1]]),
                    "waves": int(self.waves.waves[best]),
                    "wave_time": float(self.waves.wave_time[best]),
                    "tile": self.waves.tile[best],
                    "min_latency_s": float(self.latency_s[idx].min()),
                    "max_latency_s": float(self.latency_s[idx].max()),
                    "optimal_width": int(self.widths[best]),
                    "closed": bool(s < self.step_id[-1] or self.closed),
                    "utilization": float(self.utilization[best]),
                    "throughput_img_s": float(self.throughput_img_s[best]),
                }
            )
        return out

    def edges(self) -> np.ndarray:
        """Widths after which the next width costs more launched work."""
        return self.widths[:-1][self.step_id[1:] != self.step_id[:-1]]

    def optimal_widths(self) -> list[int]:
        """Optimal widths of the steps that end inside the range."""
        return [s["optimal_width"] for s in self.steps() if s["closed"]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "op": self.op,
            "gpu": self.target.gpu.key,
            "dtype": self.target.dtype,
            "batch": self.batch,
            "width": self.width,
            "edges": [int(w) for w in self.edges()],
            "optimal_widths": self.optimal_widths(),
            "steps": self.steps(),
            "points": [
                {
                    "width": int(w),
                    "latency_s": float(self.latency_s[i]),
                    "utilization": float(self.utilization[i]),
                    "throughput_img_s": float(self.throughput_img_s[i]),
                    **self.waves.row(i),
                }
                for i, w in enumerate(self.widths)
            ],
        }


def staircase(
    fused: FusedNetwork,
    layer: str,
    target: Target,
    batch: int = 1,
    widths: np.ndarray | None = None,
) -> Staircase:
    """Predict ``layer``'s latency on ``target`` at each of ``widths`` (default 1 .. 2 x its width)."""
    fused = fused_for(fused, target)
    i = find_kernel(fused, layer)
    kernel = fused.kernels[i]
    anchor = kernel.anchor
    if not isinstance(anchor, (Conv, Linear)) or getattr(anchor, "groups", 1) != 1:
        raise RooflineError(
            f"{layer} runs in a {kernel.describe()} kernel; the staircase varies the output width of a "
            "dense conv or linear layer"
        )
    width = anchor.output_shape[1] if isinstance(anchor, Conv) else anchor.out_features
    widths = np.arange(1, 2 * width + 1) if widths is None else np.asarray(widths, dtype=np.int64)
    if widths.ndim != 1 or widths.size == 0 or widths.min() < 1:
        raise RooflineError("widths must be a non-empty range of positive integers")
    # One width past the range tells whether the last step ends there.
    stride = int(widths[-1] - widths[-2]) if widths.size > 1 else 1
    widths = np.append(widths, widths[-1] + max(stride, 1))
    dtype_bytes = target.dtype_bytes
    scale = widths / width
    fixed_elems = numel(anchor.input_shapes[0])
    per_width_elems = fused.activation_elems[i] - fixed_elems
    nbytes = ((fixed_elems + per_width_elems * scale) * batch + fused.weight_elems[i] * scale) * dtype_bytes
    flops = fused.flops[i] * batch * scale
    # The layer at every width is one kernel of the same class, so kernel_times times them all.
    work = work_of(kernel)
    grid = Grid.of([dataclasses.replace(work, n=int(w)) for w in widths])
    # A staircase is the wave model's by definition, so it quantizes even under --no-waves.
    compute_s, latency_s, stats = kernel_times(flops, nbytes, grid, batch, target.replace(waves=True))
    work = stats.launched * stats.tile_m * stats.tile_n
    inside = slice(0, -1)
    fields = [f.name for f in dataclasses.fields(WaveStats) if f.name != "sms"]
    stats = dataclasses.replace(stats, **{name: getattr(stats, name)[:-1] for name in fields})
    return Staircase(
        layer=layer,
        op=kernel.describe(),
        target=target,
        batch=batch,
        width=width,
        widths=widths[inside],
        flops=flops[inside],
        bytes=nbytes[inside],
        compute_s=compute_s[inside],
        latency_s=latency_s[inside],
        waves=stats,
        peak_flops_s=target.reference.flops_s,
        closed=bool(work[-1] != work[-2]),
    )
