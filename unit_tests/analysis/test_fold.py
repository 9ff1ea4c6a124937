"""Folding (FoldedCNNs, issue 4): f images per sample, widths x sqrt(f), and where the argument fails."""

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roofline import FusedNetwork, RooflineError, evaluate, get_gpu
from roofline.analysis.fold import WIDTH_MULTIPLE, fold, fold_batch
from roofline.analysis.target import Target
from roofline.model import ir, zoo
from roofline.model.channels import channel_groups
from roofline.model.ir_file import read_network

pytestmark = pytest.mark.analytic

V100 = get_gpu("v100")
DENSE = ["vgg16", "resnet50", "cifar_resnet56"]
IMAGES = 4096


def _before_after(name, factor, images=IMAGES):
    net = zoo.load(name)
    folded = fold(net, factor)
    before = evaluate(FusedNetwork.of(net), Target(V100, "fp16"), images)
    after = evaluate(folded.network, Target(V100, "fp16"), fold_batch(images, factor))
    return net, folded, before, after


def _widths(net):
    """Tensor name -> channel width, for the input and every layer output."""
    out = {name: shape[1] for name, shape in net.inputs}
    out.update({layer.output: layer.output_shape[1] for layer in net.layers if len(layer.output_shape) > 1})
    return out


def _dense_convs(net):
    return [layer for layer in net.layers if isinstance(layer, ir.Conv) and layer.groups == 1]


# --- the folding argument at large batch ------------------------------------------------------------------


@pytest.mark.parametrize("name", DENSE)
def test_folding_by_4_on_dense_networks(name):
    _, folded, before, after = _before_after(name, 4)
    assert (after.batch, after.images, before.images) == (IMAGES // 4, IMAGES, IMAGES)
    assert 0.9 <= after.total_flops / before.total_flops <= 1.1
    assert 0.4 <= after.total_bytes / before.total_bytes <= 0.65  # ~ 1 / sqrt(f)
    assert 1.6 <= after.arithmetic_intensity / before.arithmetic_intensity <= 2.4  # ~ sqrt(f)
    # Throughput counts images, not samples; FLOPs per image are per image, not per sample.
    assert after.throughput_img_s == pytest.approx(IMAGES / after.latency_s, rel=1e-12)
    assert after.flops_per_image == pytest.approx(after.total_flops / after.images, rel=1e-12)
    assert folded.width_scale == pytest.approx(2.0) and folded.width_multiple == WIDTH_MULTIPLE


def test_folding_by_9_on_resnet50_raises_ai_by_about_3():
    _, folded, before, after = _before_after("resnet50", 9, images=9 * 512)
    assert folded.width_scale == pytest.approx(3.0)
    assert after.images == before.images == 9 * 512
    assert 0.9 <= after.total_flops / before.total_flops <= 1.1
    assert 2.6 <= after.arithmetic_intensity / before.arithmetic_intensity <= 3.4
    assert 0.27 <= after.total_bytes / before.total_bytes <= 0.4  # ~ 1/3


# --- the folded network -----------------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [2, 4, 9])
@pytest.mark.parametrize("name", [*DENSE, "efficientnet_b0", "resnext50_32x4d", "dpn68", "seresnet50"])
def test_folded_network_shape(name, factor):
    net = zoo.load(name)
    folded = fold(net, factor)
    fnet = folded.network
    # Input: 3f channels, spatial dims unchanged.
    (_, in_shape), (_, fin_shape) = net.inputs[0], fnet.inputs[0]
    assert fin_shape == (1, in_shape[1] * factor, *in_shape[2:])
    assert fnet.layers[0].input_shapes[0][1] == 3 * factor
    # Classifier: f predictions per sample.
    out = net.outputs[0]
    old = next(layer for layer in net.layers if layer.output == out)
    new = next(layer for layer in fnet.layers if layer.output == out)
    assert new.output_shape[1] == old.output_shape[1] * factor
    # Residual adds still add equal shapes.
    adds = [layer for layer in fnet.layers if isinstance(layer, ir.Elementwise) and layer.fn == "add"]
    assert all(len(set(layer.input_shapes)) == 1 for layer in adds)
    # Every scaled group: a multiple of 8, nearest to width x sqrt(f).
    widths = _widths(fnet)
    scale = math.sqrt(factor)
    for group in channel_groups(net):
        if group.fixed or not group.producers:
            continue
        want = max(WIDTH_MULTIPLE, WIDTH_MULTIPLE * math.floor(group.width * scale / WIDTH_MULTIPLE + 0.5))
        got = {widths[t] for t in group.tensors if t in widths}
        assert got == {want}, group
    # Folding samples, not images.
    assert fnet.images_per_sample == factor and net.images_per_sample == 1
    assert fnet.name == f"{net.name}-fold{factor}"
    assert len(fnet.layers) == len(net.layers)


def test_images_per_sample_survives_the_ir_round_trip():
    folded = fold(zoo.load("resnet50"), 4).network
    back = read_network(json.loads(zoo.dumps(folded)))
    assert back.images_per_sample == 4
    assert back == folded
    a = evaluate(folded, Target(V100, "fp16"), 64)
    b = evaluate(back, Target(V100, "fp16"), 64)
    assert (b.images, b.throughput_img_s) == (256, a.throughput_img_s)


def test_fold_by_1_changes_no_width():
    net = zoo.load("resnet50")
    folded = fold(net, 1)
    assert folded.network.flops() == net.flops()
    assert _widths(folded.network) == _widths(net)


# --- where the argument fails -----------------------------------------------------------------------------


def test_efficientnet_depthwise_convs_are_exceptions():
    net = zoo.load("efficientnet_b0")
    folded = fold(net, 4)
    by_layer = {e.layer: e for e in folded.exceptions}
    depthwise = [layer.name for layer in net.layers if isinstance(layer, ir.Conv) and layer.depthwise]
    assert len(depthwise) == 16
    for name in depthwise:
        assert "depthwise" in by_layer[name].reason
        assert by_layer[name].flops_ratio == pytest.approx(0.5, abs=0.1)  # 1 / sqrt(f) per image
    assert by_layer[name].to_dict() == {
        "layer": name,
        "reason": by_layer[name].reason,
        "flops_ratio": by_layer[name].flops_ratio,
    }


def test_resnext_grouped_convs_are_exceptions():
    net = zoo.load("resnext50_32x4d")
    folded = fold(net, 4)
    by_layer = {e.layer: e for e in folded.exceptions}
    grouped = [layer.name for layer in net.layers if isinstance(layer, ir.Conv) and layer.groups > 1]
    assert len(grouped) == 16
    for name in grouped:
        assert "grouped" in by_layer[name].reason
        assert by_layer[name].flops_ratio == pytest.approx(0.25, abs=0.05)  # channels kept: 1 / f


@pytest.mark.parametrize(
    "name", ["resnet50", "vgg16", "cifar_resnet56", "efficientnet_b0", "resnext50_32x4d"]
)
def test_first_layer_and_classifier_are_exceptions(name):
    net = zoo.load(name)
    folded = fold(net, 4)
    by_layer = {e.layer: e for e in folded.exceptions}
    first = next(layer for layer in net.layers if net.inputs[0][0] in layer.inputs)
    last = next(layer for layer in net.layers if layer.output == net.outputs[0])
    assert "first layer" in by_layer[first.name].reason
    assert "classifier" in by_layer[last.name].reason
    assert by_layer[first.name].flops_ratio == pytest.approx(2.0, rel=0.1)  # x f / sqrt(f) per image
    assert by_layer[last.name].flops_ratio == pytest.approx(2.0, rel=0.1)


def test_resnet50_dense_convs_are_not_exceptions():
    net = zoo.load("resnet50")
    folded = fold(net, 4)
    listed = {e.layer for e in folded.exceptions}
    inner = [c.name for c in _dense_convs(net) if c.name != "conv1"]
    assert len(inner) == 52
    assert not listed & set(inner)
    assert listed == {"conv1", "fc"}


# --- bad input --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [0, -1, True, 2.0, "4"])
def test_bad_factor(factor):
    with pytest.raises(RooflineError, match="positive integer"):
        fold(zoo.load("resnet50"), factor)


def test_folding_a_folded_network():
    once = fold(zoo.load("resnet50"), 4).network
    with pytest.raises(RooflineError, match="already folded"):
        fold(once, 4)


def test_fold_batch_must_be_whole():
    assert fold_batch(256, 4) == 64
    with pytest.raises(RooflineError, match="multiple of the fold factor 4") as exc:
        fold_batch(250, 4)
    assert "--batch 248" in str(exc.value)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 10_000), st.integers(1, 64))
def test_fold_batch_suggests_a_multiple_of_the_factor(batch, factor):
    if batch % factor == 0:
        assert fold_batch(batch, factor) * factor == batch
        return
    with pytest.raises(RooflineError) as exc:
        fold_batch(batch, factor)
    suggested = int(str(exc.value).rsplit("--batch ", 1)[1])
    assert suggested % factor == 0 and suggested >= 1
    assert fold_batch(suggested, factor) >= 1
