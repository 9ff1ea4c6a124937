"""Throughput-aware NAS: the MnasNet reward, a sample-and-rank search, and utilization filtering.

Three tools for NAS researchers who have the roofline's throughput for free
and pay for accuracy (training or a benchmark lookup):

* ``reward``: MnasNet's multi-objective reward (Tan et al., "MnasNet:
  Platform-Aware Neural Architecture Search for Mobile", CVPR 2019, Section 3,
  eq. 2), with the latency ratio replaced by the throughput ratio as in the
  GPU-utilization study.
* ``nas_search``: sample n architectures, predict throughput, evaluate accuracy
  once on the batch, rank by reward.
* ``approximate_frontier``: the utilization study's filter (DESIGN.md,
  "Utilization as a NAS filter"): the throughput-utilization Pareto frontier
  needs no training; evaluate accuracy only on it and take the
  accuracy-throughput frontier of those. In NATS-Bench size space it kept 144
  of 32768 networks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from roofline.errors import RooflineError
from roofline.studies.pareto import pareto_front

# MnasNet's soft constraint (Section 3): alpha = beta = -0.07 on the latency ratio.
SOFT_W = -0.07
# MnasNet's hard constraint (Section 3): no reward for beating the target, a steep penalty for missing it.
HARD_W = (0.0, -1.0)


def reward(accuracy_pct, throughput_img_s, target_img_s, w: float | tuple[float, float] = SOFT_W):
    """MnasNet's reward with throughput in place of latency, elementwise over numpy arrays.

    Tan et al., CVPR 2019, Section 3, eq. 2:

        r = ACC x (LAT / T_lat)^w,   w = alpha if LAT <= T_lat else beta

    At a fixed batch, latency is inversely proportional to throughput, so with a
    throughput T and a throughput target G_T, LAT / T_lat = G_T / T and

        r = accuracy_pct / 100 x (T / G_T)^(-w),   w = w_met if T >= G_T else w_missed

    ``w`` keeps MnasNet's sign convention: it is the exponent on the *latency*
    ratio and must be <= 0, so that a faster network never scores lower. A
    scalar gives alpha = beta = w; a pair gives (w_met, w_missed). MnasNet's
    soft constraint is ``SOFT_W`` = -0.07 (a 2x faster network is worth ~5%
    more reward); its hard constraint ``HARD_W`` = (0, -1) ignores speed above
    the target and scales the reward by T / G_T below it.

    Returns a float for scalar inputs, else an array of the broadcast shape.
    Raises RooflineError for accuracy outside [0, 100], non-positive throughput
    or target, or a positive exponent.
    """
    w_met, w_missed = _exponents(w)
    acc = _finite("accuracy_pct", accuracy_pct)
    thr = _finite("throughput_img_s", throughput_img_s)
    target = _finite("target_img_s", target_img_s)
    if np.any((acc < 0) | (acc > 100)):
        raise RooflineError("accuracy_pct must lie in [0, 100]; pass accuracy in percent, not as a fraction")
    if np.any(thr <= 0):
        raise RooflineError("throughput_img_s must be > 0; drop candidates that cannot run")
    if np.any(target <= 0):
        raise RooflineError("target_img_s must be > 0 images/s; give the throughput the network must reach")
    ratio = thr / target
    exponent = np.where(ratio >= 1, -w_met, -w_missed)
    return (acc / 100 * ratio**exponent)[()]


@dataclass(frozen=True)
class SearchResult:
    """All sampled candidates with their metrics, and the top ones by reward.

    ``best`` indexes ``candidates`` and the arrays, best first: descending
    reward, ties to the higher throughput, then to the lower index.
    """

    candidates: tuple[Any, ...]
    accuracy_pct: np.ndarray
    throughput_img_s: np.ndarray
    reward: np.ndarray
    best: np.ndarray

    @property
    def best_candidates(self) -> tuple[Any, ...]:
        return tuple(self.candidates[i] for i in self.best)


def nas_search(
    sample: Callable[[np.random.Generator, int], Sequence[Any]],
    throughput: Callable[[Sequence[Any]], Any],
    accuracy: Callable[[Sequence[Any]], Any],
    n_samples: int,
    target_img_s: float,
    w: float | tuple[float, float] = SOFT_W,
    top: int = 10,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> SearchResult:
    """Sample-based NAS ranked by ``reward`` (Tan et al., CVPR 2019, Section 3, eq. 2).

    ``sample(rng, n)`` returns n candidate architectures (any objects), drawn
    with ``np.random.default_rng(seed)`` so a search is reproducible;
    ``throughput(candidates)`` returns their images/s (cheap, e.g. the
    roofline) and ``accuracy(candidates)`` their accuracy in percent
    (expensive: each is called exactly once, on the whole batch, so it can
    batch its lookups or training jobs). ``progress``, if given, receives a
    one-line message as each stage starts.
    """
    n_samples = _positive_int("n_samples", n_samples)
    top = _positive_int("top", top)
    _exponents(w)  # reject a bad exponent before paying for accuracy
    say = progress or (lambda message: None)

    say(f"sampling {n_samples} candidates (seed {seed})")
    candidates = tuple(sample(np.random.default_rng(seed), n_samples))
    if len(candidates) != n_samples:
        raise RooflineError(
            f"sample returned {len(candidates)} candidates for n={n_samples}; it must return exactly n"
        )
    say(f"predicting throughput of {n_samples} candidates")
    thr = _per_candidate("throughput", throughput(candidates), n_samples)
    say(f"evaluating accuracy of {n_samples} candidates")
    acc = _per_candidate("accuracy", accuracy(candidates), n_samples)
    rewards = np.asarray(reward(acc, thr, target_img_s, w), dtype=float).reshape(n_samples)

    order = np.lexsort((np.arange(n_samples), -thr, -rewards))
    return SearchResult(
        candidates=candidates,
        accuracy_pct=_frozen(acc),
        throughput_img_s=_frozen(thr),
        reward=_frozen(rewards),
        best=_frozen(order[:top]),
    )


@dataclass(frozen=True)
class ApproximateFrontier:
    """The outcome of utilization-based filtering.

    ``cheap_front``: indices of the cheap-metric frontier (the rows evaluated);
    ``expensive_values``: the expensive metric for those rows, in the same
    order; ``front``: indices of the final expensive-vs-throughput frontier;
    ``evaluated``: expensive evaluations spent (``len(cheap_front)``).
    """

    cheap_front: np.ndarray
    expensive_values: np.ndarray
    front: np.ndarray
    evaluated: int


def approximate_frontier(
    candidates: Sequence[Any],
    cheap,
    expensive: Callable[[list[Any]], Any],
    cheap_maximize: bool | Sequence[bool] = (True, True),
) -> ApproximateFrontier:
    """Approximate the accuracy-throughput frontier, evaluating accuracy only on a cheap frontier.

    The utilization study (DESIGN.md, "Utilization as a NAS filter"): the
    throughput-utilization Pareto frontier needs no training (144 of 32768
    networks in NATS-Bench size space, against 255 on a throughput-FLOPs
    frontier); evaluate accuracy on it alone, then keep the accuracy-throughput
    frontier of those.

    ``cheap`` is an (n, k) array, typically (throughput, utilization), or a
    callable taking ``candidates`` and returning one; column 0 must be the
    throughput, ``cheap_maximize`` its per-column directions. ``expensive``
    receives the list of selected candidate *objects* (not indices), in
    ascending index order, and returns one value each, higher is better. It is
    called once. Returns indices into ``candidates``.
    """
    n = len(candidates)
    values = _finite("cheap", cheap(candidates) if callable(cheap) else cheap)
    if values.ndim != 2 or values.shape[0] != n:
        raise RooflineError(
            f"cheap metrics have shape {values.shape} for {n} candidates; give an (n, k) array, "
            "throughput in column 0"
        )
    cheap_front = pareto_front(values, cheap_maximize)
    throughput_max = _first_direction(cheap_maximize)
    expensive_values = _per_candidate(
        "expensive", expensive([candidates[i] for i in cheap_front]), len(cheap_front)
    )
    final = pareto_front(np.column_stack([values[cheap_front, 0], expensive_values]), [throughput_max, True])
    return ApproximateFrontier(
        cheap_front=_frozen(cheap_front),
        expensive_values=_frozen(expensive_values),
        front=_frozen(cheap_front[final]),
        evaluated=len(cheap_front),
    )


def recall(approx_front, true_front) -> float:
    """Fraction of the true frontier's indices that the approximate frontier recovered."""
    true = np.unique(np.asarray(true_front, dtype=np.intp))
    if true.size == 0:
        raise RooflineError(
            "true_front is empty, so recall is undefined; pass the indices of a non-empty front"
        )
    return float(np.isin(true, np.asarray(approx_front, dtype=np.intp)).mean())


def _first_direction(maximize: bool | Sequence[bool]) -> bool:
    # pareto_front has already checked that maximize is one bool or one bool per column.
    return bool(maximize) if isinstance(maximize, bool | np.bool_) else bool(list(maximize)[0])


def _exponents(w) -> tuple[float, float]:
    pair = _finite("w", w)
    pair = np.broadcast_to(pair, (2,)) if pair.ndim == 0 else pair
    if pair.shape != (2,):
        raise RooflineError(f"w must be a number or a (w_met, w_missed) pair, got {w!r}")
    if np.any(pair > 0):
        raise RooflineError(
            f"w={w!r} has a positive exponent; w is MnasNet's exponent on the latency ratio "
            "and must be <= 0 (e.g. -0.07 soft, (0, -1) hard)"
        )
    return float(pair[0]), float(pair[1])


def _finite(name: str, value) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise RooflineError(f"{name} must be numeric, got {value!r}; pass numbers or a numpy array") from None
    if not np.all(np.isfinite(array)):
        raise RooflineError(f"{name} contains NaN or inf; drop or fix those candidates")
    return array


def _per_candidate(name: str, values, n: int) -> np.ndarray:
    array = _finite(name, values)
    if array.shape != (n,):
        raise RooflineError(f"{name} returned shape {array.shape} for {n} candidates; return one value each")
    return array


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise RooflineError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _frozen(array: np.ndarray) -> np.ndarray:
    # The result dataclasses are frozen; read-only arrays keep callers from editing them in place either.
    array = np.array(array)
    array.setflags(write=False)
    return array
