"""Block-additive evaluation: many networks built from a few distinct blocks, at once.

A search space's networks are sequences of blocks (a stem, cells, stages, a
head) whose boundaries are kernel boundaries: a block's output is written to
DRAM because a convolution never fuses into the kernel before it
(``roofline.model.fusion``). Kernels run one after another (``roofline.analysis.predict``), so

    latency(network) = sum over its blocks b of latency(b)

and the same holds for FLOPs, bytes and parameters. The per-layer latency table
of the NAS-for-GPUs study (DESIGN.md, "Latency lookup table") rests on the
same additivity. Each distinct block is fused once, and the kernels of all of
them are timed in one vectorized call, so a space of 10^5 networks costs a few
thousand block evaluations plus array sums. Tests check the sum against
``evaluate`` of the whole network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from roofline.analysis.latency_table import LatencyTable, check_comparable, kernel_key
from roofline.analysis.predict import fused_for, kernel_times
from roofline.analysis.target import Target
from roofline.analysis.waves import Grid
from roofline.model.ir import Network


@dataclass(frozen=True)
class BlockCosts:
    """Per-block totals on one target at one batch, aligned with the blocks given."""

    time_s: np.ndarray
    flops: np.ndarray  # at the batch
    bytes: np.ndarray  # at the batch
    params: np.ndarray
    measured_kernels: np.ndarray  # kernels whose time came from a measured table entry


def block_costs(
    blocks: Sequence[Network], target: Target, batch: int, table: LatencyTable | None = None
) -> BlockCosts:
    """Fuse each block, time every kernel of every block at once, and sum per block.

    With ``table``, a kernel with a measured entry takes the measured latency,
    as in ``latency_table.network_latency``.
    """
    if table is not None:
        check_comparable(table, target)
    fused = [fused_for(b, target) for b in blocks]
    counts = np.array([len(f.kernels) for f in fused])
    flops = np.concatenate([f.flops for f in fused]) * batch
    nbytes = np.concatenate([f.bytes(batch, target.dtype_bytes) for f in fused])
    grid = Grid.concat([f.grid for f in fused])
    _, time_s, _ = kernel_times(flops, nbytes, grid, batch, target)
    measured = np.zeros(len(time_s), dtype=bool)
    if table is not None:
        entries = [table.entries.get(kernel_key(k, batch)) for f in fused for k in f.kernels]
        measured = np.array([e is not None and e.source == "measured" for e in entries], dtype=bool)
        time_s = np.where(measured, [e.latency_s if e is not None else 0.0 for e in entries], time_s)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])

    def per_block(a: np.ndarray) -> np.ndarray:
        return np.add.reduceat(a, starts) if len(a) else np.zeros(len(blocks))

    return BlockCosts(
        time_s=per_block(time_s),
        flops=per_block(flops),
        bytes=per_block(nbytes),
        params=np.array([b.params() for b in blocks], dtype=np.float64),
        measured_kernels=per_block(measured.astype(np.int64)),
    )
