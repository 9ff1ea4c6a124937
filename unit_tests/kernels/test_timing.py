"""The timing loop's pure logic: stability rule, window sizing, when collection stops, the host-bound rule.

``collect`` and ``host_bound`` are driven with synthetic timings (plain numbers standing for what CUDA
events and host timers would return); the event timing itself runs only on a GPU, and the CPU mode's
host timing on a plain function here.
"""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernels.timing import (
    LaunchCost,
    TimingConfig,
    collect,
    host_bound,
    launches_for,
    measure_host,
    stability,
)

pytestmark = pytest.mark.analytic


def test_stability_follows_the_last_three_windows():
    assert stability([100, 50, 100, 101, 99], 0.05) is None
    reason = stability([100, 100, 100, 100, 90], 0.05)
    assert reason.startswith("unstable") and "6.9%" in reason
    assert "needs 3" in stability([100, 100], 0.05)


@given(st.lists(st.floats(1, 1e6), min_size=3, max_size=20), st.floats(0.01, 0.5), st.floats(0.1, 1e3))
def test_stability_is_scale_free(samples, tolerance, scale):
    scaled = [s * scale for s in samples]
    assert (stability(samples, tolerance) is None) == (stability(scaled, tolerance) is None)


def test_launches_fill_the_window_within_bounds():
    assert launches_for(0.5, 0.001, 10_000) == 500
    assert launches_for(0.5, 2.0, 10_000) == 1
    assert launches_for(0.5, 1e-7, 10_000) == 10_000


def _windows(seconds, host_factor=1.0):
    """Synthetic (window s, host s) pairs from a list of window times."""
    it = iter(seconds)
    return lambda: (s := next(it), s * host_factor)


def test_stable_run_stops_at_the_minimum_and_keeps_the_last_windows():
    config = TimingConfig(windows=6, max_windows=12)
    m = collect(_windows(itertools.repeat(0.5)), per_window=100, items_per_launch=8, config=config)
    assert m.windows_run == 6 and m.invalid_reason is None
    assert m.samples == (1600.0,) * 6 and m.median == 1600.0
    assert not m.enqueue_bound


def test_run_continues_until_stable():
    config = TimingConfig(windows=4, max_windows=12)
    times = [0.5, 0.6, 0.4, 0.55, 0.45, 0.5, 0.5, 0.5, 0.5]
    m = collect(_windows(times), per_window=10, items_per_launch=1, config=config)
    assert m.windows_run == 8  # windows 6-8 are the first 3 that agree
    assert len(m.samples) == 4 and m.samples[-3:] == (20.0, 20.0, 20.0)


def test_never_stable_is_invalid_with_the_reason():
    config = TimingConfig(windows=3, max_windows=6)
    m = collect(_windows(itertools.cycle([0.4, 0.6])), per_window=1, items_per_launch=1, config=config)
    assert m.windows_run == 6 and len(m.samples) == 3
    assert m.invalid_reason.startswith("unstable") and m.invalid_reason.endswith("after 6 windows")


def test_host_walltime_is_kept_and_a_gpu_bound_launch_is_not_flagged():
    cost = LaunchCost(enqueue_s=20e-6, gpu_s=0.1)  # a CUDA graph replay: 20 us to issue, 100 ms of GPU work
    m = collect(_windows(itertools.repeat(1.0), host_factor=1.25), 10, 1, TimingConfig(windows=3), cost=cost)
    assert m.host_samples == (8.0,) * 3 and m.samples == (10.0,) * 3
    assert m.enqueue_bound is False and m.busy_bound == 1.0 and m.gpu_busy == pytest.approx(1.0)
    assert m.launch_s == 0.1 and m.enqueue_s == 20e-6 and (m.device, m.timer) == ("cuda", "cuda events")


# --- The host-bound rule on synthetic launch costs (trtexec: "Enqueue Time" against "GPU Compute Time") ---


@pytest.mark.parametrize(
    ("enqueue_s", "gpu_s", "flagged", "busy"),
    [
        (3e-3, 1e-3, True, 1 / 3),  # eager torch at batch 1: 150 kernel launches cost more than they run
        (3e-3, 20e-3, False, 1.0),  # eager torch at batch 64: the queue fills, the GPU is the limit
        (15e-6, 1e-3, False, 1.0),  # one CUDA graph replay per launch
        (1.05e-3, 1e-3, False, 1 / 1.05),  # a synchronizing launch with a 50 us host part: 95% busy
        (1.5e-3, 1e-3, True, 1 / 1.5),  # a synchronizing launch whose host part is half the GPU's
        (1.0, 0.9, False, 0.9),  # exactly at the threshold: not below it
    ],
)
def test_host_bound_rule(enqueue_s, gpu_s, flagged, busy):
    flag, bound = host_bound(LaunchCost(enqueue_s, gpu_s), busy_threshold=0.9)
    assert flag is flagged and bound == pytest.approx(busy)


@given(st.floats(1e-7, 1.0), st.floats(1e-7, 1.0), st.floats(0.01, 1.0), st.floats(1e-3, 1e3))
def test_host_bound_rule_invariants(enqueue_s, gpu_s, threshold, scale):
    flag, bound = host_bound(LaunchCost(enqueue_s, gpu_s), threshold)
    assert 0 < bound <= 1 and flag == (bound < threshold)
    # Units do not matter, a slower host never helps, a slower GPU never hurts.
    assert host_bound(LaunchCost(enqueue_s * scale, gpu_s * scale), threshold) == (flag, pytest.approx(bound))
    assert host_bound(LaunchCost(enqueue_s * 2, gpu_s), threshold)[1] <= bound
    assert host_bound(LaunchCost(enqueue_s, gpu_s * 2), threshold)[1] >= bound


def test_a_host_bound_run_is_flagged_and_its_windows_show_the_idle_gpu():
    # The host issues one launch per 3 ms, each 1 ms of GPU work: windows of 10 launches take 30 ms.
    cost = LaunchCost(enqueue_s=3e-3, gpu_s=1e-3)
    m = collect(_windows(itertools.repeat(0.03)), 10, 1, TimingConfig(windows=3), cost=cost)
    assert m.enqueue_bound is True and m.busy_bound == pytest.approx(1 / 3)
    assert m.gpu_busy == pytest.approx(1 / 3)


def test_nonpositive_costs_are_refused():
    with pytest.raises(ValueError, match="positive"):
        host_bound(LaunchCost(0.0, 1e-3), 0.9)


def test_cpu_mode_times_a_plain_function_with_host_timers():
    calls = []
    config = TimingConfig(warmup_s=0.0, window_s=0.01, windows=3, max_windows=6, tolerance=0.9)
    m = measure_host(lambda: calls.append(1), items_per_launch=4, config=config)
    assert (m.device, m.timer) == ("cpu", "process CPU time")
    assert m.enqueue_bound is None and m.gpu_busy is None and m.enqueue_s is None
    assert len(m.samples) == len(m.host_samples) == 3 and all(s > 0 for s in m.samples + m.host_samples)
    assert len(calls) >= 1 + m.windows_run * m.launches_per_window


@pytest.mark.parametrize(
    "kwargs",
    [
        {"windows": 2},
        {"windows": 12, "max_windows": 10},
        {"tolerance": 0},
        {"window_s": 0},
        {"busy_threshold": 2},
    ],
)
def test_bad_configs_are_refused(kwargs):
    with pytest.raises(ValueError):
        TimingConfig(**kwargs)


def test_measure_plumbing_runs_on_a_host_stand_in_for_cuda(monkeypatch):
    """``measure`` end to end with torch.cuda's events, streams and spin replaced by host-synchronous
    stand-ins: this checks the calls fit together (a GPU run must not die of a typo), not the figures,
    which only a GPU gives (the GPU self-check, tools/gpu_smoke.py, checks those)."""
    import contextlib
    import time

    torch = pytest.importorskip("torch")

    class Event:
        def __init__(self, enable_timing=False):
            self.t = None

        def record(self, stream=None):
            self.t = time.perf_counter()

        def synchronize(self):
            pass

        def elapsed_time(self, other):
            return (other.t - self.t) * 1e3

    class Stream:
        def synchronize(self):
            pass

    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "_sleep", lambda cycles: None)

    def launch():
        end = time.perf_counter() + 1e-4
        while time.perf_counter() < end:
            pass

    from kernels.timing import measure

    config = TimingConfig(warmup_s=0.01, window_s=0.005, windows=3, max_windows=6, tolerance=0.9)
    m = measure(launch, Stream(), 2, config)
    assert m.device == "cuda" and len(m.samples) == 3 and m.enqueue_s > 0 and m.launch_s > 0
    assert m.enqueue_bound in (True, False) and 0 < m.busy_bound <= 1 and m.launch_blocks in (True, False)
