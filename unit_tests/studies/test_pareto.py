"""Pareto frontiers against hand-worked cases and a brute-force dominance check."""

import itertools
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roofline import RooflineError
from roofline.studies import pareto
from roofline.studies.pareto import dominates, pareto_front

pytestmark = pytest.mark.analytic

DIRECTIONS_2D = list(itertools.product([True, False], repeat=2))


def brute_force_front(points, maximize):
    """O(n^2) reference written from the definition, independent of roofline.studies.pareto."""
    points = [tuple(row) for row in np.asarray(points).tolist()]
    k = len(points[0]) if points else 0
    flags = [maximize] * k if isinstance(maximize, bool) else list(maximize)

    def at_least(x, y, larger_is_better):
        return x >= y if larger_is_better else x <= y

    def beats(a, b):
        return all(at_least(x, y, m) for x, y, m in zip(a, b, flags, strict=True)) and a != b

    return [i for i, b in enumerate(points) if not any(beats(a, b) for a in points)]


def small_int_points(k, max_rows=40):
    # A range of 0..5 makes ties in single objectives and exact duplicates common.
    return st.integers(0, max_rows).flatmap(
        lambda n: st.lists(st.lists(st.integers(0, 5), min_size=k, max_size=k), min_size=n, max_size=n)
    )


def test_hand_worked_two_objectives_max_max():
    points = [[1, 5], [2, 4], [2, 4], [3, 1], [1, 1], [2, 3], [0, 5]]
    # [1,5] beats [0,5] (better x, equal y); [2,4] twice, both kept; [2,3] loses to [2,4] on y alone.
    assert pareto_front(points, [True, True]).tolist() == [0, 1, 2, 3]


def test_hand_worked_min_max_mix():
    # Latency (lower better) against accuracy (higher better).
    points = [[10.0, 70.0], [12.0, 75.0], [12.0, 72.0], [9.0, 60.0], [15.0, 75.0], [9.0, 60.0]]
    # [15,75] ties [12,75] on accuracy and is slower; [12,72] ties [12,75] on latency and is worse.
    assert pareto_front(points, [False, True]).tolist() == [0, 1, 3, 5]
    # Flipping both directions looks for the opposite corner: slow and inaccurate. [10,70] stays
    # (nothing is both slower and less accurate); [12,75] loses to [12,72] and to [15,75].
    assert pareto_front(points, [True, False]).tolist() == [0, 2, 3, 4, 5]


def test_equal_in_one_objective_and_better_in_the_other_dominates():
    assert pareto_front([[3, 2], [3, 1]], True).tolist() == [0]
    assert pareto_front([[3, 1], [3, 2]], [True, False]).tolist() == [0]
    assert dominates([3, 2], [3, 1], True)
    assert not dominates([3, 1], [3, 2], True)


def test_identical_points_do_not_dominate_each_other():
    assert pareto_front([[1, 1], [1, 1], [1, 1]], True).tolist() == [0, 1, 2]
    assert not dominates([1, 1], [1, 1], True)
    # All copies of a dominated point go, all copies of the winner stay.
    assert pareto_front([[1, 1], [2, 2], [1, 1], [2, 2]], True).tolist() == [1, 3]


def test_single_objective_keeps_every_copy_of_the_best():
    assert pareto_front([[3.0], [1.0], [3.0], [2.0]], True).tolist() == [0, 2]
    assert pareto_front([[3.0], [1.0], [3.0], [1.0]], [False]).tolist() == [1, 3]


def test_three_objectives_hand_worked():
    points = [
        [1, 1, 1],
        [2, 2, 2],  # dominates row 0
        [3, 0, 0],  # best in obj 0 alone
        [0, 0, 3],  # best in obj 2 alone
        [2, 2, 1],  # equal to row 1 but for obj 2: dominated
        [2, 2, 2],  # copy of row 1: kept
    ]
    assert pareto_front(points, True).tolist() == [1, 2, 3, 5]
    # Minimizing obj 2 makes low obj-2 rows win: [2,2,1] now beats [2,2,2].
    assert pareto_front(points, [True, True, False]).tolist() == [2, 4]


def test_infinities_are_ordinary_extremes():
    assert pareto_front([[-np.inf, -np.inf], [-np.inf, -np.inf]], True).tolist() == [0, 1]
    assert pareto_front([[np.inf, 0.0], [1.0, 1.0], [np.inf, -1.0]], True).tolist() == [0, 1]


def test_empty_input_gives_empty_int_array():
    for empty in ([], np.empty((0, 2)), np.empty((0, 3))):
        front = pareto_front(empty, True)
        assert front.shape == (0,)
        assert front.dtype == np.intp


@pytest.mark.parametrize(
    ("points", "maximize", "match"),
    [
        ([1.0, 2.0, 3.0], True, "2-D"),
        (np.ones((2, 2, 2)), True, "2-D"),
        ([[1.0, np.nan], [2.0, 1.0]], True, "NaN"),
        ([[1.0, 2.0]], [True], "1 entries for 2 objectives"),
        ([[1.0, 2.0]], [True, False, True], "3 entries for 2 objectives"),
        ([[1.0, 2.0]], ["max", "min"], "bools"),
        ([["a", "b"]], True, "numeric"),
        (np.empty((3, 0)), True, "no objective columns"),
    ],
)
def test_bad_input_raises_roofline_error(points, maximize, match):
    with pytest.raises(RooflineError, match=match):
        pareto_front(points, maximize)


@pytest.mark.parametrize("maximize", DIRECTIONS_2D)
@settings(max_examples=150, deadline=None)
@given(points=small_int_points(2))
def test_two_objective_sweep_matches_brute_force(points, maximize):
    arr = np.array(points, dtype=float).reshape(-1, 2)
    assert pareto_front(arr, list(maximize)).tolist() == brute_force_front(arr, maximize)


@pytest.mark.parametrize("k", [3, 4])
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_many_objective_path_matches_brute_force(k, data):
    points = np.array(data.draw(small_int_points(k)), dtype=float).reshape(-1, k)
    maximize = data.draw(st.lists(st.booleans(), min_size=k, max_size=k))
    assert pareto_front(points, maximize).tolist() == brute_force_front(points, maximize)


@pytest.mark.parametrize("k", [2, 3])
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_front_is_undominated_and_covers_every_excluded_point(k, data):
    points = np.array(data.draw(small_int_points(k)), dtype=float).reshape(-1, k)
    maximize = data.draw(st.lists(st.booleans(), min_size=k, max_size=k))
    front = pareto_front(points, maximize)
    excluded = np.setdiff1d(np.arange(len(points)), front)
    for i in front:
        assert not any(dominates(points[j], points[i], maximize) for j in range(len(points)))
    for i in excluded:
        assert any(dominates(points[j], points[i], maximize) for j in front)


@pytest.mark.parametrize("k", [2, 3])
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_front_is_invariant_under_row_permutation(k, data):
    points = np.array(data.draw(small_int_points(k)), dtype=float).reshape(-1, k)
    perm = np.array(data.draw(st.permutations(range(len(points)))), dtype=np.intp)
    front = set(pareto_front(points, True).tolist())
    permuted_front = {int(perm[i]) for i in pareto_front(points[perm], True)}
    assert permuted_front == front


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_many_objective_path_carries_the_front_across_tiny_blocks(data):
    # Blocks of 3 rows and 1-row comparison chunks make every dominator sit in another block or chunk.
    points = np.array(data.draw(small_int_points(3)), dtype=float).reshape(-1, 3)
    maximize = data.draw(st.lists(st.booleans(), min_size=3, max_size=3))
    with mock.patch.object(pareto, "_BLOCK_ROWS", 3), mock.patch.object(pareto, "_BLOCK_ELEMENTS", 1):
        assert pareto_front(points, maximize).tolist() == brute_force_front(points, maximize)


def test_blockwise_path_spans_several_blocks():
    # 3000 rows x 3 objectives cuts into many row blocks; the front must not depend on block edges.
    rng = np.random.default_rng(1)
    points = rng.integers(0, 20, size=(3000, 3)).astype(float)
    front = pareto_front(points, [True, False, True])
    signed = points * np.array([1, -1, 1])
    dominated = [
        bool(np.any(np.all(signed >= signed[i], axis=1) & np.any(signed > signed[i], axis=1)))
        for i in range(len(points))
    ]
    assert front.tolist() == np.flatnonzero(~np.array(dominated)).tolist()


def test_million_points_in_two_dimensions_run():
    rng = np.random.default_rng(0)
    points = rng.random((1_000_000, 2))
    front = pareto_front(points, [True, False])
    # Random uniform points have a front of ~ln(n) = 14 points: far fewer than n, and at least the extremes.
    assert 1 <= len(front) < 100
    assert np.argmax(points[:, 0]) in front
    assert np.argmin(points[:, 1]) in front
