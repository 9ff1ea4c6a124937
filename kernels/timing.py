"""Timing loop: time-based warmup, windows timed by CUDA events, a stability rule, an enqueue flag.

What the best harnesses do (DESIGN.md, "Measuring on a GPU"):

* inputs and outputs stay on the device, and the backend captures its launch in
  a CUDA graph where it can, so one ``launch()`` is one cheap enqueue;
* warm up for a time (seconds), not a count, so clocks and caches settle
  whatever the model's speed;
* each window enqueues a fixed number of launches back to back on one stream
  and brackets them with two CUDA events: no host sync inside the window
  (per-iteration syncs add the launch latency to every iteration). One stream
  means one inference executes at a time;
* window throughput = launches x items per launch / event time; the samples are
  the last ``windows`` windows and the reported figure is their median;
* a run is stable when each of the last 3 windows lies within ``tolerance`` of
  their mean (Triton perf_analyzer's ``--stability-percentage`` rule, which
  defaults to 10%; 5% here because the gate compares against a few percent).
  A run that never stabilizes within ``max_windows`` is INVALID, with the reason.

Host walltime (enqueue start to sync, trtexec's "throughput = queries / host
walltime") is recorded per window too. An extra pair of events around every
launch gives the GPU's busy time inside the window; when the GPU is idle for
more than ``1 - busy_threshold`` of the window, the host could not enqueue fast
enough and the run is flagged ``enqueue_bound`` (trtexec compares "GPU compute
time" with the walltime the same way). The flag is reported, not invalidating:
an engine launched without a CUDA graph may really be enqueue-bound.

The pure parts (``stability``, ``launches_for``, ``collect``) need no GPU; ``measure`` needs torch with CUDA.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

STABLE_WINDOWS = 3


@dataclass(frozen=True)
class TimingConfig:
    warmup_s: float = 2.0
    window_s: float = 0.5
    windows: int = 10  # samples kept; the gate's Mann-Whitney test needs >= 6 per side
    max_windows: int = 20
    tolerance: float = 0.05
    busy_threshold: float = 0.9
    max_launches_per_window: int = 20_000  # bounds the per-launch event pool

    def __post_init__(self) -> None:
        if self.warmup_s < 0 or self.window_s <= 0:
            raise ValueError("warmup_s must be >= 0 and window_s > 0")
        if not STABLE_WINDOWS <= self.windows <= self.max_windows:
            raise ValueError(f"need {STABLE_WINDOWS} <= windows <= max_windows")
        if not 0 < self.tolerance < 1 or not 0 < self.busy_threshold <= 1:
            raise ValueError("tolerance must be in (0, 1) and busy_threshold in (0, 1]")


#: Short warm-up and windows, for smoke runs and the suite's --perf-quick (still >= 6 windows for the gate).
QUICK = TimingConfig(warmup_s=0.5, window_s=0.1, windows=6, max_windows=12)


@dataclass(frozen=True)
class Measurement:
    samples: tuple[float, ...]  # items/s per window, CUDA-event time
    host_samples: tuple[float, ...]  # items/s per window, host walltime including the final sync
    launch_s: float  # median GPU time of one launch (trtexec's "GPU compute time")
    launches_per_window: int
    items_per_launch: int
    windows_run: int
    gpu_busy: float  # median over kept windows of GPU busy time / window time
    enqueue_bound: bool
    invalid_reason: str | None
    warmup_s: float

    @property
    def median(self) -> float:
        return float(np.median(self.samples))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "median": self.median}


def stability(samples: Sequence[float], tolerance: float) -> str | None:
    """None when each of the last 3 samples is within ``tolerance`` of their mean, else why not.

    Triton Inference Server perf_analyzer, "--stability-percentage" (docs,
    perf_analyzer CLI reference): the last 3 measurements must agree.
    """
    if len(samples) < STABLE_WINDOWS:
        return f"only {len(samples)} windows; stability needs {STABLE_WINDOWS}"
    last = np.asarray(samples[-STABLE_WINDOWS:], dtype=float)
    deviation = float(np.max(np.abs(last - last.mean())) / last.mean())
    if deviation > tolerance:
        return (
            f"unstable: the last {STABLE_WINDOWS} windows deviate {deviation:.1%} from their mean "
            f"(> {tolerance:.0%})"
        )
    return None


def launches_for(window_s: float, launch_s: float, cap: int) -> int:
    """Launches that fill ``window_s`` at ``launch_s`` each, at least 1 and at most ``cap``."""
    return max(1, min(cap, math.ceil(window_s / max(launch_s, 1e-9))))


def measure(
    launch: Callable[[], None],
    stream: Any,
    items_per_launch: int,
    config: TimingConfig = TimingConfig(),
    progress: Callable[[str], None] | None = None,
) -> Measurement:
    """Warm up, then time windows of ``launch()`` on ``stream`` until stable or ``max_windows``."""
    import torch

    say = progress or (lambda _message: None)
    with torch.cuda.stream(stream):
        launch_s, warmed_s = _warm_up(launch, stream, config.warmup_s)
        per_window = launches_for(config.window_s, launch_s, config.max_launches_per_window)
        say(f"warmed up {warmed_s:.1f} s; {per_window} launches per {config.window_s} s window")
        begin = [torch.cuda.Event(enable_timing=True) for _ in range(per_window)]
        end = [torch.cuda.Event(enable_timing=True) for _ in range(per_window)]
        return collect(
            lambda: _window(launch, stream, begin, end), per_window, items_per_launch, config, warmed_s, say
        )


WindowTimes = tuple[float, float, float, float]  # (event s, host walltime s, GPU busy s, median launch s)


def collect(
    run_window: Callable[[], WindowTimes],
    per_window: int,
    items_per_launch: int,
    config: TimingConfig,
    warmed_s: float = 0.0,
    say: Callable[[str], None] = lambda _message: None,
) -> Measurement:
    """Windows until the last 3 agree (``windows`` to ``max_windows`` of them); keeps the last ``windows``."""
    gpu, host, busy, launch_times = [], [], [], []
    reason = "no windows run"
    while len(gpu) < config.max_windows:
        window_s, host_s, busy_s, launch_s = run_window()
        items = per_window * items_per_launch
        gpu.append(items / window_s)
        host.append(items / host_s)
        busy.append(busy_s / window_s)
        launch_times.append(launch_s)
        say(f"window {len(gpu)}: {gpu[-1]:.4g} items/s (GPU busy {busy[-1]:.0%})")
        if len(gpu) >= config.windows:
            reason = stability(gpu, config.tolerance)
            if reason is None:
                break
    keep = slice(-config.windows, None)
    gpu_busy = float(np.median(busy[keep]))
    return Measurement(
        samples=tuple(gpu[keep]), host_samples=tuple(host[keep]),
        launch_s=float(np.median(launch_times[keep])), launches_per_window=per_window,
        items_per_launch=items_per_launch, windows_run=len(gpu), gpu_busy=gpu_busy,
        enqueue_bound=gpu_busy < config.busy_threshold,
        invalid_reason=None if reason is None else f"{reason} after {len(gpu)} windows",
        warmup_s=warmed_s,
    )  # fmt: skip


def _warm_up(launch: Callable[[], None], stream: Any, warmup_s: float) -> tuple[float, float]:
    """Run doubling blocks of launches until ``warmup_s`` has passed; (s per launch, s warmed)."""
    start = time.perf_counter()
    block = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(block):
            launch()
        stream.synchronize()
        block_s = time.perf_counter() - t0
        if time.perf_counter() - start >= warmup_s:
            return block_s / block, time.perf_counter() - start
        block *= 2


def _window(launch: Callable[[], None], stream: Any, begin: list, end: list) -> WindowTimes:
    """One window of ``len(begin)`` launches, each between its own pair of events."""
    t0 = time.perf_counter()
    for b, e in zip(begin, end, strict=True):
        b.record(stream)
        launch()
        e.record(stream)
    end[-1].synchronize()
    host_s = time.perf_counter() - t0
    per_launch_s = np.array([b.elapsed_time(e) for b, e in zip(begin, end, strict=True)]) / 1e3
    window_s = begin[0].elapsed_time(end[-1]) / 1e3
    return window_s, host_s, float(per_launch_s.sum()), float(np.median(per_launch_s))
