"""Benchmarks that print figures (pytest-benchmark); they assert no timing.

Targets from the issues: the whole embedded zoo evaluated on one GPU and dtype
from the IR in under 1 s on 2 cores, one timm model traced in under 2 s, a
staircase of 512 widths in under 50 ms, width adjustment on ResNet-56 in
under 1 s, and the zoo survey with figures in under 20 s. The search-space
sweeps' benchmarks (NATS-Bench < 5 s, 100,000 GPUNet samples < 60 s) sit with
their tests in test_nats.py and test_gpunet.py.
Run alone with ``nox -s bench``.
"""

import numpy as np
import pytest

from roofline import evaluate, get_gpu
from roofline.analysis.predict import FusedNetwork
from roofline.analysis.staircase import staircase
from roofline.analysis.target import Target
from roofline.analysis.widths import adjust_widths
from roofline.model import zoo

pytestmark = pytest.mark.analytic


def test_bench_zoo_evaluation_from_ir(benchmark):
    """Load every zoo IR file, fuse, and evaluate on V100 FP16 at batch 256."""
    gpu = get_gpu("v100")

    def run():
        zoo._load.cache_clear()
        return [evaluate(zoo.load(name), Target(gpu, "fp16"), 256) for name in zoo.zoo_names()]

    estimates = benchmark(run)
    assert len(estimates) == len(zoo.zoo_names())


def test_bench_zoo_evaluation_prefused(benchmark):
    """Evaluation alone, once fusion is done (what a batch or GPU sweep repeats)."""
    gpu = get_gpu("v100")
    fused = [FusedNetwork.of(zoo.load(name)) for name in zoo.zoo_names()]
    estimates = benchmark(lambda: [evaluate(f, Target(gpu, "fp16"), 256) for f in fused])
    assert len(estimates) == len(fused)


@pytest.mark.torch
def test_bench_trace_timm_resnet50(benchmark):
    pytest.importorskip("timm")
    from roofline.model.frontends import pytorch

    pytorch.from_timm("resnet50")  # warm imports and timm's registry
    net = benchmark.pedantic(pytorch.from_timm, args=("resnet50",), rounds=5, iterations=1)
    assert net.flops() == 8_178_368_512


def test_bench_staircase_512_widths(benchmark):
    fused = FusedNetwork.of(zoo.load("resnet50"))
    stairs = benchmark(staircase, fused, "layer3.0.conv2", Target.of("v100"), 8, np.arange(1, 513))
    assert len(stairs.widths) == 512


@pytest.mark.parametrize("batch", [1, 64])
def test_bench_width_adjustment_resnet56(benchmark, batch):
    net = zoo.load("cifar_resnet56")
    result = benchmark.pedantic(adjust_widths, args=(net, Target.of("v100"), batch), rounds=3, iterations=1)
    assert result.latency_after_s <= result.latency_before_s


def test_bench_zoo_survey_with_figures(benchmark, tmp_path):
    """The README's main job: the whole zoo, folded, with every figure written (target < 20 s)."""
    from roofline.cli.survey_outputs import write_outputs
    from roofline.studies.survey import survey

    gpu = get_gpu("v100")

    def run():
        zoo._load.cache_clear()
        result = survey([zoo.load(n) for n in zoo.zoo_names()], Target(gpu, "fp16"), 256, fold_factor=4)
        return write_outputs(result, tmp_path / "survey", replace=True)

    written = benchmark.pedantic(run, rounds=3, iterations=1)
    assert {p.name for p in written} >= {"roofline.png", "pareto.svg", "survey.csv", "summary.md"}
