"""The timing loop's pure logic: stability rule, window sizing, and when collection stops.

``collect`` is driven with synthetic window times (plain numbers standing for
what CUDA events would return); the event timing itself runs only on a GPU.
"""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernels.timing import TimingConfig, collect, launches_for, stability

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


def _windows(seconds, host_factor=1.0, busy=1.0):
    """Synthetic (event s, host s, busy s, launch s) tuples from a list of window times."""
    it = iter(seconds)
    return lambda: (s := next(it), s * host_factor, s * busy, s / 100)


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


def test_idle_gpu_flags_enqueue_bound_and_host_walltime_is_kept():
    m = collect(_windows(itertools.repeat(1.0), host_factor=1.25, busy=0.6), 10, 1, TimingConfig(windows=3))
    assert m.enqueue_bound and m.gpu_busy == pytest.approx(0.6)
    assert m.host_samples == (8.0,) * 3 and m.samples == (10.0,) * 3


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
