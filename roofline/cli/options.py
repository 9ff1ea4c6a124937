"""The CLI's option types: each parses one value, checks it is finite and within stated bounds.

The bounds keep every number that reaches the analysis inside what its int64 and
float64 arrays represent exactly, and every run inside seconds of work and a
few GiB of memory; ``--help`` states each one. argparse turns the
``ArgumentTypeError`` into ``roofline: error: argument --x: ...`` and exit 2.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from roofline.errors import RooflineError
from roofline.hardware.tiles import Tile, parse_tile

#: Images per batch. 2^24 keeps batch x the largest output plane (e.g. 224^2 x 64 channels) inside int64.
MAX_BATCH = 1 << 24
#: Input height = width: 8192 px, far beyond any classification CNN's.
MAX_RESOLUTION = 8192
#: Layer widths a staircase may reach, and how many widths one staircase may evaluate.
MAX_WIDTH = 1 << 16
MAX_WIDTH_COUNT = 100_000
#: GPUNet samples: 10^5 take about a minute on 2 cores (README, benchmarks); 10^6 about ten.
MAX_SAMPLES = 1_000_000
#: scipy's Sobol seed is an unsigned 32-bit integer here.
MAX_SEED = 2**32 - 1
MAX_TIERS = 100
#: Images folded into one sample: the folding study used 4; 64 widens layers 8x.
MAX_FOLD = 64
MAX_TOP = 1000
#: Resident blocks per SM: the CUDA limit is 32 on every architecture in the database.
MAX_BLOCKS_PER_SM = 32


def _reject(message: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(message)


def integer(low: int, high: int, example: str = "") -> Callable[[str], int]:
    """An option type for integers in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            hint = f" like {example}" if example else ""
            raise _reject(f"expected an integer from {low} to {high}{hint}, got {text!r}")
        return value

    return parse


def number(low: float, high: float, *, open_low: bool = True, example: str = "") -> Callable[[str], float]:
    """An option type for finite floats in (low, high] (or [low, high] with ``open_low=False``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        above = value > low if open_low else value >= low
        if not (math.isfinite(value) and above and value <= high):  # nan fails every comparison
            bracket = "(" if open_low else "["
            raise _reject(f"expected a number in {bracket}{low:g}, {high:g}] like {example}, got {text!r}")
        return value

    return parse


positive_int = integer(1, MAX_BATCH)
batch_size = integer(1, MAX_BATCH, "256")
resolution = integer(1, MAX_RESOLUTION, "224")


def batch(text: str) -> int | str:
    """A batch size, or ``max``: the largest batch that fits in the GPU's memory."""
    if text == "max":
        return text
    try:
        return batch_size(text)
    except argparse.ArgumentTypeError as exc:
        raise _reject(f"{exc} (or max, the largest batch that fits)") from None


def space_batch(text: str) -> int:
    """The one batch a whole search space is swept at."""
    if text == "max":
        raise _reject("max picks a batch per model; a search space is swept at one batch: give a number")
    return batch_size(text)


def path(text: str) -> str:
    """A file or directory path; an empty one is a mistake, not "no output"."""
    if not text.strip():
        raise _reject("expected a path, got an empty string")
    return text


def fraction(text: str) -> float:
    """A fraction in (0, 1)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < 1:  # also rejects nan
        raise _reject(f"expected a fraction in (0, 1) like 0.03, got {text!r}")
    return value


def tile(text: str) -> Tile:
    try:
        return parse_tile(text)
    except RooflineError as exc:
        raise _reject(str(exc)) from None


def widths(text: str) -> range:
    """``A:B[:STEP]``: the widths a staircase evaluates."""
    parts = text.split(":")
    try:
        start, stop, step = (int(p) for p in (parts + ["1"])[:3]) if 2 <= len(parts) <= 3 else (0, 0, 0)
    except ValueError:
        start = 0
    if start < 1 or stop < start or step < 1 or stop > MAX_WIDTH:
        raise _reject(f"expected A:B[:STEP] with 1 <= A <= B <= {MAX_WIDTH} and STEP >= 1, got {text!r}")
    values = range(start, stop + 1, step)
    if len(values) > MAX_WIDTH_COUNT:
        raise _reject(f"{text!r} is {len(values)} widths; at most {MAX_WIDTH_COUNT}: use a larger STEP")
    return values


def edges_ms(text: str) -> list[float]:
    """Increasing, finite, positive tier edges in milliseconds."""
    try:
        edges = [float(x) for x in text.split(",")]
    except ValueError:
        edges = []
    finite = all(math.isfinite(e) for e in edges)
    increasing = all(b > a for a, b in zip(edges, edges[1:], strict=False))
    if not edges or not finite or not increasing or edges[0] <= 0 or len(edges) >= MAX_TIERS:
        raise _reject(
            f"expected up to {MAX_TIERS - 1} increasing positive milliseconds like 0.5,0.8,1.25, got {text!r}"
        )
    return edges
