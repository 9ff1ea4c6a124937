"""Exact FLOPs, MACs, params and bytes of hand-worked layers."""

import pytest

from roofline.model import ir
from roofline.model.ir_file import read_layer
from unit_tests.helpers import conv

pytestmark = pytest.mark.analytic


def test_conv3x3_counts():
    layer = conv("c", "x", (2, 64, 56, 56), 128, 3, stride=2)
    assert layer.output_shape == (2, 128, 28, 28)
    macs = 2 * 128 * 28 * 28 * 64 * 3 * 3
    assert layer.macs() == macs
    assert layer.flops() == 2 * macs
    assert layer.params() == 128 * 64 * 9
    elems = 2 * 64 * 56 * 56 + 128 * 64 * 9 + 2 * 128 * 28 * 28
    assert layer.bytes(2) == 2 * elems
    assert layer.bytes(4) == 4 * elems


def test_grouped_and_depthwise_conv():
    grouped = conv("g", "x", (1, 64, 14, 14), 128, 3, groups=32, bias=True)
    assert grouped.macs() == 128 * 14 * 14 * (64 // 32) * 9
    assert grouped.params() == 128 * 2 * 9 + 128
    assert not grouped.depthwise
    dw = conv("d", "x", (1, 96, 28, 28), 96, 5, groups=96)
    assert dw.depthwise
    assert dw.macs() == 96 * 28 * 28 * 25
    assert dw.describe() == "dwconv5x5"


def test_dilation_changes_output_not_per_output_cost():
    dilated = conv("d", "x", (1, 32, 64, 64), 32, 3, pad=2, dilation=2)
    assert dilated.output_shape == (1, 32, 64, 64)
    assert dilated.macs() == 32 * 64 * 64 * 32 * 9


def test_linear_and_matmul():
    fc = ir.Linear(name="fc", inputs=("x",), output="fc", input_shapes=((8, 2048),),
                   output_shape=(8, 1000), bias=True)  # fmt: skip
    assert fc.macs() == 8 * 2048 * 1000
    assert fc.params() == 2048 * 1000 + 1000
    assert fc.bytes(2) == 2 * (8 * 2048 + 2048 * 1000 + 1000 + 8 * 1000)
    mm = ir.MatMul(name="mm", inputs=("a", "b"), output="mm", input_shapes=((4, 16, 32), (4, 32, 8)),
                   output_shape=(4, 16, 8))  # fmt: skip
    assert mm.flops() == 2 * 4 * 16 * 8 * 32
    assert mm.params() == 0


def test_pool_and_elementwise_have_no_flops():
    pool = ir.Pool(name="p", inputs=("x",), output="p", input_shapes=((1, 64, 112, 112),),
                   output_shape=(1, 64, 56, 56), mode="max", kernel=(3, 3), stride=(2, 2))  # fmt: skip
    assert pool.flops() == 0
    assert pool.elementwise_ops() == 64 * 56 * 56 * 9
    relu = ir.Elementwise(name="r", inputs=("x",), output="r", input_shapes=((1, 8, 4, 4),),
                          output_shape=(1, 8, 4, 4), fn="relu")  # fmt: skip
    assert relu.flops() == 0
    assert relu.elementwise_ops() == 8 * 16
    assert relu.bytes(2) == 2 * 2 * 8 * 16


def test_batchnorm_params_are_scale_and_shift():
    norm = ir.Norm(name="bn", inputs=("x",), output="bn", input_shapes=((1, 32, 8, 8),),
                   output_shape=(1, 32, 8, 8), fn="batch", channels=32)  # fmt: skip
    assert norm.params() == 64


def test_with_batch_scales_activations_only():
    layer = conv("c", "x", (1, 16, 8, 8), 32, 3)
    big = layer.with_batch(4)
    assert big.input_shapes == ((4, 16, 8, 8),)
    assert big.macs() == 4 * layer.macs()
    assert big.params() == layer.params()


def test_layer_round_trips_through_dict():
    layer = conv("c", "x", (1, 16, 8, 8), 32, 3, groups=4, bias=True)
    assert read_layer(layer.to_dict()) == layer


def test_network_saved_at_a_larger_batch_scales_back_to_one():
    from roofline.model import zoo

    net = zoo.load("resnet18")
    assert net.with_batch(8).with_batch(1) == net
