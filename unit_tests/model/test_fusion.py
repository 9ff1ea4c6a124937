"""The fusion pass on hand-built graphs, with bytes worked out by hand."""

import pytest

from roofline import fuse
from roofline.model import ir
from unit_tests.helpers import bn, conv, ew, network

pytestmark = pytest.mark.analytic

X = (1, 64, 56, 56)


def basic_block():
    """ResNet basic block: conv-bn-relu, conv-bn, + identity, relu."""
    c1 = conv("c1", "x", X, 64, 3)
    b1 = bn("b1", "c1", X)
    r1 = ew("r1", "relu", ["b1"], [X])
    c2 = conv("c2", "r1", X, 64, 3)
    b2 = bn("b2", "c2", X)
    add = ew("add", "add", ["b2", "x"], [X, X])
    r2 = ew("r2", "relu", ["add"], [X])
    return network([c1, b1, r1, c2, b2, add, r2], [("x", X)])


def test_basic_block_fuses_into_two_kernels():
    kernels = fuse(basic_block())
    assert [k.describe() for k in kernels] == ["conv3x3+bn+relu", "conv3x3+bn+add+relu"]
    assert [layer.name for layer in kernels[1].fused] == ["b2", "add", "r2"]
    act = 64 * 56 * 56
    weights = 64 * 64 * 9 + 64  # the folded BN shift becomes a bias
    assert kernels[0].bytes(2) == 2 * (act + weights + act)
    # The residual operand is an extra input of the second kernel.
    assert kernels[1].bytes(2) == 2 * (act + act + weights + act)


def test_no_fusion_when_intermediate_has_another_reader():
    c1 = conv("c1", "x", X, 64, 1)
    r1 = ew("r1", "relu", ["c1"], [X])
    other = ew("other", "sigmoid", ["c1"], [X])
    kernels = fuse(network([c1, r1, other], [("x", X)], outputs=["r1", "other"]))
    assert len(kernels) == 3


def test_se_gate_and_depthwise_stay_standalone():
    s = (1, 64, 1, 1)
    dw = conv("dw", "x", X, 64, 3, groups=64)
    b = bn("b", "dw", X)
    act = ew("act", "silu", ["b"], [X])
    pool = ir.Pool(name="sq", inputs=("act",), output="sq", input_shapes=(X,), output_shape=s,
                   mode="avg", kernel=(56, 56), kind="global")  # fmt: skip
    red = conv("red", "sq", s, 16, 1, bias=True)
    r = ew("r", "relu", ["red"], [(1, 16, 1, 1)])
    exp = conv("exp", "r", (1, 16, 1, 1), 64, 1, bias=True)
    gate = ew("gate", "sigmoid", ["exp"], [s])
    mul = ew("mul", "mul", ["act", "gate"], [X, s], out_shape=X)
    kernels = fuse(network([dw, b, act, pool, red, r, exp, gate, mul], [("x", X)]))
    assert [k.describe() for k in kernels] == [
        "dwconv3x3+bn+silu", "global_avgpool", "conv1x1+relu", "conv1x1+sigmoid", "mul",
    ]  # fmt: skip
    # The gating multiply reads the activation and the gate, writes one tensor.
    assert kernels[-1].bytes(1) == 64 * 56 * 56 + 64 + 64 * 56 * 56


def test_concat_is_eliminated():
    a = conv("a", "x", X, 32, 1)
    b = conv("b", "x", X, 32, 1)
    cat = ir.Concat(name="cat", inputs=("a", "b"), output="cat", input_shapes=((1, 32, 56, 56),) * 2,
                    output_shape=X)  # fmt: skip
    c = conv("c", "cat", X, 64, 1)
    kernels = fuse(network([a, b, cat, c], [("x", X)]))
    assert [k.name for k in kernels] == ["a", "b", "c"]
    assert kernels[2].inputs == (("cat", X),)


def test_residual_add_fuses_into_the_branch_run_last():
    main = conv("main", "x", X, 64, 1)
    short = conv("short", "x", X, 64, 1)
    add = ew("add", "add", ["main", "short"], [X, X])
    kernels = fuse(network([main, short, add], [("x", X)]))
    assert [k.describe() for k in kernels] == ["conv1x1", "conv1x1+add"]
    assert kernels[1].name == "short"


def test_fusion_never_increases_bytes_on_the_zoo():
    from roofline.model import zoo

    for name in ("resnet50", "efficientnet_b0", "dpn68", "hrnet_w18_small", "mobilenetv3_large_100"):
        net = zoo.load(name)
        fused = sum(k.bytes(2) for k in fuse(net))
        unfused = sum(layer.bytes(2) for layer in net.layers)
        assert fused < unfused, name
