"""The performance regression gate: is a benchmark's new measurement worse than its baseline?

The rule (DESIGN.md, "Measuring on a GPU"): a regression is

1. practically large: the median drops by more than ``max(floor, k x noise)``,
   where noise is the larger of the two runs' robust relative spreads
   (``Benchmark.spread``, 1.4826 x MAD / median) and a benchmark's own
   ``tolerance`` replaces the floor;
2. statistically significant: a one-sided Mann-Whitney U test (Mann & Whitney,
   Ann. Math. Statist. 18(1), 1947) on the window samples gives p < alpha;
3. confirmed by a re-run in a fresh process (``confirm``; the pytest plugin
   does the re-run).

Throughput and utilization are gated alike; either regressing is a regression.
A rise that passes the same size and significance tests means the baseline is
stale. A run flagged invalid (``extra["invalid_reason"]``: unstable windows,
throttling, a foreign process on the GPU) is never judged.

A comparison is complete only when every baseline benchmark got a judged
verdict (ok, regression or improvement) and at least one benchmark was
compared. A baseline benchmark that is ``missing`` from the results, or whose
verdict is ``invalid`` or ``not_comparable``, is a measurement CI lost, so it
fails the comparison (``incomplete``, ``EXIT_INCOMPLETE``) instead of passing
unseen. A benchmark only the results hold is new, not lost: it is reported and
fails nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from tabulate import tabulate

from roofline.errors import RooflineError
from roofline.perf.results import Benchmark, PerfResults

OK = "ok"
REGRESSION = "regression"
IMPROVEMENT = "improvement"
INVALID = "invalid"
NOT_COMPARABLE = "not_comparable"
MISSING = "missing"  # in the baseline, not in the results
#: Verdicts that judged a benchmark; any other on a baseline benchmark leaves the comparison incomplete.
JUDGED = (OK, REGRESSION, IMPROVEMENT)
UPDATE_HINT = "re-measure with --update-baselines"

#: Exit statuses of ``roofline perf-compare`` (documented in its --help and README). A regression is
#: the stronger signal, so 1 wins over 4; 3 means nothing was judged at all, and 2 that a file is bad.
EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_COMPARABLE = 3  # the environments differ
EXIT_INCOMPLETE = 4  # a baseline benchmark missing, invalid or not comparable, or nothing compared


@dataclass(frozen=True)
class Rule:
    """Thresholds of the gate (DESIGN.md, "Measuring on a GPU").

    A change counts when it exceeds ``max(floor, k x noise)`` (all fractions of
    the baseline median) and the one-sided Mann-Whitney U test (Mann & Whitney,
    Ann. Math. Statist. 18(1), 1947) rejects "no shift" at ``alpha``. k = 3
    noise widths keeps run-to-run scatter out; alpha = 0.002 keeps a suite of
    tens of benchmarks from raising a false alarm in most sessions.
    """

    floor: float = 0.03
    k: float = 3.0
    alpha: float = 0.002

    def __post_init__(self) -> None:
        for name, value, upper in (("floor", self.floor, 1.0), ("k", self.k, math.inf),
                                   ("alpha", self.alpha, 1.0)):  # fmt: skip
            if not (isinstance(value, (int, float)) and 0 < value < upper):
                bound = "a positive number" if upper == math.inf else "a fraction in (0, 1)"
                raise RooflineError(f"gate {name} must be {bound}, got {value!r}; pass a valid --{name}")

    def min_windows(self) -> int:
        """Fewest windows per side for which the exact one-sided test can reach p < alpha.

        The smallest exact p of Mann-Whitney U with n and m samples is
        1 / C(n + m, n): every current sample below every baseline sample.
        """
        n = 1
        while 1 / math.comb(2 * n, n) >= self.alpha:
            n += 1
        return n


DEFAULT_RULE = Rule()


@dataclass(frozen=True)
class Verdict:
    """The gate's judgement of one benchmark; ``change`` is (now - baseline) / baseline of the median."""

    id: str
    baseline_median: float | None
    median: float | None
    change: float | None
    verdict: str
    reason: str
    p_value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "baseline_median": self.baseline_median,
            "median": self.median,
            "change": self.change,
            "verdict": self.verdict,
            "reason": self.reason,
            "p_value": self.p_value,
        }


def _too_few_windows(n_base: int, n_now: int, rule: Rule) -> str | None:
    """Why the comparison cannot be trusted to reject at alpha, or None.

    With n windows a side, the smallest exact one-sided Mann-Whitney p is
    1 / C(2n, n) (Mann & Whitney 1947): every sample of one side below every
    sample of the other. Each side needs the n at which that falls below alpha
    (``Rule.min_windows``); a lopsided pair such as 3 + 20 could reach it, but
    3 windows also make the noise estimate (a MAD) too rough for the size test.
    Calling such a comparison ``ok`` would pass any drop unseen.
    """
    needed = rule.min_windows()
    if min(n_base, n_now) >= needed:
        return None
    smallest_p = 1 / math.comb(2 * min(n_base, n_now), min(n_base, n_now))
    return (
        f"too few windows to judge: {n_base} baseline and {n_now} current windows (with {min(n_base, n_now)} "
        f"a side the test cannot reach p below {smallest_p:.3g}, alpha is {rule.alpha:g}); measure at least "
        f"{needed} windows per side"
    )


def _threshold(baseline: Benchmark, current: Benchmark, rule: Rule) -> tuple[float, str]:
    """max(floor, k x noise) as a fraction, and how it was made (DESIGN.md, "Measuring on a GPU").

    Noise is the larger robust spread of the two runs, so a noisy new run cannot
    pass for a regression on the strength of a quiet baseline. The current
    run's tolerance wins over the baseline's: it is the suite's present setting.
    """
    tolerance = current.tolerance if current.tolerance is not None else baseline.tolerance
    floor = rule.floor if tolerance is None else tolerance
    noise = max(baseline.spread, current.spread)
    threshold = max(floor, rule.k * noise)
    label = "tolerance" if tolerance is not None else "floor"
    return threshold, f"max({label} {floor:.1%}, {rule.k:g} x noise {noise:.2%}) = {threshold:.1%}"


@dataclass(frozen=True)
class _Shift:
    """One metric's relative change and, when beyond the threshold, its one-sided p-value."""

    metric: str
    change: float
    p_value: float | None
    significant: bool

    def __str__(self) -> str:
        return f"{self.metric} {self.change:+.1%} (p={self.p_value:.2g})"


def _shift(metric: str, base, now, change: float, threshold: float, alpha: float) -> _Shift:
    """Size first, then the one-sided Mann-Whitney U test (Mann & Whitney 1947) in the change's direction.

    The test runs only for a change beyond the threshold: a small significant
    shift is by the rule no regression, so its p-value would not be read.
    """
    if abs(change) <= threshold:
        return _Shift(metric, change, None, False)
    alternative = "less" if change < 0 else "greater"
    from scipy.stats import mannwhitneyu  # scipy.stats takes ~0.5 s to import; only the gate needs it

    p = float(mannwhitneyu(now, base, alternative=alternative).pvalue)
    return _Shift(metric, change, p, p < alpha)


def judge(baseline: Benchmark, current: Benchmark, rule: Rule = DEFAULT_RULE) -> Verdict:
    """One run against its baseline: size and significance (parts 1 and 2 of the rule; see the module)."""
    if baseline.id != current.id:
        raise ValueError(f"judging {current.id!r} against the baseline of {baseline.id!r}")

    def verdict(kind: str, reason: str, change: float | None, p: float | None = None) -> Verdict:
        return Verdict(current.id, baseline.median, current.median, change, kind, reason, p)

    if baseline.unit != current.unit:
        reason = f"unit differs: baseline {baseline.unit!r}, now {current.unit!r}; {UPDATE_HINT}"
        return verdict(NOT_COMPARABLE, reason, None)
    change = (current.median - baseline.median) / baseline.median
    if current.extra.get("invalid_reason"):
        return verdict(INVALID, f"invalid run: {current.extra['invalid_reason']}", change)
    if baseline.extra.get("invalid_reason"):
        reason = f"invalid baseline: {baseline.extra['invalid_reason']}; {UPDATE_HINT}"
        return verdict(INVALID, reason, change)
    too_few = _too_few_windows(len(baseline.samples), len(current.samples), rule)
    if too_few:
        return verdict(INVALID, too_few, change)

    threshold, how = _threshold(baseline, current, rule)
    shifts = [_shift("throughput", baseline.samples, current.samples, change, threshold, rule.alpha)]
    base_util, now_util = baseline.utilization_samples, current.utilization_samples
    if base_util is not None and now_util is not None:
        util_change = (current.utilization - baseline.utilization) / baseline.utilization
        shifts.append(_shift("utilization", base_util, now_util, util_change, threshold, rule.alpha))

    drops = [s for s in shifts if s.significant and s.change < 0]
    rises = [s for s in shifts if s.significant and s.change > 0]
    large = [s for s in shifts if s.p_value is not None]
    for kind, found, template in (
        (REGRESSION, drops, "{} beyond {}, p < {:g}"),
        (IMPROVEMENT, rises, "baseline stale: {} beyond {}, p < {:g}; " + UPDATE_HINT),
        (OK, large, "{} beyond {} but not significant at alpha {:g}"),
    ):
        if found:
            reason = template.format(" and ".join(map(str, found)), how, rule.alpha)
            return verdict(kind, reason, change, min(s.p_value for s in found))
    return verdict(OK, f"{change:+.1%} within {how}", change)


def confirm(first: Verdict, rerun: Verdict) -> Verdict:
    """Part 3 of the rule (DESIGN.md, "Measuring on a GPU"): a regression stands only if a re-run agrees.

    An unconfirmed regression is ``ok``, unless the re-run could not judge
    (``invalid`` or ``not_comparable``): then that verdict stands, so a
    measurement problem is reported rather than hidden behind ``ok``.
    """
    if first.id != rerun.id:
        raise ValueError(f"confirming {first.id!r} with a re-run of {rerun.id!r}")
    if first.verdict != REGRESSION:
        return first
    if rerun.verdict == REGRESSION:
        return replace(first, reason=f"{first.reason}; confirmed by a re-run ({rerun.change:+.1%})")
    kind = rerun.verdict if rerun.verdict in (INVALID, NOT_COMPARABLE) else OK
    reason = f"not confirmed by a re-run (re-run {rerun.verdict}: {rerun.reason}); first run: {first.reason}"
    return replace(first, verdict=kind, reason=reason)


def agree(first: Benchmark, second: Benchmark, rule: Rule = DEFAULT_RULE) -> str | None:
    """None when two measurements may become a baseline together, else why not (for --update-baselines).

    The update measures twice (DESIGN.md, "Measuring on a GPU") and refuses only what the gate itself
    would call a change: neither run invalid, the units equal, enough windows for the gate to use them,
    and medians at most the gate's practical threshold ``max(floor, k x noise)`` apart (``_threshold``,
    part 1 of the rule). A significance test alone is not a refusal: with quiet windows (0.2% spread)
    any consistent offset between two runs, a warm-up shift of 0.5% or another cuDNN algorithm, is
    significant, and refusing it left the benchmark without a baseline and never gated again
    (``unit_tests/perf/test_update_rule.py`` has the refusal rates of both rules). The second run is
    the one kept: it is the later, settled state.
    """
    for run, name in ((first, "first"), (second, "second")):
        if run.extra.get("invalid_reason"):
            return f"{name} measurement invalid: {run.extra['invalid_reason']}"
    if first.unit != second.unit:
        return f"units differ: {first.unit!r} and {second.unit!r}"
    too_few = _too_few_windows(len(first.samples), len(second.samples), rule)
    if too_few:
        return too_few
    threshold, how = _threshold(first, second, rule)
    change = (second.median - first.median) / first.median
    if abs(change) > threshold:
        kind = REGRESSION if change < 0 else IMPROVEMENT
        return (
            f"the two measurements differ by {change:+.1%}, more than the gate's practical threshold {how}: "
            f"the gate would call that difference a {kind}; re-run the update on a quiet machine"
        )
    return None


def agreement(first: Benchmark, second: Benchmark, rule: Rule = DEFAULT_RULE) -> str:
    """How far apart an accepted update's two runs were, against the gate's threshold (for the summary)."""
    _, how = _threshold(first, second, rule)
    return f"the two runs differ by {(second.median - first.median) / first.median:+.1%}, within {how}"


def compare_files(baseline: PerfResults, results: PerfResults, rule: Rule = DEFAULT_RULE) -> list[Verdict]:
    """One verdict per benchmark id in either file, sorted by id; environments are the caller's check."""
    verdicts = []
    for key in sorted(set(baseline.benchmarks) | set(results.benchmarks)):
        base, now = baseline.benchmarks.get(key), results.benchmarks.get(key)
        if base is None:
            verdicts.append(Verdict(key, None, now.median, None, NOT_COMPARABLE,
                                    "no baseline for it: run --update-baselines"))  # fmt: skip
        elif now is None:
            reason = "in the baseline but not in the results: its measurement was lost or not run; run it"
            verdicts.append(Verdict(key, base.median, None, None, MISSING, reason))
        else:
            verdicts.append(judge(base, now, rule))
    return verdicts


def _number(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def summary_table(verdicts: Iterable[Verdict]) -> str:
    """benchmark | baseline | now | change | verdict | reason, one row per verdict."""
    rows = [
        (v.id, _number(v.baseline_median, ".6g"), _number(v.median, ".6g"), _number(v.change, "+.1%"),
         v.verdict, v.reason)
        for v in verdicts
    ]  # fmt: skip
    return tabulate(rows, headers=("benchmark", "baseline", "now", "change", "verdict", "reason"),
                    disable_numparse=True)  # fmt: skip


def incomplete(verdicts: Sequence[Verdict], require_a_comparison: bool = True) -> list[str]:
    """Why ``verdicts`` do not cover the baseline, one line each (empty when they do; module doc).

    A verdict with a baseline median is a baseline benchmark's: it must be judged (``JUDGED``). With
    ``require_a_comparison``, a set of verdicts in which nothing was judged is incomplete too.
    """
    lines = [f"{v.id}: {v.verdict}: {v.reason}" for v in verdicts
             if v.baseline_median is not None and v.verdict not in JUDGED]  # fmt: skip
    if require_a_comparison and not any(v.verdict in JUDGED for v in verdicts):
        lines.append("nothing was compared: no benchmark has a valid result in both files")
    return lines


def exit_code(verdicts: Sequence[Verdict]) -> int:
    """``EXIT_REGRESSION`` when any benchmark regressed, else ``EXIT_INCOMPLETE`` when the comparison is
    ``incomplete``, else ``EXIT_OK``. A regression wins: it is the stronger signal, and the incomplete
    benchmarks are still named beside it."""
    if any(v.verdict == REGRESSION for v in verdicts):
        return EXIT_REGRESSION
    return EXIT_INCOMPLETE if incomplete(verdicts) else EXIT_OK
