"""The baseline update rule (``roofline.perf.gate.agree``): how often two runs are refused, by simulation.

``--update-baselines`` measures every benchmark twice. The rule refuses the pair only when the gate
itself would call their difference a change (beyond ``max(floor, k x noise)``); the earlier rule also
refused any offset a two-sided Mann-Whitney test found significant, which with quiet windows is almost
every offset, so a benchmark whose two runs differed by a warm-up shift of 0.5% got no baseline and was
never gated. The simulation prints both rules' refusal rates for offsets of 0.5%, 1%, 2% and 5% between
the runs (the figures in README.md, "Baselines and results").
"""

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from roofline.perf.gate import DEFAULT_RULE, agree
from roofline.perf.results import Benchmark

pytestmark = pytest.mark.analytic

WINDOWS = 10  # the suite's default TimingConfig.windows
TRIALS = 1000
OFFSETS = (0.0, 0.005, 0.01, 0.02, 0.05)
NOISE = {"quiet GPU, 0.2%/window": 0.002, "noisy, 1%/window": 0.01}


def bench(samples, id="resnet50-b64-torch", **kw):
    return Benchmark.from_samples(id, samples, "img/s", **kw)


@pytest.fixture(scope="module")
def refusal_rates():
    """{(noise model, offset): (refused now, refused by the earlier rule)} over TRIALS pairs each.

    The earlier rule is this one or a two-sided Mann-Whitney shift at the gate's alpha."""
    rates = {}
    for seed, (model, noise) in enumerate(NOISE.items()):
        rng = np.random.default_rng(seed)
        for offset in OFFSETS:
            first = 1000 * (1 + noise * rng.standard_normal((TRIALS, WINDOWS)))
            second = 1000 * (1 + offset) * (1 + noise * rng.standard_normal((TRIALS, WINDOWS)))
            refused = np.array(
                [agree(bench(a), bench(b)) is not None for a, b in zip(first, second, strict=True)]
            )
            shifted = mannwhitneyu(second, first, alternative="two-sided", axis=1).pvalue < DEFAULT_RULE.alpha
            rates[model, offset] = (float(refused.mean()), float((refused | shifted).mean()))
    return rates


def test_simulated_update_refusals(refusal_rates, capsys):
    with capsys.disabled():
        print(
            f"\nbaseline update refused, {WINDOWS} windows a run, {TRIALS} pairs each: "
            "this rule (earlier rule)"
        )
        print(f"{'noise per window':26}" + "".join(f"{f'+{o:.1%}':>18}" for o in OFFSETS))
        for model in NOISE:
            cells = "".join(f"{f'{now:.1%} ({before:.1%})':>18}" for now, before in
                            (refusal_rates[model, o] for o in OFFSETS))  # fmt: skip
            print(f"{model:26}" + cells)
    for model in NOISE:
        # Offsets the gate would never flag (inside its 3% floor) are accepted...
        for offset in (0.0, 0.005, 0.01):
            assert refusal_rates[model, offset][0] <= 0.001, (model, offset)
        assert refusal_rates[model, 0.02][0] <= 0.05, model
        # ...and one the gate would flag is refused, as before.
        assert refusal_rates[model, 0.05][0] >= 0.90, model
    # With quiet windows the threshold is the 3% floor, so a 5% offset is always refused.
    assert refusal_rates["quiet GPU, 0.2%/window", 0.05][0] >= 0.99
    # The earlier rule refused quiet runs for a 0.5% offset most of the time: the defect this rule fixes.
    assert refusal_rates["quiet GPU, 0.2%/window", 0.005][1] >= 0.5


def test_refusal_names_the_gate_threshold():
    rng = np.random.default_rng(7)
    first = bench(1000 * (1 + 0.002 * rng.standard_normal(WINDOWS)))
    second = bench(1060 * (1 + 0.002 * rng.standard_normal(WINDOWS)))
    reason = agree(first, second)
    assert reason.startswith("the two measurements differ by +6.0%, more than the gate's practical threshold")
    assert "max(floor 3.0%, 3 x noise" in reason and "improvement" in reason
    # A benchmark's own tolerance is the threshold the gate uses, so it is the update's too.
    assert agree(first, bench(list(second.samples), tolerance=0.08)) is None
    assert "tolerance 2.0%" in agree(first, bench([s * 0.97 for s in first.samples], tolerance=0.02))
