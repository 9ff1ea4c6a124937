"""Kernel-class efficiency terms: each within (0, 1], each limit by hand, time monotone in work."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roofline import evaluate
from roofline.analysis.target import Target
from roofline.analysis.waves import KERNEL_CLASSES, work_of
from roofline.hardware.efficiency import KernelEfficiency, default_efficiency, efficiency_for
from roofline.hardware.gpus import all_gpus, get_gpu
from roofline.model.fusion import fuse
from unit_tests.helpers import conv, network

pytestmark = pytest.mark.analytic

FRACTIONS = ("gemm_compute", "bandwidth", "cuda_core_compute", "depthwise_bandwidth", "attention_compute")


@pytest.mark.parametrize("gpu", all_gpus(), ids=lambda g: g.key)
def test_every_gpu_has_terms_in_range(gpu):
    eff = efficiency_for(gpu)
    assert eff.generation != "default"
    for name in FRACTIONS:
        assert 0 < getattr(eff, name) <= 1


@pytest.mark.parametrize("name", FRACTIONS)
@pytest.mark.parametrize("value", [0.0, -0.1, 1.01])
def test_a_fraction_outside_0_1_is_refused(name, value):
    with pytest.raises(ValueError, match=name):
        default_efficiency("volta").replace(**{name: value})


def one_conv(c_in, c_out, k=3, groups=1, hw=28):
    layer = conv("c", "x", (1, c_in, hw, hw), c_out, k, groups=groups)
    return network([layer], [("x", (1, c_in, hw, hw))])


def kernel_class(net):
    (kernel,) = fuse(net)
    return work_of(kernel).kernel_class


def test_classes_by_hand():
    assert kernel_class(one_conv(64, 64)) == "gemm"
    assert kernel_class(one_conv(128, 128, groups=32)) == "grouped"
    assert kernel_class(one_conv(128, 128, groups=128)) == "depthwise"
    assert set(KERNEL_CLASSES) == {"gemm", "grouped", "depthwise", "attention", "pointwise"}


def test_short_reductions_pay_the_pipeline_fill():
    # Same FLOPs, K = 16 x 9 vs 256 x 9: the short reduction runs at K / (K + k_fill) of the rate.
    t = Target.of("a100", "fp16", waves=False)
    fill = default_efficiency("ampere").k_fill_elems
    short, long = one_conv(16, 4096, hw=56), one_conv(256, 256, hw=56)
    assert short.flops() == long.flops()
    ratio = evaluate(short, t, 64).compute_s[0] / evaluate(long, t, 64).compute_s[0]
    assert ratio == pytest.approx((1 + fill / 144) / (1 + fill / 2304), rel=1e-9)


def test_a_three_channel_stem_pads_to_the_tensor_core_alignment():
    t = Target.of("a100", "fp16", waves=False)
    three, eight = one_conv(3, 64, k=7), one_conv(8, 64, k=7)
    fill = default_efficiency("ampere").k_fill_elems
    per_flop = [evaluate(n, t, 64).compute_s[0] / n.flops() for n in (three, eight)]
    # C = 3 is padded to 8: 8/3 the time per FLOP, less the longer reduction's smaller fill share.
    expected = (8 / 3) * (1 + fill / (3 * 49)) / (1 + fill / (8 * 49))
    assert per_flop[0] / per_flop[1] == pytest.approx(expected, rel=1e-9)


def test_depthwise_runs_on_cuda_cores_and_streams_at_its_own_bandwidth():
    gpu = get_gpu("a100")
    eff = default_efficiency("ampere")
    est = evaluate(one_conv(256, 256, groups=256, hw=56), Target(gpu, "fp16"), 64)
    assert est.compute_s[0] == pytest.approx(est.flops[0] / (gpu.peak("fp32") * eff.cuda_core_compute))
    memory_s = est.bytes[0] / (gpu.dram_bandwidth_bytes_s * eff.depthwise_bandwidth)
    assert est.time_s[0] == pytest.approx(max(est.compute_s[0], memory_s) + 2e-6)


def test_grouped_conv_takes_the_faster_of_tensor_and_cuda_cores():
    t = Target.of("a100", "fp16")
    narrow = evaluate(one_conv(128, 128, groups=32), t, 64)  # 4 channels per group
    cuda_core_s = narrow.flops[0] / (t.gpu.peak("fp32") * t.kernel_efficiency.cuda_core_compute)
    assert narrow.compute_s[0] <= cuda_core_s * (1 + 1e-12)
    lower = t.replace(efficiency=t.kernel_efficiency.replace(cuda_core_compute=0.01))
    assert evaluate(one_conv(128, 128, groups=32), lower, 64).compute_s[0] >= narrow.compute_s[0]


terms = st.builds(
    lambda *v: dataclasses.replace(default_efficiency("ampere"), **dict(zip(FRACTIONS, v, strict=True))),
    *[st.floats(0.01, 1.0) for _ in FRACTIONS],
)


@settings(max_examples=40, deadline=None)
@given(eff=terms, c=st.sampled_from([3, 8, 32, 128]), groups=st.sampled_from([1, 2, "dw"]),
       batch=st.integers(1, 64))  # fmt: skip
def test_time_is_monotone_in_work_and_positive(eff: KernelEfficiency, c, groups, batch):
    g = c if groups == "dw" else groups if c % groups == 0 else 1
    t = Target.of("a100", "fp16", efficiency=eff)
    small = evaluate(one_conv(c, c, groups=g, hw=14), t, batch)
    large = evaluate(one_conv(c, c, groups=g, hw=14), t, batch * 2)
    assert np.isfinite(small.latency_s) and small.latency_s > 0
    assert large.latency_s >= small.latency_s
    # Lower efficiencies never make a kernel faster.
    slower = eff.replace(**{name: getattr(eff, name) / 2 for name in FRACTIONS})
    assert (
        evaluate(one_conv(c, c, groups=g, hw=14), t.replace(efficiency=slower), batch).latency_s
        >= small.latency_s
    )
