"""The regression gate (roofline.perf.gate): size, significance, re-run confirmation, and its error rates."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import mannwhitneyu

from roofline import RooflineError
from roofline.perf import gate
from roofline.perf.gate import Rule, Verdict, agree, compare_files, confirm, exit_code, judge, summary_table
from roofline.perf.results import Benchmark, PerfResults, relative_spread

pytestmark = pytest.mark.analytic

FLOPS = 4.1e9  # per image, ResNet-50-like
PEAK = 9.89e14  # FLOP/s, H100 SXM dense FP16


def windows(median, noise, n=10, seed=0):
    """n window throughputs with exactly this median and robust relative spread (1.4826 MAD / median)."""
    draw = np.random.default_rng(seed).standard_normal(n)
    deviation = draw - np.median(draw)
    mad = np.median(np.abs(deviation))
    if mad == 0:  # a single window: no spread to scale
        return median * (1 + noise * deviation)
    # Scaling the deviations about the median keeps the median and sets the MAD exactly.
    return median + deviation * (noise * median / (1.4826 * mad))


def bench(samples, id="resnet50-b32-torch", **kw):
    return Benchmark.from_samples(id, samples, "img/s", **kw)


def results(*benchmarks):
    return PerfResults({}, {b.id: b for b in benchmarks})


def test_windows_helper_sets_median_and_spread():
    samples = windows(1000.0, 0.02, seed=3)
    assert np.median(samples) == pytest.approx(1000.0)
    assert relative_spread(samples) == pytest.approx(0.02)


def test_clear_drop_is_a_regression():
    verdict = judge(bench(windows(1000, 0.01, seed=1)), bench(windows(900, 0.01, seed=2)))
    assert verdict.verdict == "regression"
    assert verdict.change == pytest.approx(-0.10)
    assert verdict.p_value < 0.002
    assert verdict.reason.startswith("throughput -10.0%")
    assert set(verdict.to_dict()) >= {"id", "baseline_median", "median", "change", "verdict", "reason"}
    assert verdict.to_dict()["baseline_median"] == pytest.approx(1000)


def test_significant_drop_under_the_floor_is_ok():
    base, now = bench(windows(1000, 0.001, seed=1)), bench(windows(980, 0.001, seed=2))
    # Significant on its own: only the 3% floor keeps it from being a regression.
    assert mannwhitneyu(now.samples, base.samples, alternative="less").pvalue < 0.002
    verdict = judge(base, now)
    assert verdict.verdict == "ok"
    assert "-2.0% within max(floor 3.0%" in verdict.reason


def test_tolerance_replaces_the_floor():
    base, now = windows(1000, 0.001, seed=1), windows(980, 0.001, seed=2)
    assert judge(bench(base), bench(now, tolerance=0.01)).verdict == "regression"
    assert judge(bench(base, tolerance=0.01), bench(now)).verdict == "regression"
    base, now = windows(1000, 0.001, seed=1), windows(960, 0.001, seed=2)
    verdict = judge(bench(base), bench(now, tolerance=0.05))
    assert verdict.verdict == "ok" and "tolerance 5.0%" in verdict.reason
    # The current run carries the suite's present tolerance, so it wins over the baseline's.
    assert judge(bench(base, tolerance=0.05), bench(now, tolerance=0.01)).verdict == "regression"


@pytest.mark.parametrize("n_base, n_now", [(5, 5), (5, 7), (3, 20), (1, 1)])
def test_too_few_windows_is_invalid_not_ok(n_base, n_now):
    base, now = bench(windows(1000, 0.01, n_base)), bench(windows(500, 0.01, n_now))
    verdict = judge(base, now)
    assert verdict.verdict == "invalid"
    assert "too few windows" in verdict.reason and "at least 6 windows per side" in verdict.reason
    assert verdict.change == pytest.approx(-0.5)


@pytest.mark.parametrize("n_base, n_now", [(6, 6), (6, 20), (10, 10)])
def test_enough_windows_can_be_significant(n_base, n_now):
    # 1 / C(2n, n) < 0.002 from n = 6 on (1/924; 1/252 at n = 5).
    verdict = judge(bench(windows(1000, 0.01, n_base)), bench(windows(500, 0.01, n_now)))
    assert verdict.verdict == "regression"


def test_a_looser_alpha_needs_fewer_windows():
    assert Rule().min_windows() == 6
    assert Rule(alpha=0.05).min_windows() == 4  # 1/C(8,4) = 0.014; 1/C(6,3) = 0.05 is not below
    base, now = bench(windows(1000, 0.01, 4)), bench(windows(500, 0.01, 4))
    assert judge(base, now, Rule(alpha=0.05)).verdict == "regression"
    assert judge(base, now).verdict == "invalid"


def test_noisy_benchmark_needs_a_bigger_drop():
    quiet = judge(bench(windows(1000, 0.01, seed=1)), bench(windows(920, 0.01, seed=2)))
    assert quiet.verdict == "regression"
    # 3% noise: the threshold is 3 x 3% = 9%, so an 8% drop is scatter.
    noisy = judge(bench(windows(1000, 0.03, seed=1)), bench(windows(920, 0.03, seed=2)))
    assert noisy.verdict == "ok"
    assert "3 x noise 3.00%) = 9.0%" in noisy.reason
    bigger = judge(bench(windows(1000, 0.03, seed=1)), bench(windows(850, 0.03, seed=2)))
    assert bigger.verdict == "regression"


def test_noise_is_the_larger_of_the_two_spreads():
    # A noisy new run cannot pass for a regression on the strength of a quiet baseline.
    verdict = judge(bench(windows(1000, 0.002, seed=1)), bench(windows(920, 0.03, seed=2)))
    assert verdict.verdict == "ok" and "noise 3.00%" in verdict.reason


def test_large_but_not_significant_is_ok_with_the_p_value():
    # 6 vs 6 windows whose ranges overlap: a 5% median drop the test cannot confirm.
    base = [1000, 1040, 960, 1010, 990, 1100]
    now = [950, 1045, 900, 955, 945, 1000]
    verdict = judge(bench(base), bench(now), Rule(k=1))
    assert verdict.verdict == "ok"
    assert "not significant" in verdict.reason and verdict.p_value >= 0.002


def test_improvement_says_the_baseline_is_stale():
    verdict = judge(bench(windows(1000, 0.01, seed=1)), bench(windows(1100, 0.01, seed=2)))
    assert verdict.verdict == "improvement"
    assert verdict.reason.startswith("baseline stale: throughput +10.0%")
    assert "--update-baselines" in verdict.reason
    assert exit_code([verdict]) == 0


@pytest.mark.parametrize(
    "flops, peak, change",
    [(FLOPS * 0.9, PEAK, -0.10), (FLOPS, PEAK * 1.25, -0.20)],
    ids=["fewer-flops-per-image", "higher-peak"],
)
def test_utilization_regression_alone_is_caught(flops, peak, change):
    samples = windows(1000, 0.01, seed=1)
    base = bench(samples, flops_per_image=FLOPS, peak_flops=PEAK)
    now = bench(windows(1000, 0.01, seed=2), flops_per_image=flops, peak_flops=peak)
    verdict = judge(base, now)
    assert verdict.verdict == "regression"
    assert verdict.change == pytest.approx(0.0)
    assert verdict.reason.startswith(f"utilization {change:+.1%}") and "throughput" not in verdict.reason
    # Without utilization on one side only throughput is gated.
    assert judge(base, bench(windows(1000, 0.01, seed=2))).verdict == "ok"


def test_both_metrics_named_when_both_regress():
    base = bench(windows(1000, 0.01, seed=1), flops_per_image=FLOPS, peak_flops=PEAK)
    now = bench(windows(900, 0.01, seed=2), flops_per_image=FLOPS, peak_flops=PEAK)
    assert judge(base, now).reason.startswith("throughput -10.0% (p=")
    assert "and utilization -10.0%" in judge(base, now).reason


def test_invalid_runs_are_never_regressions():
    base, drop = windows(1000, 0.01, seed=1), windows(500, 0.01, seed=2)
    reason = "unstable: the last 3 windows deviate 4.1% from their mean after 20 windows"
    verdict = judge(bench(base), bench(drop, extra={"invalid_reason": reason}))
    assert verdict.verdict == "invalid" and reason in verdict.reason
    verdict = judge(bench(base, extra={"invalid_reason": "throttled: SW power cap"}), bench(drop))
    assert verdict.verdict == "invalid"
    assert "baseline" in verdict.reason and "throttled" in verdict.reason
    assert judge(bench(base), bench(drop, extra={"invalid_reason": None})).verdict == "regression"


def test_different_units_are_not_comparable():
    base = Benchmark.from_samples("gemm", windows(1000, 0.01), "TFLOP/s")
    verdict = judge(base, Benchmark.from_samples("gemm", windows(500, 0.01), "GB/s"))
    assert verdict.verdict == "not_comparable" and "unit" in verdict.reason


def test_judging_different_ids_is_a_programming_error():
    with pytest.raises(ValueError, match="baseline of"):
        judge(bench(windows(1000, 0.01), id="a"), bench(windows(1000, 0.01), id="b"))


def _verdict(kind, change=-0.1, id="m"):
    return Verdict(id, 1000.0, 1000.0 * (1 + change), change, kind, f"{kind} reason", 1e-4)


def test_confirm_needs_the_rerun_to_regress_too():
    confirmed = confirm(_verdict("regression"), _verdict("regression", -0.08))
    assert confirmed.verdict == "regression" and "confirmed by a re-run (-8.0%)" in confirmed.reason
    unconfirmed = confirm(_verdict("regression"), _verdict("ok", -0.01))
    assert unconfirmed.verdict == "ok"
    assert unconfirmed.reason.startswith("not confirmed by a re-run (re-run ok: ok reason)")
    assert unconfirmed.change == -0.1  # the first run's figures stay on record
    assert confirm(_verdict("regression"), _verdict("improvement")).verdict == "ok"
    # A re-run that cannot judge reports the measurement problem rather than an all-clear.
    assert confirm(_verdict("regression"), _verdict("invalid")).verdict == "invalid"
    for kind in ("ok", "improvement", "invalid", "not_comparable"):
        assert confirm(_verdict(kind), _verdict("regression")) == _verdict(kind)
    with pytest.raises(ValueError):
        confirm(_verdict("regression", id="a"), _verdict("regression", id="b"))


def test_agree():
    first = bench(windows(1000, 0.01, seed=1))
    assert agree(first, bench(windows(1005, 0.01, seed=2))) is None
    refused = agree(first, bench(windows(950, 0.01, seed=2)))
    assert "differ by -5.0%, more than the gate's practical threshold max(floor 3.0%" in refused
    assert "regression" in refused
    # 1% apart with 0.1% noise is a significant shift, but the gate would never flag it: accepted.
    quiet = bench(windows(1000, 0.001, seed=1))
    assert agree(quiet, bench(windows(990, 0.001, seed=2))) is None
    assert gate.agreement(quiet, bench(windows(990, 0.001, seed=2))).startswith(
        "the two runs differ by -1.0%"
    )
    assert "invalid" in agree(first, bench(windows(1000, 0.01), extra={"invalid_reason": "throttled"}))
    assert "too few windows" in agree(bench(windows(1000, 0.01, 5)), bench(windows(1000, 0.01, 5)))


def test_compare_files_covers_ids_on_either_side():
    shared = bench(windows(1000, 0.01, seed=1), id="b-shared")
    verdicts = compare_files(
        results(shared, bench(windows(1000, 0.01), id="c-gone")),
        results(bench(windows(800, 0.01, seed=2), id="b-shared"), bench(windows(10, 0.01), id="a-new")),
    )
    assert [v.id for v in verdicts] == ["a-new", "b-shared", "c-gone"]
    new, kept, gone = verdicts
    assert (new.verdict, new.baseline_median, new.median) == ("not_comparable", None, pytest.approx(10))
    assert new.reason == "no baseline for it: run --update-baselines"
    assert (gone.verdict, gone.median) == ("missing", None)
    assert gone.reason.startswith("in the baseline but not in the results")
    assert kept.verdict == "regression"
    assert exit_code(verdicts) == 1  # a regression is the stronger signal: 1 wins over 4
    assert exit_code([new, gone]) == 4


def _kind(kind, id="b", baseline=1000.0):
    return Verdict(id, baseline, 990.0, -0.01, kind, f"because {id}")


@pytest.mark.parametrize(
    "kinds, code",
    [
        (["ok", "improvement"], 0),
        (["ok", "regression"], 1),
        (["ok", "invalid"], 4),
        (["ok", "missing"], 4),
        (["ok", "not_comparable"], 4),  # a baseline benchmark that could not be compared (unit changed)
        (["regression", "invalid", "missing"], 1),
        (["invalid"], 4),
        ([], 4),  # nothing compared
    ],
)
def test_exit_code_precedence(kinds, code):
    verdicts = [_kind(kind, f"b{i}") for i, kind in enumerate(kinds)]
    assert exit_code(verdicts) == code
    assert (gate.EXIT_OK, gate.EXIT_REGRESSION, gate.EXIT_BAD_INPUT, gate.EXIT_NOT_COMPARABLE,
            gate.EXIT_INCOMPLETE) == (0, 1, 2, 3, 4)  # fmt: skip


def test_incomplete_names_each_baseline_benchmark_without_a_verdict():
    new = Verdict("a-new", None, 10.0, None, "not_comparable", "no baseline for it: run --update-baselines")
    verdicts = [new, _kind("ok", "b-ok"), _kind("invalid", "c-bad"), _kind("missing", "d-gone")]
    assert gate.incomplete(verdicts) == ["c-bad: invalid: because c-bad", "d-gone: missing: because d-gone"]
    # A benchmark only the results have is new, not lost: it is reported, and fails nothing.
    assert gate.incomplete([new, _kind("ok")]) == [] and exit_code([new, _kind("ok")]) == 0
    assert gate.incomplete([new]) == ["nothing was compared: no benchmark has a valid result in both files"]
    assert gate.incomplete([new], require_a_comparison=False) == []


def test_disjoint_files_compare_nothing():
    verdicts = compare_files(results(bench(windows(1000, 0.01), id="old")),
                             results(bench(windows(1000, 0.01), id="new")))  # fmt: skip
    assert [v.verdict for v in verdicts] == ["not_comparable", "missing"]
    assert gate.incomplete(verdicts)[-1].startswith("nothing was compared") and exit_code(verdicts) == 4


def test_summary_table():
    verdicts = compare_files(
        results(bench(windows(1000, 0.01, seed=1)), bench(windows(50, 0.01), id="gone")),
        results(bench(windows(900, 0.01, seed=2))),
    )
    lines = summary_table(verdicts).splitlines()
    assert lines[0].split() == ["benchmark", "baseline", "now", "change", "verdict", "reason"]
    gone, kept = lines[2].split(), lines[3].split()
    assert gone[:5] == ["gone", "50", "-", "-", "missing"]
    assert kept[:5] == ["resnet50-b32-torch", "1000", "900", "-10.0%", "regression"]


@pytest.mark.parametrize(
    "kw, name", [({"floor": 0}, "floor"), ({"floor": 1.5}, "floor"), ({"k": -1}, "k"),
                 ({"alpha": 0}, "alpha"), ({"alpha": math.nan}, "alpha")],
)  # fmt: skip
def test_rule_rejects_bad_thresholds(kw, name):
    with pytest.raises(RooflineError, match=f"gate {name} must be"):
        Rule(**kw)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    drop=st.floats(-0.3, 0.3),
    noise=st.floats(0.001, 0.05),
    scale=st.floats(1e-3, 1e6),
)
def test_verdicts_do_not_depend_on_the_unit_scale(seed, drop, noise, scale):
    rng = np.random.default_rng(seed)
    base = 1000 * (1 + noise * rng.standard_normal(10))
    now = 1000 * (1 + drop) * (1 + noise * rng.standard_normal(10))
    plain = judge(bench(base, flops_per_image=FLOPS, peak_flops=PEAK), bench(now, flops_per_image=FLOPS,
                                                                           peak_flops=PEAK))  # fmt: skip
    scaled = judge(bench(base * scale, flops_per_image=FLOPS / scale, peak_flops=PEAK),
                   bench(now * scale, flops_per_image=FLOPS / scale, peak_flops=PEAK))  # fmt: skip
    assert scaled.verdict == plain.verdict
    assert scaled.change == pytest.approx(plain.change, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.floats(1.0, 1e6), min_size=1, max_size=15), min_size=1, max_size=4))
def test_identical_files_never_regress(sample_lists):
    same = results(*(bench(s, id=f"b{i}") for i, s in enumerate(sample_lists)))
    verdicts = compare_files(same, same)
    assert {v.verdict for v in verdicts} <= {"ok", "invalid"}
    assert all(v.change == 0 for v in verdicts)
    assert exit_code(verdicts) == (4 if any(v.verdict == "invalid" for v in verdicts) else 0)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), drop=st.floats(0.0, 0.3), noise=st.floats(0.001, 0.05))
def test_a_regression_read_backwards_is_an_improvement(seed, drop, noise):
    rng = np.random.default_rng(seed)
    a = bench(1000 * (1 + noise * rng.standard_normal(10)))
    b = bench(1000 * (1 - drop) * (1 + noise * rng.standard_normal(10)))
    if judge(a, b).verdict == "regression":
        # A drop c beyond the threshold is a rise of c / (1 - c) > c the other way; p is the same test.
        assert judge(b, a).verdict == "improvement"


# --- Error rates of the whole gate on simulated measurements -------------------------------------------

WINDOWS = 10
TRIALS = 2000
DROPS = (0.0, 0.03, 0.04, 0.05)


def _iid(rng, n):
    return 1 + 0.01 * rng.standard_normal((n, WINDOWS))


def _heavy_tails(rng, n):
    # Student-t with 3 dof, scale 1%: about the same MAD as the normal model, far wilder outliers.
    return 1 + 0.01 * rng.standard_t(3, (n, WINDOWS))


def _drift(rng, n):
    # One offset per run (clocks, placement) shared by its windows; the test cannot see it as noise.
    return 1 + 0.005 * rng.standard_normal((n, 1)) + 0.01 * rng.standard_normal((n, WINDOWS))


NOISE_MODELS = {"iid N(0,1%)": _iid, "t3 x 1%": _heavy_tails, "1% + 0.5% run drift": _drift}


@pytest.fixture(scope="module")
def error_rates():
    """Fraction of trials the gate calls a regression, per noise model and true drop (A/A at 0)."""
    rates, significance_alone = {}, {}
    for seed, (model, draw) in enumerate(NOISE_MODELS.items()):
        rng = np.random.default_rng(seed)
        for drop in DROPS:
            base, now = 1000 * draw(rng, TRIALS), 1000 * (1 - drop) * draw(rng, TRIALS)
            verdicts = [judge(bench(b), bench(n)).verdict for b, n in zip(base, now, strict=True)]
            rates[model, drop] = verdicts.count("regression") / TRIALS
            if drop == 0:
                p = mannwhitneyu(now, base, alternative="less", axis=1).pvalue
                significance_alone[model] = float(np.mean(p < Rule().alpha))
    return rates, significance_alone


def test_simulated_false_alarms_and_power(error_rates, capsys):
    rates, significance_alone = error_rates
    with capsys.disabled():
        print(f"\ngate on {WINDOWS} windows per side, {TRIALS} trials each: fraction called a regression")
        print(f"{'noise model':24}" + "".join(f"{'A/A' if d == 0 else f'-{d:.0%}':>8}" for d in DROPS)
              + "   (MWU alone, A/A)")  # fmt: skip
        for model in NOISE_MODELS:
            print(f"{model:24}" + "".join(f"{rates[model, d]:8.2%}" for d in DROPS)
                  + f"   {significance_alone[model]:.2%}")  # fmt: skip
    for model in NOISE_MODELS:
        assert rates[model, 0.0] <= 0.005, model
        assert rates[model, 0.03] < rates[model, 0.04] < rates[model, 0.05], model
        # A drop at the floor passes the size test only when its measured median lands below it.
        assert rates[model, 0.03] <= 0.5, model
    assert rates["iid N(0,1%)", 0.05] >= 0.90
    assert rates["iid N(0,1%)", 0.04] >= 0.60
    assert rates["1% + 0.5% run drift", 0.05] >= 0.85
    assert rates["t3 x 1%", 0.05] >= 0.70
    # Run drift fools the test alone (it is not window noise); the size threshold is what holds it off.
    assert significance_alone["1% + 0.5% run drift"] >= 0.01
