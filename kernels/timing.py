"""Timing loop: time-based warmup, windows timed by CUDA events (or host timers on a CPU), a stability
rule, and a host-bound rule.

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
walltime") is recorded per window too.

**Host-bound rule** (``LaunchCost``, ``host_bound``). Before the windows, two
costs of one launch are measured apart, as trtexec reports "Enqueue Time" beside
"GPU Compute Time" (TensorRT docs, "trtexec", performance output: an enqueue time
above the GPU compute time means the GPU is starved):

* ``enqueue_s``: host time of one ``launch()`` call issued on an empty queue,
  with no sync after it (median of ``COST_REPEATS``). A launch that synchronizes
  (ONNX Runtime's run on some versions) includes its wait here, as it should:
  the host cannot issue the next one before;
* ``gpu_s``: GPU time of one launch behind a full queue. A spin kernel
  (``torch.cuda._sleep``, a clock64 loop) holds the stream while the host
  enqueues an event, the launch and an event; the GPU then runs the launch's
  kernels back to back, with no host gaps between them, so the event pair times
  the GPU's work alone (the "blocking kernel" of NVIDIA nvbench, which fills the
  queue before timing for the same reason). A launch that waits for the GPU is
  still timed correctly: its kernels are queued behind the spin before it waits.

The GPU can be busy at most ``gpu_s / enqueue_s`` of the time when each launch
costs the host ``enqueue_s`` (pipelined or, for a synchronizing launch, serial).
A run is flagged ``enqueue_bound`` when that bound is below ``busy_threshold``:
the host is the limit (eager torch at batch 1, a synchronizing runtime). The
flag is reported, not invalidating. Per-launch event pairs inside the windows
are not used: when the queue is empty, the begin event runs before the host has
issued the launch, so they count the host's time as GPU time and the flag could
never fire in the case it exists for.

**CPU mode** (``measure_host``): the same windows, stability rule and samples
around synchronous launches; there is no queue, so no host-bound rule, and the
measurement says ``device="cpu"``. The samples are items per second of the
process's CPU time (``time.process_time``: every thread of this process, none of
another's), the wall-clock rate is kept as ``host_samples``. On a shared CI
machine the wall clock measures the neighbours: a 1-thread resnet18 window
scattered 22% by wall time and 0.9% by CPU time on the 2-core development machine
at load average 8, which no gate threshold short of "anything goes" survives.

The pure parts (``stability``, ``launches_for``, ``collect``, ``host_bound``) need no GPU; ``measure``
needs torch with CUDA.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

STABLE_WINDOWS = 3
COST_REPEATS = 7  # launches timed for each of enqueue_s and gpu_s (medians)
SPIN_CALIBRATION_CYCLES = 1_000_000  # torch.cuda._sleep length whose event time gives the clock rate
GPU_DEVICE, CPU_DEVICE = "cuda", "cpu"
EVENT_TIMER, HOST_TIMER = "cuda events", "process CPU time"


@dataclass(frozen=True)
class TimingConfig:
    warmup_s: float = 2.0
    window_s: float = 0.5
    windows: int = 10  # samples kept; the gate's Mann-Whitney test needs >= 6 per side
    max_windows: int = 20
    tolerance: float = 0.05
    busy_threshold: float = 0.9
    max_launches_per_window: int = 20_000  # bounds a window's length for very short launches

    def __post_init__(self) -> None:
        if self.warmup_s < 0 or self.window_s <= 0:
            raise ValueError("warmup_s must be >= 0 and window_s > 0")
        if not STABLE_WINDOWS <= self.windows <= self.max_windows:
            raise ValueError(f"need {STABLE_WINDOWS} <= windows <= max_windows")
        if not 0 < self.tolerance < 1 or not 0 < self.busy_threshold <= 1:
            raise ValueError("tolerance must be in (0, 1) and busy_threshold in (0, 1]")


#: Short warm-up and windows, for smoke runs and the suite's --perf-quick (still >= 6 windows for the gate).
QUICK = TimingConfig(warmup_s=0.5, window_s=0.1, windows=6, max_windows=12)
#: The CPU mode's timing (``--perf-device cpu``): 8 windows (with the gate's minimum of 6 a side, one
#: window of overlap between two runs already puts the exact Mann-Whitney p above 0.002; 8 leave room for a
#: few), and a stability tolerance for a shared, noisy CPU where other processes come and go (the gate's
#: size threshold, not this rule, decides what a change is; an unstable run is INVALID and fails CI).
CPU_TIMING = TimingConfig(warmup_s=1.0, window_s=0.4, windows=8, max_windows=16, tolerance=0.25)


@dataclass(frozen=True)
class LaunchCost:
    """Host and GPU cost of one launch, measured apart (module docstring, "Host-bound rule").

    ``launch_blocks``: the launch call returned only after the spin ahead of it ended, i.e. ``launch()``
    waits for the GPU (synchronizes); reported, and already part of ``enqueue_s``.
    """

    enqueue_s: float
    gpu_s: float
    launch_blocks: bool = False


def host_bound(cost: LaunchCost, busy_threshold: float) -> tuple[bool, float]:
    """(flag, the GPU's busy fraction bound ``min(1, gpu_s / enqueue_s)``) for a launch ``cost``.

    A host that spends ``enqueue_s`` issuing each launch lets the GPU work at most ``gpu_s`` of every
    ``enqueue_s`` (trtexec, "Enqueue Time" against "GPU Compute Time"); below ``busy_threshold`` the host
    is the limit.
    """
    if cost.enqueue_s <= 0 or cost.gpu_s <= 0:
        raise ValueError(f"launch costs must be positive, got {cost}")
    busy = min(1.0, cost.gpu_s / cost.enqueue_s)
    return busy < busy_threshold, busy


@dataclass(frozen=True)
class Measurement:
    samples: tuple[float, ...]  # items/s per window (CUDA-event time on a GPU, process CPU time on a CPU)
    host_samples: tuple[float, ...]  # items/s per window, host walltime including the final sync
    launch_s: float  # GPU time of one launch behind a full queue (trtexec's "GPU compute time"); CPU: host
    launches_per_window: int
    items_per_launch: int
    windows_run: int
    gpu_busy: float | None  # median over kept windows of launches x launch_s / window time (None on a CPU)
    enqueue_bound: bool | None  # the host-bound rule fired (None on a CPU: no queue)
    invalid_reason: str | None
    warmup_s: float
    enqueue_s: float | None = None  # host time of one launch on an empty queue (trtexec's "Enqueue Time")
    busy_bound: float | None = None  # min(1, launch_s / enqueue_s): the most the host lets the GPU work
    launch_blocks: bool | None = None  # launch() waits for the GPU
    device: str = GPU_DEVICE
    timer: str = EVENT_TIMER

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
    """Warm up, time one launch's host and GPU costs, then windows of ``launch()`` on ``stream``."""
    import torch

    say = progress or (lambda _message: None)
    with torch.cuda.stream(stream):
        launch_s, warmed_s = _warm_up(launch, stream.synchronize, config.warmup_s)
        cost = launch_cost(launch, stream)
        bound, busy = host_bound(cost, config.busy_threshold)
        per_window = launches_for(config.window_s, launch_s, config.max_launches_per_window)
        say(
            f"warmed up {warmed_s:.1f} s; host {cost.enqueue_s * 1e6:.0f} us vs GPU "
            f"{cost.gpu_s * 1e6:.0f} us per launch (GPU busy at most {busy:.0%}"
            f"{', host-bound' if bound else ''}); {per_window} launches per {config.window_s} s window"
        )
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        return collect(
            lambda: _window(launch, stream, per_window, begin, end), per_window, items_per_launch, config,
            warmed_s, say, cost,
        )  # fmt: skip


def measure_host(
    launch: Callable[[], None],
    items_per_launch: int,
    config: TimingConfig = CPU_TIMING,
    progress: Callable[[str], None] | None = None,
) -> Measurement:
    """The CPU mode: ``launch()`` runs synchronously on the host; windows are timed by the process's CPU
    time (the samples) and by the wall clock (``host_samples``)."""
    say = progress or (lambda _message: None)
    launch_s, warmed_s = _warm_up(launch, lambda: None, config.warmup_s)
    per_window = launches_for(config.window_s, launch_s, config.max_launches_per_window)
    say(f"warmed up {warmed_s:.1f} s; {per_window} launches per {config.window_s} s window (host timer)")

    def window() -> tuple[float, float]:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(per_window):
            launch()
        # max(): a clock coarser than a window (not Linux's) must not divide by zero
        return max(time.process_time() - cpu0, 1e-9), time.perf_counter() - wall0

    return collect(window, per_window, items_per_launch, config, warmed_s, say, device=CPU_DEVICE)


WindowTimes = tuple[float, float]  # (window s by the device's timer, host walltime s to the final sync)


def collect(
    run_window: Callable[[], WindowTimes],
    per_window: int,
    items_per_launch: int,
    config: TimingConfig,
    warmed_s: float = 0.0,
    say: Callable[[str], None] = lambda _message: None,
    cost: LaunchCost | None = None,
    device: str = GPU_DEVICE,
) -> Measurement:
    """Windows until the last 3 agree (``windows`` to ``max_windows`` of them); keeps the last ``windows``.

    ``cost`` (GPU runs) gives the host-bound flag and each window's GPU busy fraction,
    ``per_window x gpu_s / window time``; without it (CPU runs) both are None."""
    device_s, host = [], []
    reason = "no windows run"
    while len(device_s) < config.max_windows:
        window_s, host_s = run_window()
        items = per_window * items_per_launch
        device_s.append(window_s)
        host.append(items / host_s)
        say(f"window {len(device_s)}: {items / window_s:.4g} items/s")
        if len(device_s) >= config.windows:
            reason = stability([items / w for w in device_s], config.tolerance)
            if reason is None:
                break
    keep = slice(-config.windows, None)
    kept_s = np.asarray(device_s[keep])
    items = per_window * items_per_launch
    flag = busy_bound = gpu_busy = None
    launch_s = float(np.median(kept_s)) / per_window
    if cost is not None:
        flag, busy_bound = host_bound(cost, config.busy_threshold)
        gpu_busy = float(np.median(np.minimum(1.0, per_window * cost.gpu_s / kept_s)))
        launch_s = cost.gpu_s
    return Measurement(
        samples=tuple(float(items / w) for w in kept_s), host_samples=tuple(host[keep]),
        launch_s=launch_s, launches_per_window=per_window, items_per_launch=items_per_launch,
        windows_run=len(device_s), gpu_busy=gpu_busy, enqueue_bound=flag,
        invalid_reason=None if reason is None else f"{reason} after {len(device_s)} windows",
        warmup_s=warmed_s, enqueue_s=None if cost is None else cost.enqueue_s, busy_bound=busy_bound,
        launch_blocks=None if cost is None else cost.launch_blocks, device=device,
        timer=EVENT_TIMER if device == GPU_DEVICE else HOST_TIMER,
    )  # fmt: skip


def _warm_up(launch: Callable[[], None], sync: Callable[[], None], warmup_s: float) -> tuple[float, float]:
    """Run doubling blocks of launches until ``warmup_s`` has passed; (s per launch, s warmed)."""
    start = time.perf_counter()
    block = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(block):
            launch()
        sync()
        block_s = time.perf_counter() - t0
        if time.perf_counter() - start >= warmup_s:
            return block_s / block, time.perf_counter() - start
        block *= 2


def launch_cost(launch: Callable[[], None], stream: Any, repeats: int = COST_REPEATS) -> LaunchCost:
    """``enqueue_s`` and ``gpu_s`` of one launch on ``stream`` (module docstring, "Host-bound rule")."""
    import torch

    with torch.cuda.stream(stream):  # the spin and the events must be on the launch's stream
        return _launch_cost(launch, stream, repeats)


def _launch_cost(launch: Callable[[], None], stream: Any, repeats: int) -> LaunchCost:
    import torch

    enqueue = []
    for _ in range(repeats):
        stream.synchronize()
        t0 = time.perf_counter()
        launch()
        enqueue.append(time.perf_counter() - t0)
    stream.synchronize()
    enqueue_s = float(np.median(enqueue))
    cycles_per_s = _spin_rate(stream)
    # Long enough for the host to finish issuing the launch before the GPU reaches it.
    spin_s = max(2e-3, 3 * enqueue_s)
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    gpu, blocked = [], []
    for _ in range(repeats):
        torch.cuda._sleep(int(spin_s * cycles_per_s))
        begin.record(stream)
        t0 = time.perf_counter()
        launch()
        blocked.append(time.perf_counter() - t0 >= 0.5 * spin_s)
        end.record(stream)
        end.synchronize()
        gpu.append(begin.elapsed_time(end) / 1e3)
    return LaunchCost(enqueue_s, float(np.median(gpu)), launch_blocks=sum(blocked) > repeats // 2)


def _spin_rate(stream: Any) -> float:
    """Clock cycles per second of ``torch.cuda._sleep`` (a clock64 spin), by timing one spin with events."""
    import torch

    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    # A first spin keeps the GPU busy while the host issues the timed one, so no host time is counted.
    torch.cuda._sleep(SPIN_CALIBRATION_CYCLES)
    begin.record(stream)
    torch.cuda._sleep(SPIN_CALIBRATION_CYCLES)
    end.record(stream)
    end.synchronize()
    return SPIN_CALIBRATION_CYCLES / max(begin.elapsed_time(end) / 1e3, 1e-6)


def _window(launch: Callable[[], None], stream: Any, launches: int, begin: Any, end: Any) -> WindowTimes:
    """One window: ``launches`` launches between two events, no sync inside."""
    t0 = time.perf_counter()
    begin.record(stream)
    for _ in range(launches):
        launch()
    end.record(stream)
    end.synchronize()
    return begin.elapsed_time(end) / 1e3, time.perf_counter() - t0
