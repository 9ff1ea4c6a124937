"""Waves and the tail effect: how each kernel's work is cut into thread blocks.

A kernel launches ``blocks`` thread blocks; the GPU runs ``slots`` = SMs x
blocks-per-SM of them at once, one *wave*. Compute time is then a staircase in
the layer's width (DESIGN.md, "Waves and the tail effect"; the tail-effect
study):

    blocks           = count x ceil(M / tile_m) x ceil(N / tile_n)
    waves            = ceil(blocks / slots)
    last             = blocks - (waves - 1) x slots          (blocks in the last wave)
    launched         = (waves - 1) x slots + ceil(last / SMs) x SMs
    tile_efficiency  = M N / (ceil(M / tile_m) tile_m x ceil(N / tile_n) tile_n)
    tail_efficiency  = blocks / launched
    idle_sm_fraction = 1 - min(last, SMs) / SMs
    compute time     = launched x 2 tile_m tile_n K / P
                     = FLOPs / (P x tile_efficiency x tail_efficiency)

where P is the achievable peak. A full wave of full tiles runs at peak;
partial tiles and a partial last wave waste the rest. Every full wave costs
one wave time; the last wave spreads over distinct SMs first (as the hardware
block scheduler does) and lasts as long as its busiest SM's share of a wave,
ceil(last / SMs) / blocks-per-SM. With one block per SM this is the study's
model, latency = wave time x ceil(blocks / SMs); with several, co-resident
blocks share their SM's throughput, so a lone block in the tail runs faster
than in a full wave.

How each kernel maps onto blocks, by its anchor layer:

==================  =======  ===================================================
anchor              mapping  work
==================  =======  ===================================================
conv (dense/group)  gemm     implicit GEMM per group: count = groups,
                             M = N P Q, N = K / groups, K = C R S / groups
linear              gemm     M = rows, N = out_features, K = in_features
matmul              gemm     count = leading (batch) dims, M, N, K
depthwise conv      direct   one output element per thread, 256 threads
everything else     stream   one 16-byte vector of its largest tensor per
                             thread, 256 threads (pointwise, pool, norm ...)
==================  =======  ===================================================

A GEMM's tile is the candidate (``data/tiles.toml``) that minimizes compute
time including both quantizations, as wave-aware library heuristics do
(cuBLASLt, CUTLASS); exact ties go to the larger tile, which reuses operands
more. The caller may name the tile and blocks per SM instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from roofline.analysis.target import Target
from roofline.hardware.tiles import gemm_tiles, line_blocks_per_sm, line_tile
from roofline.model.fusion import Kernel
from roofline.model.ir import Conv, Linear, MatMul, Softmax, numel

MAPPINGS = ("gemm", "direct", "stream")


#: Kernel classes with their own efficiency terms (``roofline.hardware.efficiency``).
KERNEL_CLASSES = ("gemm", "grouped", "depthwise", "attention", "pointwise")


@dataclass(frozen=True)
class Work:
    """A kernel's work at batch 1, as ``count`` independent M x N problems, and its kernel class.

    ``k`` is the reduction length of a GEMM-like kernel and ``channels`` the channels per group
    inside it (the tensor-core alignment applies to them); both are 0 where they do not apply.
    """

    mapping: str
    count: int
    m: int
    n: int
    batch_scales_count: bool = False  # batched matmul: batch multiplies count, not M
    kernel_class: str = "pointwise"
    k: int = 0
    channels: int = 0


def work_of(kernel: Kernel) -> Work:
    """The block mapping of ``kernel`` (table in the module docstring)."""
    a = kernel.anchor
    if isinstance(a, Conv) and not a.depthwise:
        g, out = a.groups, a.output_shape
        m = out[0] * numel(out[2:])
        c = a.input_shapes[0][1] // g
        return Work(
            "gemm", g, m, a.out_channels // g, False, "gemm" if g == 1 else "grouped", c * numel(a.kernel), c
        )
    if isinstance(a, Linear):
        k = a.input_shapes[0][-1]
        return Work("gemm", 1, numel(a.output_shape) // a.out_features, a.out_features, False, "gemm", k, k)
    if isinstance(a, MatMul):
        *lead, m, n = a.output_shape
        batched = len(lead) > 0
        attention = any(isinstance(layer, Softmax) for layer in kernel.fused)
        k = a.input_shapes[0][-1]
        return Work("gemm", math.prod(lead), m, n, batched, "attention" if attention else "gemm", k, k)
    if isinstance(a, Conv):
        return Work("direct", 1, numel(a.output_shape), 1, kernel_class="depthwise")
    largest = max([numel(s) for _, s in kernel.inputs] + [numel(kernel.output_shape)])
    return Work("stream", 1, largest, 1)


@dataclass(frozen=True)
class Grid:
    """``Work`` of many kernels as arrays, to evaluate at any batch at once."""

    mapping: np.ndarray  # index into MAPPINGS
    count: np.ndarray
    m: np.ndarray
    n: np.ndarray
    batch_scales_count: np.ndarray
    kernel_class: np.ndarray  # index into KERNEL_CLASSES
    k: np.ndarray
    channels: np.ndarray

    @classmethod
    def of(cls, works: list[Work]) -> Grid:
        def col(f):
            return np.array([f(w) for w in works], dtype=np.int64)

        return cls(
            mapping=col(lambda w: MAPPINGS.index(w.mapping)),
            count=col(lambda w: w.count),
            m=col(lambda w: w.m),
            n=col(lambda w: w.n),
            batch_scales_count=np.array([w.batch_scales_count for w in works], dtype=bool),
            kernel_class=col(lambda w: KERNEL_CLASSES.index(w.kernel_class)),
            k=col(lambda w: w.k),
            channels=col(lambda w: w.channels),
        )

    @classmethod
    def concat(cls, grids: list[Grid]) -> Grid:
        return cls(*(np.concatenate([getattr(g, f) for g in grids]) for f in cls.__dataclass_fields__))

    def at_batch(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """(count, M) at ``batch``: the batch multiplies M, or count for batched matmul."""
        scale = self.batch_scales_count
        return np.where(scale, self.count * batch, self.count), np.where(scale, self.m, self.m * batch)


@dataclass(frozen=True)
class WaveStats:
    """Per-kernel decomposition (arrays aligned with the kernels)."""

    tile: tuple[str, ...]  # "256x128", or "direct"/"stream" for 1-D grids
    tile_m: np.ndarray  # elements per block along M (a 1-D grid's block length)
    tile_n: np.ndarray
    blocks: np.ndarray
    blocks_per_sm: np.ndarray
    waves: np.ndarray  # launched waves, ceil(blocks / slots) >= 1
    waves_exact: np.ndarray  # blocks / slots
    launched: np.ndarray  # blocks' worth of time the launch occupies, >= blocks
    sms: int
    tile_efficiency: np.ndarray
    tail_efficiency: np.ndarray
    idle_sm_fraction: np.ndarray

    @property
    def wave_time(self) -> np.ndarray:
        """Compute time in units of one full wave: launched / slots."""
        return self.launched / (self.blocks_per_sm * self.sms)

    @property
    def quantization(self) -> np.ndarray:
        """Useful / launched work; compute time = FLOPs / (P x this)."""
        return self.tile_efficiency * self.tail_efficiency

    def row(self, i: int) -> dict:
        return {
            "tile": self.tile[i],
            "blocks": int(self.blocks[i]),
            "blocks_per_sm": int(self.blocks_per_sm[i]),
            "waves": int(self.waves[i]),
            "waves_exact": float(self.waves_exact[i]),
            "wave_time": float(self.wave_time[i]),
            "tile_efficiency": float(self.tile_efficiency[i]),
            "tail_efficiency": float(self.tail_efficiency[i]),
            "idle_sm_fraction": float(self.idle_sm_fraction[i]),
        }


def decompose(
    mapping: np.ndarray,
    count: np.ndarray,
    m: np.ndarray,
    n: np.ndarray,
    target: Target,
) -> WaveStats:
    """Blocks, waves and both quantizations for each problem on ``target`` (see module doc).

    The target's ``tile`` and ``blocks_per_sm`` override the heuristic for GEMM kernels.
    """
    gpu, dtype_bytes, tile, blocks_per_sm = target.gpu, target.dtype_bytes, target.tile, target.blocks_per_sm
    arrays = (np.asarray(a, dtype=np.int64) for a in (mapping, count, m, n))
    mapping, count, m, n = np.broadcast_arrays(*arrays)
    # Candidates too big for this GPU's SM are not offered (e.g. FP32 256x128 on a T4).
    tiles = (tile,) if tile is not None else [t for t in gemm_tiles() if t.fit(gpu, dtype_bytes)]
    # One column per candidate tile; 1-D grid kernels repeat their only tile.
    tm = np.empty((*m.shape, len(tiles)), dtype=np.int64)
    tn, bps = np.empty_like(tm), np.empty_like(tm)
    labels = np.empty(tm.shape, dtype=object)
    for j, t in enumerate(tiles):
        tm[..., j], tn[..., j], labels[..., j] = t.m, t.n, str(t)
        bps[..., j] = blocks_per_sm or t.blocks_per_sm(gpu, dtype_bytes)
    for code, name in enumerate(MAPPINGS[1:], 1):
        rows = mapping == code
        if rows.any():
            elems, threads = line_tile(name, dtype_bytes)
            tm[rows], tn[rows], labels[rows] = elems, 1, name
            bps[rows] = line_blocks_per_sm(gpu, threads)
    mm, nn, cc = m[..., None], n[..., None], count[..., None]
    tiles_m, tiles_n = -(-mm // tm), -(-nn // tn)
    blocks = cc * tiles_m * tiles_n
    slots = gpu.sms * bps
    waves = np.maximum(1, -(-blocks // slots))
    last = blocks - (waves - 1) * slots
    # Launched work, in block-times: the last wave lasts as long as its busiest SM's share.
    launched = (waves - 1) * slots + -(-last // gpu.sms) * gpu.sms
    # Compute time is proportional to launched work x tile area: pick its minimum.
    best = np.expand_dims(np.argmin(launched * tm * tn, axis=-1), -1)

    def pick(a: np.ndarray) -> np.ndarray:
        return np.take_along_axis(a, best, axis=-1)[..., 0]

    blocks, slots, waves, last = pick(blocks), pick(slots), pick(waves), pick(last)
    launched = pick(launched)
    covered = pick(tiles_m * tm) * pick(tiles_n * tn)
    return WaveStats(
        tile=tuple(pick(labels).ravel()),
        tile_m=pick(tm),
        tile_n=pick(tn),
        blocks=blocks,
        blocks_per_sm=pick(bps),
        waves=waves,
        waves_exact=blocks / slots,
        launched=launched,
        sms=gpu.sms,
        tile_efficiency=(m * n) / covered,
        tail_efficiency=blocks / launched,
        idle_sm_fraction=1 - np.minimum(last, gpu.sms) / gpu.sms,
    )
