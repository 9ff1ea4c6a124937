"""MnasNet reward, sample-based search and utilization filtering on toy search spaces."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roofline import RooflineError
from roofline.studies.nas import HARD_W, SOFT_W, approximate_frontier, nas_search, recall, reward
from roofline.studies.pareto import pareto_front

pytestmark = pytest.mark.analytic

accuracies = st.floats(0, 100)
throughputs = st.floats(1e-3, 1e6)


def test_reward_hand_computed():
    # Soft: 0.75 x (2000 / 1000)^0.07 = 0.75 x 1.049717 = 0.787288.
    assert reward(75.0, 2000.0, 1000.0) == pytest.approx(0.787288, rel=1e-6)
    # Half the target: 0.75 x 0.5^0.07 = 0.75 x 0.952638 = 0.714478.
    assert reward(75.0, 500.0, 1000.0) == pytest.approx(0.714478, rel=1e-6)
    # On target the ratio is 1 whatever w is.
    assert reward(80.0, 1000.0, 1000.0, HARD_W) == pytest.approx(0.8)
    # Hard: met -> accuracy alone; missed by half -> accuracy x 0.5.
    assert reward(80.0, 4000.0, 1000.0, HARD_W) == pytest.approx(0.8)
    assert reward(80.0, 500.0, 1000.0, HARD_W) == pytest.approx(0.4)
    # A (w_met, w_missed) pair picks the exponent by side of the target.
    assert reward(50.0, 4000.0, 1000.0, (-0.5, -1.0)) == pytest.approx(0.5 * 2.0)
    assert reward(50.0, 250.0, 1000.0, (-0.5, -1.0)) == pytest.approx(0.5 * 0.25)


def test_reward_is_vectorized_and_scalar_in_scalar_out():
    r = reward(np.array([70.0, 80.0]), np.array([[500.0], [2000.0]]), 1000.0)
    assert r.shape == (2, 2)
    np.testing.assert_allclose(r, [[0.7 * 0.5**0.07, 0.8 * 0.5**0.07], [0.7 * 2**0.07, 0.8 * 2**0.07]])
    assert isinstance(reward(70.0, 500.0, 1000.0), float)


@settings(max_examples=200)
@given(a=accuracies, b=accuracies, t=throughputs, target=throughputs)
def test_reward_increases_with_accuracy(a, b, t, target):
    lo, hi = sorted((a, b))
    for w in (SOFT_W, HARD_W):
        assert reward(lo, t, target, w) <= reward(hi, t, target, w)


@settings(max_examples=200)
@given(acc=st.floats(1, 100), t1=throughputs, t2=throughputs, target=throughputs)
def test_faster_never_scores_lower_and_soft_rewards_speed(acc, t1, t2, target):
    slow, fast = sorted((t1, t2))
    assert reward(acc, slow, target, SOFT_W) <= reward(acc, fast, target, SOFT_W)
    assert reward(acc, slow, target, HARD_W) <= reward(acc, fast, target, HARD_W)
    if fast > 1.01 * slow:
        assert reward(acc, slow, target, SOFT_W) < reward(acc, fast, target, SOFT_W)


def test_hard_constraint_ignores_speed_above_target_and_punishes_below():
    above = reward(70.0, np.array([1000.0, 2000.0, 8000.0]), 1000.0, HARD_W)
    np.testing.assert_allclose(above, 0.7)
    below = reward(70.0, np.array([900.0, 500.0, 100.0]), 1000.0, HARD_W)
    assert np.all(np.diff(below) < 0)
    # The soft constraint still separates networks that both meet the target.
    assert reward(70.0, 8000.0, 1000.0) > reward(70.0, 2000.0, 1000.0)
    # Hard: a more accurate net that misses the target by half loses to a slightly less accurate one on it.
    assert reward(78.0, 500.0, 1000.0, HARD_W) < reward(75.0, 1000.0, 1000.0, HARD_W)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((101.0, 1000.0, 1000.0), "accuracy_pct"),
        ((-1.0, 1000.0, 1000.0), "accuracy_pct"),
        ((70.0, 0.0, 1000.0), "throughput_img_s"),
        ((70.0, 1000.0, 0.0), "target_img_s"),
        ((70.0, np.nan, 1000.0), "NaN"),
        ((70.0, 1000.0, 1000.0, 0.07), "positive exponent"),
        ((70.0, 1000.0, 1000.0, (0.0, 1.0)), "positive exponent"),
        ((70.0, 1000.0, 1000.0, (-0.1, -0.2, -0.3)), "pair"),
    ],
)
def test_reward_bad_input(args, match):
    with pytest.raises(RooflineError, match=match):
        reward(*args)


class CountingAccuracy:
    """Toy accuracy, peaked at x = 30, that records each call's batch."""

    def __init__(self):
        self.batches = []

    def __call__(self, candidates):
        self.batches.append(list(candidates))
        x = np.asarray(candidates, dtype=float)
        return 90.0 - 0.01 * (x - 30.0) ** 2


def toy_sample(rng, n):
    return rng.permutation(64)[:n].tolist()


def toy_throughput(candidates):
    # Wider (larger x) is slower: 64000 / (x + 1) images/s.
    return 64000.0 / (np.asarray(candidates, dtype=float) + 1.0)


def test_nas_search_finds_the_known_best_and_calls_accuracy_once():
    accuracy = CountingAccuracy()
    messages = []
    result = nas_search(
        toy_sample, toy_throughput, accuracy, n_samples=64, target_img_s=2000.0, w=HARD_W, top=3,
        progress=messages.append,
    )  # fmt: skip
    assert len(accuracy.batches) == 1
    assert sorted(accuracy.batches[0]) == list(range(64))
    # Hard target 2000 img/s: 64000 / (x + 1) >= 2000 <=> x <= 31; accuracy peaks at 30 within that.
    assert result.best_candidates[0] == 30
    # Then 29 and 31 tie at 89.99 accuracy; 29 is faster, so the tie goes to it.
    assert result.best_candidates == (30, 29, 31)
    assert np.all(np.diff(result.reward[result.best]) <= 0)
    assert len(messages) == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.best = np.array([0])
    with pytest.raises(ValueError):
        result.reward[0] = 1.0


def test_nas_search_soft_constraint_prefers_faster_near_the_peak():
    result = nas_search(toy_sample, toy_throughput, CountingAccuracy(), 64, 2000.0, w=SOFT_W, top=1)
    # The soft reward trades 0.07 of log-throughput against log-accuracy: the optimum sits below x = 30.
    x = np.arange(64.0)
    expected = int(np.argmax((90.0 - 0.01 * (x - 30) ** 2) * (64000 / (x + 1) / 2000.0) ** 0.07))
    assert expected < 30
    assert result.best_candidates == (expected,)


def test_nas_search_is_reproducible_and_breaks_exact_ties_by_index():
    def constant(candidates):
        return np.full(len(candidates), 50.0)

    first = nas_search(toy_sample, constant, constant, 20, 50.0, top=20, seed=7)
    second = nas_search(toy_sample, constant, constant, 20, 50.0, top=20, seed=7)
    assert first.candidates == second.candidates
    # Equal reward and throughput everywhere: ranking falls back to index order.
    assert first.best.tolist() == list(range(20))
    assert nas_search(toy_sample, constant, constant, 20, 50.0, seed=8).candidates != first.candidates


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_samples": 0}, "n_samples"),
        ({"top": 0}, "top"),
        ({"sample": lambda rng, n: [1, 2]}, "sample returned 2"),
        ({"throughput": lambda c: np.ones(3)}, "throughput returned shape"),
        ({"w": 0.5}, "positive exponent"),
    ],
)
def test_nas_search_bad_input(kwargs, match):
    args = {
        "sample": toy_sample, "throughput": toy_throughput, "accuracy": CountingAccuracy(),
        "n_samples": 10, "target_img_s": 2000.0,
    }  # fmt: skip
    with pytest.raises(RooflineError, match=match):
        nas_search(**(args | kwargs))


def synthetic_space(n, seed):
    """Throughput and utilization of n random networks; accuracy strictly increasing in utilization."""
    rng = np.random.default_rng(seed)
    throughput_img_s = rng.lognormal(8.0, 1.0, n)
    utilization = rng.random(n)
    accuracy_pct = 60.0 + 30.0 * np.sqrt(utilization)
    return throughput_img_s, utilization, accuracy_pct


def test_approximate_frontier_recovers_the_true_front_when_accuracy_is_monotone_in_utilization():
    throughput_img_s, utilization, accuracy_pct = synthetic_space(5000, seed=3)
    candidates = list(range(5000))
    calls = []

    def expensive(selected):
        calls.append(selected)
        return accuracy_pct[np.asarray(selected)]

    result = approximate_frontier(candidates, np.column_stack([throughput_img_s, utilization]), expensive)
    true_front = pareto_front(np.column_stack([throughput_img_s, accuracy_pct]), True)
    assert recall(result.front, true_front) == 1.0
    assert result.front.tolist() == true_front.tolist()
    assert len(calls) == 1
    assert result.evaluated == len(calls[0]) == len(result.cheap_front)
    assert result.evaluated < 100  # a random 2-D front is ~ln(n) points, not n = 5000
    np.testing.assert_allclose(result.expensive_values, accuracy_pct[result.cheap_front])


def test_approximate_frontier_takes_a_callable_and_min_directions():
    throughput_img_s, utilization, accuracy_pct = synthetic_space(500, seed=4)
    latency_s = 1.0 / throughput_img_s

    def cheap(candidates):
        return np.column_stack([latency_s[candidates], utilization[candidates]])

    result = approximate_frontier(
        list(range(500)), cheap, lambda sel: accuracy_pct[sel], cheap_maximize=[False, True]
    )
    true_front = pareto_front(np.column_stack([latency_s, accuracy_pct]), [False, True])
    assert result.front.tolist() == true_front.tolist()


def test_recall_drops_when_the_cheap_metric_misleads():
    # Accuracy anti-correlated with utilization: the cheap front (fast, high-util) misses the accurate nets.
    cheap = np.array([[3.0, 0.9], [2.0, 0.8], [1.0, 0.1], [2.5, 0.1]])
    accuracy_pct = np.array([60.0, 85.0, 90.0, 80.0])
    result = approximate_frontier(
        ["a", "b", "c", "d"], cheap, lambda sel: accuracy_pct[["abcd".index(s) for s in sel]]
    )
    true_front = pareto_front(np.column_stack([cheap[:, 0], accuracy_pct]), True)
    assert true_front.tolist() == [0, 1, 2, 3]
    assert result.cheap_front.tolist() == [0]
    assert recall(result.front, true_front) == 0.25


def test_recall_and_frontier_bad_input():
    assert recall([1, 2, 3], [2, 3, 4, 5]) == 0.5
    with pytest.raises(RooflineError, match="true_front is empty"):
        recall([1], [])
    with pytest.raises(RooflineError, match="cheap metrics have shape"):
        approximate_frontier([1, 2, 3], np.ones((2, 2)), lambda sel: np.ones(len(sel)))
    with pytest.raises(RooflineError, match="expensive returned shape"):
        approximate_frontier([1, 2], np.array([[1.0, 2.0], [2.0, 1.0]]), lambda sel: np.ones(5))
