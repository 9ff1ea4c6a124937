"""GPU-marked: the measured conv-width staircase and measured latency-table entries.

Reports, not gates: each records the measured and predicted figures in
pytest-benchmark's extra_info (``--benchmark-json``) so the roofline's wave
model can be compared with the GPU, and asserts only what must hold on any GPU.
"""

import numpy as np
import pytest

from roofline.analysis.target import Target

pytestmark = pytest.mark.gpu


@pytest.fixture
def quick():
    from kernels.timing import QUICK

    return QUICK


def test_conv_width_staircase(perf_session, benchmark, quick):
    from kernels.benchmark import gpu_of
    from kernels.microbench import conv_width_sweep

    gpu = gpu_of(perf_session.environment)
    points = benchmark.pedantic(
        conv_width_sweep, args=(Target(gpu, "fp16"), 32, range(32, 321, 32), quick), rounds=1, iterations=1
    )
    measured = np.array([p.measured_s for p in points])
    predicted = np.array([p.predicted_s for p in points])
    benchmark.extra_info.update(
        widths=[p.width for p in points], measured_s=measured.tolist(), predicted_s=predicted.tolist(),
        error=(measured / predicted - 1).tolist(),
    )  # fmt: skip
    assert (measured > 0).all() and (predicted > 0).all()
    # Ten times the output channels cannot take less time than the narrowest layer.
    assert measured[-1] > measured[0]


def test_measured_latency_table(perf_session, benchmark, quick, tmp_path):
    from kernels.benchmark import gpu_of
    from kernels.microbench import measured_latency_table
    from roofline.analysis import latency_table

    gpu = gpu_of(perf_session.environment)
    table = benchmark.pedantic(
        measured_latency_table, args=("cifar_resnet56", Target(gpu, "fp16"), 8, quick), rounds=1, iterations=1
    )
    sources = [entry.source for entry in table.entries.values()]
    benchmark.extra_info.update(entries=len(sources), measured=sources.count("measured"))
    assert sources.count("measured") > 0
    latency_table.save(table, tmp_path / "table.json")
    assert latency_table.load(tmp_path / "table.json") == table
