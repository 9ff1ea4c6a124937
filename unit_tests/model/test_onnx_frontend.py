"""The ONNX frontend agrees with the torch frontend, and reads hand-built graphs exactly.

Models are exported with

    torch.onnx.export(model, (torch.randn(1, 3, H, W),), path, dynamo=True, optimize=False, verbose=False)

``dynamo=True`` is torch's default exporter. Its default ``optimize=True`` runs
the onnxscript optimizer, whose rewrite rules fold every BatchNormalization
into the preceding Conv: FLOPs and kernel count still match the torch
frontend, but parameters and bytes do not, since torch sees the batch norms.
``optimize=False`` keeps them, at the price of exporter scaffolding the
frontend has to see through: zero conv biases built as ``Expand(CastLike(0,
x), Shape(w))``, reduction axes and slice bounds computed by
``Reshape``/``Cast`` of constants, and silu decomposed into ``x * Sigmoid(x)``.
(The TorchScript exporter, ``dynamo=False, do_constant_folding=False``, also
keeps batch norm and gives the same numbers, but it is deprecated.)
"""

from __future__ import annotations

import math
import random
import warnings

import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")

from onnx import TensorProto, helper  # noqa: E402

from roofline.errors import RooflineError  # noqa: E402
from roofline.model.frontends.onnx_graph import from_onnx  # noqa: E402
from roofline.model.fusion import fuse  # noqa: E402

pytestmark = [pytest.mark.analytic, pytest.mark.onnx]

TIMM_MODELS = ("resnet18", "mobilenetv3_large_100", "efficientnet_b0")
CIFAR_MODELS = ("cifar_resnet56", "cifar_vgg16")


def _model(name: str):
    if name in CIFAR_MODELS:
        from roofline.model.builtin.cifar import MODELS

        make, shape = MODELS[name]
        return make(), shape
    timm = pytest.importorskip("timm")
    return timm.create_model(name, pretrained=False), (1, 3, 224, 224)


@pytest.fixture(scope="module", params=TIMM_MODELS + CIFAR_MODELS)
def exported(request, tmp_path_factory):
    """(name, module, input shape, ONNX path), exported once per model."""
    pytest.importorskip("onnxscript")
    model, shape = _model(request.param)
    model.eval()
    path = tmp_path_factory.mktemp("onnx") / f"{request.param}.onnx"
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.randn(*shape),), str(path), dynamo=True, optimize=False, verbose=False
        )
    return request.param, model, shape, path


def _summary(net) -> dict[str, int]:
    kernels = fuse(net)
    return {
        "flops": net.flops(),
        "params": net.params(),
        "fused_bytes": sum(k.bytes(2) for k in kernels),
        "kernels": len(kernels),
    }


def test_agrees_with_torch_frontend(exported):
    from roofline.model.frontends.pytorch import flop_counter_total, trace_module

    name, model, shape, path = exported
    from_file = from_onnx(path, name=name)
    traced = trace_module(model, shape, name=name)
    assert _summary(from_file) == _summary(traced)
    assert from_file.flops() == flop_counter_total(model, shape)
    assert from_file.unsupported_ops == {} == traced.unsupported_ops
    assert from_file.inputs == (("x", shape),)
    assert from_file.resolution == shape[-1] and from_file.source == f"onnx:{path}"
    assert from_file.name == name
    assert len({layer.name for layer in from_file.layers}) == len(from_file.layers)


# -- hand-built graphs ------------------------------------------------------


def _model_proto(nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _weight(name: str, dims: tuple[int, ...], value: float = 0.5):
    return helper.make_tensor(name, TensorProto.FLOAT, dims, [value] * math.prod(dims))


def _conv_model(batch="N", height=16):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 8, height, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1], strides=[1, 1])
    return _model_proto([conv], [x], [y], [_weight("w", (16, 8, 3, 3))])


def test_single_conv_flops_by_hand():
    net = from_onnx(_conv_model())
    macs = 16 * 16 * 16 * 8 * 9  # out H x out W x out channels x in channels x kernel
    assert net.flops() == 2 * macs
    assert net.params() == 16 * 8 * 3 * 3
    (conv,) = net.layers
    assert conv.output_shape == (1, 16, 16, 16) and conv.padding == (1, 1) and not conv.bias
    assert net.inputs == (("x", (1, 8, 16, 16)),)  # the symbolic batch became 1
    assert net.resolution == 16


def test_dynamic_resolution_is_an_error():
    with pytest.raises(RooflineError, match="fixed input resolution"):
        from_onnx(_conv_model(height="H"))


def test_unknown_op_is_reported_by_name():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Erf", ["r"], ["y"])]
    net = from_onnx(_model_proto(nodes, [x], [y]))
    assert net.unsupported_ops == {"Erf": 1}
    assert [layer.op for layer in net.layers] == ["elementwise", "unsupported"]
    assert net.layers[1].target == "Erf" and net.layers[1].inputs == ("r",)


def test_matmul_bias_silu_and_relu6_patterns():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], ["lin"]),  # nn.Linear as dynamo writes it
        helper.make_node("Sigmoid", ["lin"], ["sig"]),
        helper.make_node("Mul", ["lin", "sig"], ["act"]),  # silu
        helper.make_node("Clip", ["act", "lo", "hi"], ["clip"]),  # relu6
        helper.make_node("Mul", ["clip", "scale"], ["scaled"]),  # a scalar: no weight
        helper.make_node("Mul", ["scaled", "gamma"], ["y"]),  # a vector: a weight
    ]
    weights = [
        _weight("w", (32, 64)), _weight("b", (64,)), _weight("lo", (), 0.0), _weight("hi", (), 6.0),
        _weight("scale", ()), _weight("gamma", (64,)),
    ]  # fmt: skip
    net = from_onnx(_model_proto(nodes, [x], [y], weights))
    linear, silu, relu6, scalar, vector = net.layers
    assert linear.op == "linear" and linear.bias and linear.output == "lin"
    assert net.flops() == 2 * 4 * 32 * 64
    assert (silu.fn, silu.inputs) == ("silu", ("lin",))
    assert relu6.fn == "relu6" and scalar.weights == () and vector.weights == ((64,),)
    assert net.params() == 32 * 64 + 64 + 64


def test_views_alias_their_base():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [
        helper.make_node("GlobalAveragePool", ["x"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "w", "b"], ["y"], transB=1),
    ]
    net = from_onnx(_model_proto(nodes, [x], [y], [_weight("w", (10, 8)), _weight("b", (10,))]))
    pool, fc = net.layers
    assert pool.kind == "global" and pool.kernel == (4, 4)
    assert fc.inputs == ("p",) and fc.input_shapes == ((1, 8),) and fc.bias
    assert net.outputs == ("y",)


# -- bad files ----------------------------------------------------------------


def test_missing_file_is_a_one_line_error(tmp_path):
    with pytest.raises(RooflineError) as info:
        from_onnx(tmp_path / "absent.onnx")
    assert "\n" not in str(info.value) and "not found" in str(info.value)


def test_malformed_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "x.onnx"
    path.write_bytes(random.Random(0).randbytes(4096))
    with pytest.raises(RooflineError) as info:
        from_onnx(path)
    assert "\n" not in str(info.value) and "not a valid ONNX model" in str(info.value)


def test_shape_inference_failure_is_a_one_line_error():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    model = _model_proto([helper.make_node("Add", ["x", "b"], ["y"])], [x], [y], [_weight("b", (3,))])
    with pytest.raises(RooflineError) as info:
        from_onnx(model)
    assert "\n" not in str(info.value) and "shape inference failed" in str(info.value)
