"""Thread-block tiles and how many of them an SM holds at once.

The candidate tiles and the per-block resource model are data
(``data/tiles.toml``); the per-SM limits come from the GPU database. Blocks
per SM is the occupancy calculation of the CUDA Occupancy Calculator (CUDA C++
Programming Guide, "Occupancy" and "Technical Specifications per Compute
Capability"): the fewest of

    max_blocks_per_sm,
    max_threads_per_sm        // threads,
    registers_per_sm          // (threads x registers per thread),
    shared_memory_per_sm      // shared memory per block.

For a GEMM tile (tile_m x tile_n, K step tile_k):

    shared memory per block = stages x (tile_m + tile_n) x tile_k x dtype bytes
    registers per thread    = min(255, tile_m x tile_n / threads + operand registers)

(the A and B slices of the pipeline, and FP32 accumulators plus fragments;
``data/tiles.toml`` cites where these shapes come from).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from roofline.errors import RooflineError
from roofline.hardware.gpus import GPU


@dataclass(frozen=True)
class Tile:
    """A GEMM thread-block tile: ``m`` x ``n`` outputs, stepping ``k`` deep."""

    m: int
    n: int
    k: int = 32
    threads: int = 128  # 4 warps, CUTLASS's default for a tile it does not list

    def __str__(self) -> str:
        return f"{self.m}x{self.n}"

    def shared_memory_bytes(self, gpu: GPU, dtype_bytes: int) -> int:
        return _stages(gpu) * (self.m + self.n) * self.k * dtype_bytes

    def registers_per_thread(self) -> int:
        data = _data()
        accumulators = -(-self.m * self.n // self.threads)
        return min(data["max_registers_per_thread"], accumulators + data["operand_registers"])

    def fit(self, gpu: GPU, dtype_bytes: int) -> int:
        """Blocks of this tile an SM of ``gpu`` holds at once; 0 if not even one."""
        limits = gpu.sm_limits
        return min(
            limits.max_blocks_per_sm,
            limits.max_threads_per_sm // self.threads,
            limits.registers_per_sm // (self.threads * self.registers_per_thread()),
            limits.max_shared_memory_per_sm_bytes // self.shared_memory_bytes(gpu, dtype_bytes),
        )

    def blocks_per_sm(self, gpu: GPU, dtype_bytes: int) -> int:
        """``fit``, or an error naming the override when the tile cannot run at all."""
        blocks = self.fit(gpu, dtype_bytes)
        if blocks < 1:
            smem = self.shared_memory_bytes(gpu, dtype_bytes)
            raise RooflineError(
                f"tile {self} needs {smem // 1024} KiB of shared memory and "
                f"{self.threads * self.registers_per_thread()} registers per block, more than an SM of "
                f"{gpu.name} holds; pass --blocks-per-sm to say how many run at once"
            )
        return blocks


@cache
def _data() -> dict[str, Any]:
    return tomllib.loads(resources.files("roofline.hardware.data").joinpath("tiles.toml").read_text())


def _stages(gpu: GPU) -> int:
    major = int(gpu.compute_capability.split(".")[0])
    return _data()["stages_from_sm80" if major >= 8 else "stages_before_sm80"]


def gemm_tiles() -> tuple[Tile, ...]:
    """The candidate GEMM tiles, largest first (ties in the heuristic go to reuse)."""
    tiles = (Tile(**spec) for spec in _data()["gemm_tile"])
    return tuple(sorted(tiles, key=lambda t: t.m * t.n, reverse=True))


def parse_tile(text: str) -> Tile:
    """``"128x64"`` -> the candidate of that shape, or a custom 4-warp tile."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or min(int(g) for g in match.groups()) < 1:
        raise RooflineError(f"tile must look like MxN with positive integers (e.g. 128x64), got {text!r}")
    m, n = int(match[1]), int(match[2])
    return next((t for t in gemm_tiles() if (t.m, t.n) == (m, n)), Tile(m, n))


def line_tile(mapping: str, dtype_bytes: int) -> tuple[int, int]:
    """(elements per block, threads per block) of a non-GEMM kernel's 1-D grid."""
    spec = _data()[mapping]
    per_thread = spec.get("elements_per_thread") or spec["vector_bytes"] // dtype_bytes
    return spec["threads"] * max(1, per_thread), spec["threads"]


def line_blocks_per_sm(gpu: GPU, threads: int) -> int:
    """A 1-D grid kernel uses few registers and no shared memory: threads limit it."""
    return min(gpu.sm_limits.max_blocks_per_sm, gpu.sm_limits.max_threads_per_sm // threads)
