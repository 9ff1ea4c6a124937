"""Engines in the Target: the accumulator picks the peak, the policy the kernels, the costs the floor."""

import pytest

from roofline import RooflineError, evaluate
from roofline.analysis.engines import engine_keys, get_engine
from roofline.analysis.predict import FusedNetwork, fused_for
from roofline.analysis.target import Target
from roofline.model import zoo
from roofline.model.fusion import TENSORRT

pytestmark = pytest.mark.analytic


def test_every_engine_loads_with_sources():
    assert engine_keys() == ["tensorrt", "torch", "torch-compile", "onnxruntime"]
    for key in engine_keys():
        engine = get_engine(key)
        assert engine.accumulator in ("fp16", "fp32")
        assert engine.kernel_overhead_s > 0 and engine.host_issue_s >= 0
        assert {"fusion", "accumulator", "kernel_overhead_s", "host_issue_s"} <= set(engine.sources)
    assert get_engine("tensorrt").fusion == TENSORRT
    assert (get_engine("inductor").key, get_engine("ORT").key) == ("torch-compile", "onnxruntime")


def test_unknown_engine_is_one_line_with_the_choices():
    with pytest.raises(
        RooflineError, match="unknown engine 'tensorflow'.*tensorrt, torch, torch-compile, onnxruntime"
    ):
        Target.of("v100", "fp16", engine="tensorflow")


@pytest.mark.parametrize("gpu, ratio", [("rtx4090", 0.5), ("rtx3090", 0.5), ("rtx5090", 0.5), ("a100", 1.0)])
def test_the_engines_accumulator_picks_the_peak(gpu, ratio):
    trt, torch = Target.of(gpu, "fp16"), Target.of(gpu, "fp16", engine="torch")
    # The whitepapers round each rate on its own: 165.2 is half of 330.3 to 1e-3.
    assert torch.reference.flops_s == pytest.approx(ratio * trt.reference.flops_s, rel=1e-3)
    assert torch.roof.flops_s == pytest.approx(ratio * trt.roof.flops_s, rel=1e-3)
    # BF16 accumulates in FP32 everywhere: the engine does not change it.
    assert Target.of(gpu, "bf16", engine="torch").reference == Target.of(gpu, "bf16").reference


def test_eager_is_slower_than_tensorrt_on_a_geforce_card():
    net = zoo.load("resnet50")
    rates = {
        e: evaluate(net, Target.of("rtx4090", "fp16", engine=e), 256).throughput_img_s for e in engine_keys()
    }
    assert rates["torch"] < rates["torch-compile"] < rates["tensorrt"]
    assert rates["torch"] < 0.6 * rates["tensorrt"]  # half the tensor rate, and every BN/ReLU/add is a pass


def test_a_network_fused_for_another_engine_is_fused_again():
    fused = FusedNetwork.of(zoo.load("resnet18"))
    eager = Target.of("v100", "fp16", engine="torch")
    assert fused_for(fused, Target.of("v100")) is fused
    again = fused_for(fused, eager)
    assert again.policy == eager.engine.fusion and len(again.kernels) > len(fused.kernels)
    assert evaluate(fused, eager, 8).latency_s == evaluate(zoo.load("resnet18"), eager, 8).latency_s


def test_host_issue_time_is_a_floor_per_kernel():
    net = zoo.load("resnet18")
    est = evaluate(net, Target.of("h100", "fp16", engine="torch"), 1)
    assert (est.time_s >= get_engine("torch").host_issue_s).all()
    assert est.latency_s >= len(est.fused.kernels) * get_engine("torch").host_issue_s
    assert est.to_dict(layers=False)["engine"]["key"] == "torch"
