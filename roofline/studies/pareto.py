"""Pareto frontiers: the non-dominated rows of a table of objectives.

The utilization study filters a NAS search space by its frontiers (DESIGN.md,
"Utilization as a NAS filter"): in the NATS-Bench size search space (32768
networks) the throughput-utilization frontier held 144 networks against 255 for
a throughput-FLOPs frontier, and evaluating accuracy only on the former
approximates the accuracy-throughput frontier (``roofline.studies.nas``).

Point a dominates point b iff a is at least as good as b in every objective and
strictly better in at least one:

    a > b  <=>  for all j: a_j >=_j b_j   and   for some j: a_j >_j b_j

where >=_j is >= for a maximized objective and <= for a minimized one. The
frontier is the set of rows that no row dominates.

Ties: identical points do not dominate each other (neither is strictly better
anywhere), so every copy of a non-dominated point is on the frontier. A point
equal to another in some objectives and strictly better in one dominates it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from roofline.errors import RooflineError

# The k >= 3 path compares blocks of rows; bounding each comparison at ~4 MiB of bools per temporary keeps
# it from ever holding an n x n x k array.
_BLOCK_ROWS = 256
_BLOCK_ELEMENTS = 1 << 22


def pareto_front(points, maximize: bool | Sequence[bool]) -> np.ndarray:
    """Indices (ascending, ``np.intp``) of the non-dominated rows of ``points``.

    ``points`` is array-like (n, k), one row per candidate and one column per
    objective; ``maximize`` gives, per objective, True if larger is better and
    False if smaller is better, or one bool for all of them. Dominance and the
    tie convention are in the module docstring: all copies of a non-dominated
    point are returned.

    * k == 1: the rows equal to the best value.
    * k == 2: O(n log n), the sweep of Kung, Luccio and Preparata, "On finding
      the maxima of a set of vectors", JACM 22(4), 1975 (its 2-D
      case): sort by the first objective, best first, then keep a running best
      of the second.
    * k >= 3: pairwise dominance of blocks of rows against the frontier found
      so far, in descending order of rank sum: O(n m k) for a frontier of m
      rows, O(n^2 k) at worst, memory bounded.

    Raises RooflineError for input that is not 2-D, contains NaN, or whose
    ``maximize`` does not give one bool per column. Empty input gives an empty
    index array.
    """
    signed = _maximized(points, maximize)
    n, k = signed.shape
    if n == 0:
        return np.empty(0, dtype=np.intp)
    if k == 1:
        keep = signed[:, 0] == signed[:, 0].max()
    elif k == 2:
        keep = _front_2d(signed[:, 0], signed[:, 1])
    else:
        keep = _front_nd(signed)
    return np.flatnonzero(keep)


def dominates(a, b, maximize: bool | Sequence[bool]) -> bool:
    """True iff point ``a`` dominates point ``b`` (module docstring; identical points do not)."""
    signed = _maximized(np.vstack([np.asarray(a, dtype=float), np.asarray(b, dtype=float)]), maximize)
    sa, sb = signed
    return bool(np.all(sa >= sb) and np.any(sa > sb))


def _maximized(points, maximize) -> np.ndarray:
    """``points`` as a float (n, k) array with minimized columns negated, so larger is always better."""
    try:
        array = np.asarray(points, dtype=float)
    except (TypeError, ValueError) as exc:
        raise RooflineError(
            f"points must be numeric (n, k) data: {exc}; pass one row of numbers per candidate"
        ) from None
    if array.ndim == 1 and array.size == 0:
        # A bare [] has no column count to check maximize against; treat it as no candidates.
        array = array.reshape(0, np.size(maximize))
    if array.ndim != 2:
        raise RooflineError(
            f"points must be 2-D (n candidates x k objectives), got shape {array.shape}; "
            "reshape to (n, k), e.g. np.column_stack"
        )
    if array.shape[1] == 0 and array.shape[0] > 0:
        raise RooflineError("points have no objective columns; pass at least one objective per candidate")
    if np.isnan(array).any():
        raise RooflineError("points contain NaN; drop or impute those candidates before the Pareto filter")
    k = array.shape[1]
    if isinstance(maximize, bool | np.bool_):
        flags = np.full(k, bool(maximize))
    else:
        flags = list(maximize)
        if not all(isinstance(flag, bool | np.bool_) for flag in flags):
            raise RooflineError(f"maximize must hold bools (True = larger is better), got {flags!r}")
        if len(flags) != k:
            raise RooflineError(
                f"maximize has {len(flags)} entries for {k} objectives; give one bool per column of points"
            )
        flags = np.asarray(flags, dtype=bool)
    return np.where(flags, array, -array)


def _front_2d(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Boolean mask of the 2-D frontier, both objectives maximized (Kung, Luccio and Preparata, JACM 1975).

    After sorting by x descending, then y descending, a point is dominated iff
    some point with a strictly larger x has y >= its y, or a point with the same
    x has a strictly larger y. So within a group of equal x only the group's
    top y survives, and it survives iff it beats the running max of y over all
    earlier groups; copies of the top tie with each other and all survive.
    """
    order = np.lexsort((-y, -x))
    xs, ys = x[order], y[order]
    group_start = np.r_[True, xs[1:] != xs[:-1]]
    starts = np.flatnonzero(group_start)
    group_of = np.cumsum(group_start) - 1
    group_top = ys[starts]
    running_max = np.maximum.accumulate(ys)
    # The first group has no earlier points: it always keeps its top, even when y is -inf.
    keep_group = np.r_[True, group_top[1:] > running_max[starts[1:] - 1]]
    keep_sorted = keep_group[group_of] & (ys == group_top[group_of])
    keep = np.empty_like(keep_sorted)
    keep[order] = keep_sorted
    return keep


def _front_nd(signed: np.ndarray) -> np.ndarray:
    """Boolean mask of the frontier for k >= 3, all objectives maximized.

    A dominator is at least as good everywhere and strictly better somewhere,
    so its sum of per-objective dense ranks is strictly larger (ranks rather
    than values, so that infinities cannot make a NaN sum). Visiting rows in
    descending rank sum, every dominator of a row comes before it, and by
    transitivity some row already on the frontier dominates it; so each block
    of rows is checked only against the frontier so far and against itself.
    O(n m k) for a frontier of m rows, O(n^2 k) at worst.
    """
    n, k = signed.shape
    ranks = np.column_stack([np.unique(column, return_inverse=True)[1] for column in signed.T])
    order = np.argsort(-ranks.sum(axis=1), kind="stable")
    keep = np.zeros(n, dtype=bool)
    front = signed[:0]
    for start in range(0, n, _BLOCK_ROWS):
        rows = order[start : start + _BLOCK_ROWS]
        block = signed[rows]
        dominated = _any_dominates(block, block) | _any_dominates(front, block)
        keep[rows[~dominated]] = True
        front = np.concatenate([front, block[~dominated]])
    return keep


def _any_dominates(dominators: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """For each candidate row, whether some row of ``dominators`` dominates it (all maximized)."""
    b, k = candidates.shape
    step = max(1, _BLOCK_ELEMENTS // (b * k))
    dominated = np.zeros(b, dtype=bool)
    for start in range(0, len(dominators), step):
        chunk = dominators[None, start : start + step, :]  # (1, d, k) against (b, 1, k)
        at_least = (chunk >= candidates[:, None, :]).all(axis=2)
        better = (chunk > candidates[:, None, :]).any(axis=2)
        dominated |= (at_least & better).any(axis=1)
    return dominated
