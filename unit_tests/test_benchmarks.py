"""Benchmarks that print figures (pytest-benchmark); they assert no timing.

Targets from the issue: the whole embedded zoo evaluated on one GPU and dtype
from the IR in under 1 s on 2 cores, and one timm model traced in under 2 s.
Run alone with ``nox -s bench``.
"""

import pytest

from roofline import evaluate, get_gpu, zoo
from roofline.predict import FusedNetwork

pytestmark = pytest.mark.analytic


def test_bench_zoo_evaluation_from_ir(benchmark):
    """Load every zoo IR file, fuse, and evaluate on V100 FP16 at batch 256."""
    gpu = get_gpu("v100")

    def run():
        zoo._load.cache_clear()
        return [evaluate(zoo.load(name), gpu, "fp16", 256) for name in zoo.zoo_names()]

    estimates = benchmark(run)
    assert len(estimates) == len(zoo.zoo_names())


def test_bench_zoo_evaluation_prefused(benchmark):
    """Evaluation alone, once fusion is done (what a batch or GPU sweep repeats)."""
    gpu = get_gpu("v100")
    fused = [FusedNetwork.of(zoo.load(name)) for name in zoo.zoo_names()]
    estimates = benchmark(lambda: [evaluate(f, gpu, "fp16", 256) for f in fused])
    assert len(estimates) == len(fused)


@pytest.mark.torch
def test_bench_trace_timm_resnet50(benchmark):
    pytest.importorskip("timm")
    from roofline.frontends import pytorch

    pytorch.from_timm("resnet50")  # warm imports and timm's registry
    net = benchmark.pedantic(pytorch.from_timm, args=("resnet50",), rounds=5, iterations=1)
    assert net.flops() == 8_178_368_512
