"""Roofline evaluation against hand-worked numbers."""

import pytest

from roofline import RooflineError, evaluate, get_gpu
from roofline.analysis.engines import get_engine
from roofline.analysis.target import Target
from roofline.hardware.efficiency import default_efficiency
from roofline.model import zoo
from unit_tests.helpers import conv, network

pytestmark = pytest.mark.analytic

VOLTA = default_efficiency("volta")
OVERHEAD_S = get_engine("tensorrt").kernel_overhead_s


def test_single_conv_network_by_hand():
    # The flat roofline; unit_tests/analysis/test_waves.py works the same layer with waves.
    layer = conv("c", "x", (1, 256, 14, 14), 256, 3)
    net = network([layer], [("x", (1, 256, 14, 14))])
    gpu = get_gpu("v100")
    est = evaluate(net, Target(gpu, "fp16", waves=False), batch=64)
    flops = 64 * 2 * 256 * 14 * 14 * 256 * 9
    nbytes = 2 * (64 * 256 * 14 * 14 * 2 + 256 * 256 * 9)
    k = 256 * 9  # the reduction pays the K-loop pipeline fill
    compute_s = flops / (125e12 * VOLTA.gemm_compute * k / (k + VOLTA.k_fill_elems))
    memory_s = nbytes / (900e9 * VOLTA.bandwidth)
    latency = max(compute_s, memory_s) + OVERHEAD_S
    assert est.total_flops == flops
    assert est.total_bytes == nbytes
    assert est.latency_s == pytest.approx(latency, rel=1e-12)
    assert est.throughput_img_s == pytest.approx(64 / latency, rel=1e-12)
    assert est.utilization == pytest.approx(flops / latency / 125e12, rel=1e-12)
    assert est.arithmetic_intensity == pytest.approx(flops / nbytes)
    assert est.bound == ("compute" if flops / nbytes >= 125e12 / 900e9 else "memory")
    assert est.peak.kind == "datasheet"


def test_overhead_keeps_tiny_layers_from_being_free():
    layer = conv("c", "x", (1, 4, 2, 2), 4, 1)
    est = evaluate(network([layer], [("x", (1, 4, 2, 2))]), Target.of("h100", "fp16"), 1)
    assert est.latency_s >= OVERHEAD_S


def test_resnet50_headline_numbers():
    # Issue acceptance: 8.18 GFLOPs at 224x224 and aggregate AI of order 100-150 at batch 256.
    est = evaluate(zoo.load("resnet50"), Target.of("v100", "fp16"), 256)
    assert est.network.flops() == 8_178_368_512
    assert 100 <= est.arithmetic_intensity <= 150
    assert 0 < est.utilization < 1


def test_achievable_peak_reports_itself():
    est = evaluate(zoo.load("resnet18"), Target.of("a100", "fp16", peak="achievable"), 128)
    assert est.peak.kind == "achievable"
    assert est.peak.flops_s == pytest.approx(312e12 * default_efficiency("ampere").gemm_compute)
    assert est.to_dict()["peak"]["kind"] == "achievable"


@pytest.mark.parametrize("batch", [0, -3, 2.5, True])
def test_bad_batch_is_rejected(batch):
    with pytest.raises(RooflineError, match="batch must be a positive integer"):
        evaluate(zoo.load("resnet18"), Target.of("v100", "fp16"), batch)


def test_json_contract_keys():
    d = evaluate(zoo.load("mobilenetv2_100"), Target.of("t4", "int8"), 32).to_dict()
    contract = (
        "model gpu dtype batch resolution flops_per_image macs_per_image params bytes "
        "arithmetic_intensity cmr bound predicted layers"
    ).split()
    assert set(contract) <= set(d)
    assert set(d["predicted"]) == {"latency_s", "throughput_img_s", "tflops", "utilization"}
    for layer in d["layers"]:
        assert {"name", "op", "flops", "bytes", "arithmetic_intensity", "bound", "time_s"} <= set(layer)
    assert d["flops_per_image"] == 2 * d["macs_per_image"]
