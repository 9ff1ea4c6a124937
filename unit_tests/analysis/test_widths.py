"""Invariants of the GPU-aware width adjustment (tail-effect study)."""

import pytest

from roofline import RooflineError, get_gpu
from roofline.analysis.predict import evaluate
from roofline.analysis.target import Target
from roofline.analysis.widths import adjust_widths
from roofline.model import zoo
from roofline.model.channels import channel_groups, scale_widths
from unit_tests.helpers import bn, conv, ew, network

pytestmark = pytest.mark.analytic

V100 = get_gpu("v100")


def _widths_by_tensor(net):
    return {layer.output: layer.output_shape[1] for layer in net.layers}


def _tied_groups_stay_tied(result):
    widths = _widths_by_tensor(result.network)
    for group in channel_groups(result.network):
        assert len({widths[t] for t in group.tensors if t in widths}) <= 1, group


def _check(result):
    _tied_groups_stay_tied(result)
    after = evaluate(result.network, result.target, result.batch)
    assert after.latency_s == pytest.approx(result.latency_after_s)  # the reported figure is the real one
    assert result.network.params() == result.params_after
    for move in result.moves:  # only right edges of steps are chosen (multiples of 8)
        assert move.width % 8 == 0


def test_latency_mode_on_cifar_vgg16_meets_target_inside_tau():
    result = adjust_widths(
        zoo.load("cifar_vgg16"), Target(V100, "fp16"), 64, mode="latency", tau=0.01, delta=0.95
    )
    _check(result)
    assert result.met and result.latency_after_s <= 0.95 * result.latency_before_s
    assert abs(result.params_after - result.params_before) < result.tau * result.params_before
    assert result.moves


def test_latency_mode_on_wide_resnet56_keeps_residual_ties():
    net = scale_widths(zoo.load("cifar_resnet56"), 4.0)
    result = adjust_widths(net, Target(V100, "fp16"), 64, mode="latency")
    _check(result)
    assert result.met
    assert abs(result.params_after - result.params_before) < result.tau * result.params_before
    # A stage group moves as one: every conv2 of stage 2 and the pad shortcut share the new width.
    stage = next(m for m in result.moves if "layer2.0.conv2" in m.group.producers)
    assert len(stage.group.producers) == 9


def test_resnet56_at_its_real_widths_has_no_step_to_move_to():
    # Widths 16/32/64 sit inside one N tile (>= 64) of every candidate GEMM tile: no edge, no move.
    result = adjust_widths(zoo.load("cifar_resnet56"), Target(V100, "fp16"), 64, mode="latency")
    _check(result)
    assert not result.moves and not result.met and result.latency_after_s == result.latency_before_s


def test_accuracy_mode_never_costs_latency():
    for net in (zoo.load("cifar_vgg16"), scale_widths(zoo.load("cifar_resnet56"), 4.0)):
        result = adjust_widths(net, Target(V100, "fp16"), 64, mode="accuracy")
        _check(result)
        assert result.latency_after_s <= result.latency_before_s
        assert result.params_after >= result.params_before


def test_residual_pair_moves_together():
    # Two convs whose outputs are added form one group; widening it must widen both.
    x = (1, 96, 28, 28)
    a = conv("a", "x", x, 200, 3)
    b = conv("b", "x", x, 200, 1)
    out = (1, 200, 28, 28)
    layers = [
        a,
        bn("abn", "a", out),
        b,
        ew("add", "add", ["abn", "b"], [out, out]),
        conv("head", "add", out, 10, 1),
    ]
    net = network(layers, [("x", x)])
    result = adjust_widths(net, Target(V100, "fp16"), 32, mode="latency", delta=0.99)
    _check(result)
    widths = _widths_by_tensor(result.network)
    assert widths["a"] == widths["b"] == widths["add"]


def test_errors():
    with pytest.raises(RooflineError, match="unknown mode"):
        adjust_widths(zoo.load("cifar_vgg16"), Target(V100), mode="speed")
    x = (1, 3, 8, 8)
    only_fixed = network([conv("c", "x", x, 10, 1)], [("x", x)])
    with pytest.raises(RooflineError, match="every channel group is fixed"):
        adjust_widths(only_fixed, Target(V100))
