"""Each engine's fusion policy on hand-built graphs, kernels and bytes worked out by hand."""

import pytest

from roofline.analysis.engines import get_engine
from roofline.model import ir
from roofline.model.fusion import fuse
from unit_tests.helpers import bn, conv, ew, network

pytestmark = pytest.mark.analytic

X = (1, 64, 56, 56)
ACT = 64 * 56 * 56
W = 64 * 64 * 9


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


def kernels_of(engine, net):
    return fuse(net, get_engine(engine).fusion)


def test_tensorrt_fuses_the_block_into_two_kernels():
    assert [k.describe() for k in kernels_of("tensorrt", basic_block())] == [
        "conv3x3+bn+relu",
        "conv3x3+bn+add+relu",
    ]


def test_eager_torch_launches_one_kernel_per_op():
    kernels = kernels_of("torch", basic_block())
    assert [k.describe() for k in kernels] == ["conv3x3", "bn", "relu", "conv3x3", "bn", "add", "relu"]
    # BN is not folded: it reads and writes the whole tensor and its 4 C-vectors (mean, var, scale, shift).
    bn_kernel = kernels[1]
    assert bn_kernel.bytes(2) == 2 * (ACT + ACT + bn_kernel.weight_elems)
    # Every intermediate is written and read again: seven kernels move far more than TensorRT's two.
    eager = sum(k.bytes(2) for k in kernels)
    trt = sum(k.bytes(2) for k in kernels_of("tensorrt", basic_block()))
    assert eager - trt == 2 * (
        ACT * 2 * 5 + sum(k.weight_elems for k in kernels if k.anchor.op == "norm") - 2 * 64
    )


def test_compile_keeps_bn_as_pointwise_work_fused_with_what_follows():
    kernels = kernels_of("torch-compile", basic_block())
    assert [k.describe() for k in kernels] == ["conv3x3", "bn+relu", "conv3x3", "bn+add+relu"]
    # The second pointwise kernel reads the conv output and the identity, and writes one tensor.
    assert kernels[3].bytes(2) == 2 * (3 * ACT + kernels[3].weight_elems)


def test_onnxruntime_fuses_relu_but_not_other_activations():
    c = conv("c", "x", X, 64, 3)
    b = bn("b", "c", X)
    s = ew("s", "silu", ["b"], [X])
    c2 = conv("c2", "s", X, 64, 3)
    r = ew("r", "relu", ["c2"], [X])
    kernels = kernels_of("onnxruntime", network([c, b, s, c2, r], [("x", X)]))
    assert [k.describe() for k in kernels] == ["conv3x3+bn", "silu", "conv3x3+relu"]


def test_concat_is_a_copy_kernel_in_eager_and_eliminated_by_tensorrt():
    a = conv("a", "x", X, 64, 1)
    b = conv("b", "x", X, 64, 1)
    cat = ir.Concat(
        name="cat", inputs=("a", "b"), output="cat", input_shapes=(X, X), output_shape=(1, 128, 56, 56)
    )
    c = conv("c", "cat", (1, 128, 56, 56), 64, 1)
    net = network([a, b, cat, c], [("x", X)])
    assert [k.describe() for k in kernels_of("tensorrt", net)] == ["conv1x1", "conv1x1", "conv1x1"]
    eager = kernels_of("torch", net)
    assert [k.describe() for k in eager] == ["conv1x1", "conv1x1", "concat", "conv1x1"]
    assert eager[2].bytes(2) == 2 * (2 * ACT + 2 * ACT)  # reads both halves, writes the joined tensor


def test_eager_adds_a_conv_bias_in_its_own_kernel():
    c = conv("c", "x", X, 64, 3, bias=True)
    r = ew("r", "relu", ["c"], [X])
    net = network([c, r], [("x", X)])
    assert [k.describe() for k in kernels_of("tensorrt", net)] == ["conv3x3+relu"]
    eager = kernels_of("torch", net)
    assert [k.describe() for k in eager] == ["conv3x3", "add", "relu"]
    assert eager[0].weight_elems == W and eager[1].weight_elems == 64
    # torch.compile runs the bias add as pointwise work fused with the ReLU.
    assert [k.describe() for k in kernels_of("torch-compile", net)] == ["conv3x3", "add+relu"]


def attention_block(seq=197, heads=6, dim=64):
    q, kt, v = (1, heads, seq, dim), (1, heads, dim, seq), (1, heads, seq, dim)
    s = (heads, seq, seq)
    qk_shapes = ((heads, seq, dim), (heads, dim, seq))
    scores = ir.MatMul(name="qk", inputs=("q", "kt"), output="qk", input_shapes=qk_shapes, output_shape=s)
    soft = ir.Softmax(name="sm", inputs=("qk",), output="sm", input_shapes=(s,), output_shape=s)
    out = ir.MatMul(name="av", inputs=("sm", "v"), output="av", input_shapes=(s, (heads, seq, dim)),
                    output_shape=(heads, seq, dim))  # fmt: skip
    return network([scores, soft, out], [("q", q), ("kt", kt), ("v", v)]), seq, heads, dim


@pytest.mark.parametrize("engine", ["tensorrt", "torch", "torch-compile"])
def test_attention_is_one_kernel_that_never_writes_the_scores(engine):
    net, seq, heads, dim = attention_block()
    (kernel,) = kernels_of(engine, net)
    assert kernel.describe() == "matmul+softmax+matmul"
    assert kernel.bytes(2) == 2 * (4 * heads * seq * dim)  # Q, K, V in, the output out
    assert kernel.flops() == 2 * (2 * heads * seq * seq * dim)


def test_onnxruntime_materializes_the_attention_scores():
    net, seq, heads, _ = attention_block()
    kernels = kernels_of("onnxruntime", net)
    assert [k.describe() for k in kernels] == ["matmul", "softmax", "matmul"]
    assert kernels[1].bytes(2) == 2 * (2 * heads * seq * seq)


@pytest.mark.parametrize("engine", ["tensorrt", "torch", "torch-compile", "onnxruntime"])
def test_no_policy_moves_more_bytes_than_no_fusion(engine):
    net = basic_block()
    assert sum(k.bytes(2) for k in kernels_of(engine, net)) <= sum(
        k.bytes(2) for k in kernels_of("torch", net)
    )
