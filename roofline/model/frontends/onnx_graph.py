"""ONNX frontend: an ONNX model file -> IR, from static shapes alone.

``onnx.shape_inference.infer_shapes`` (strict mode, with data propagation)
gives every tensor's shape. Where it cannot, because an exporter computes
reduction axes or slice bounds from constants, the node is inferred again on
its own (``onnx.shape_inference.infer_node_outputs``) with those constants,
evaluated by ``onnx.reference``, as data. Weights are read as shapes only, so
external weight files are never loaded. A symbolic leading dim of the graph
input is the batch and becomes 1; any other dynamic dim is an error.

Nodes map to the same IR layers the torch frontend emits for the ATen
ops they came from, so both frontends agree on FLOPs, parameters and fused
bytes for the same model:

* ``Conv`` -> ``Conv``; ``Gemm``, and ``MatMul`` against a constant -> ``Linear``
  (a ``MatMul`` followed by ``Add`` of a bias vector is one ``Linear`` with a
  bias, as ``nn.Linear``); ``MatMul`` of two activations -> ``MatMul``.
* ``BatchNormalization`` / ``LayerNormalization`` / ``GroupNormalization`` ->
  ``Norm`` (batch norm counts 2C parameters, as torch's weight and bias: the
  running statistics are buffers).
* Activations and ``Add``/``Sub``/``Mul``/``Div`` -> ``Elementwise``; the
  exporter's decomposition ``x * Sigmoid(x)`` is put back together as ``silu``.
  A constant operand with more than one element is a weight, a one-element one
  a scalar, as in the torch frontend.
* Pools, ``ReduceMean`` over all spatial axes -> ``Pool``; ``Concat``,
  ``Resize``, ``Softmax`` -> their layers; ``Pad``, ``Transpose``, ``Cast`` ->
  copies. (torch's ``permute`` is a view, so channels-last models such as
  ConvNeXt show more copies here than in the torch frontend.)
* A conv or GEMM bias, or a norm's affine scale, counts only when it holds one
  value per channel: the dynamo exporter feeds convs without bias a zero
  scalar broadcast to the channel count, and torch sees no bias there.

Export with ``torch.onnx.export(..., dynamo=True, optimize=False)``: the
default ``optimize=True`` folds BatchNormalization into the convolution, and
then parameters and bytes can no longer match what torch sees.

Tensors are split as in the torch frontend: activations descend from a graph
input, everything else (initializers, ``Constant`` and what is computed from
them or from ``Shape``) is a constant and never becomes a layer. View ops are
aliases. Any other op reading an activation becomes an ``Unsupported`` layer,
counted by name in ``Network.unsupported_ops``, never silently dropped.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import os
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference
from onnx.reference import ReferenceEvaluator

from roofline.errors import RooflineError
from roofline.model import ir
from roofline.model.frontends import unique_name

#: Ops whose output aliases their first input: no layer, no traffic of their own.
VIEW_OPS = {
    "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Slice",
    "Split", "Expand",
}  # fmt: skip

#: Unary activations and their IR (torch-style) names.
ACTIVATION_OPS = {
    "Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "HardSwish": "hardswish",
    "HardSigmoid": "hardsigmoid", "LeakyRelu": "leaky_relu", "Elu": "elu", "Mish": "mish",
    "Softplus": "softplus", "Gelu": "gelu",
}  # fmt: skip

#: Binary arithmetic (either operand may be a weight or a scalar).
ARITHMETIC_OPS = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div"}

#: Ops that copy their first input (layout changes, casts, padding).
COPY_OPS = {"Transpose": "copy", "Cast": "copy", "CastLike": "copy", "Pad": "pad"}

#: Ops whose outputs are constants whatever they read (``Shape`` of an
#: activation is metadata). Any other op reading no activation is a constant
#: too: the shape arithmetic (Gather, Concat, Reshape ...) exporters emit.
CONSTANT_OPS = {"Constant", "ConstantOfShape", "Range", "Shape", "Size", "EyeLike"}

#: Ops reading only the dtype of their later inputs: op -> inputs carrying data.
#: ``CastLike(0, x)`` is how the dynamo exporter builds a zero conv bias.
DATA_INPUTS = {"CastLike": 1}

#: Constants up to this many elements are evaluated (``onnx.reference``) and kept.
_VALUE_LIMIT = 4096

_RESIZE_MODES = {"nearest": "nearest", "linear": "bilinear", "bilinear": "bilinear", "cubic": "bicubic"}


def _one_line(text: object) -> str:
    return " ".join(str(text).split())[:300]


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _dims(type_proto: onnx.TypeProto) -> tuple[int, ...] | None:
    """The static shape of a tensor type, or None when any dimension is unknown."""
    tensor = type_proto.tensor_type
    if not tensor.HasField("shape"):
        return None
    dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
    return None if any(d < 0 for d in dims) else dims


def _window(attrs: dict[str, Any], kernel: tuple[int, ...], in_sp, out_sp):
    """(stride, begin padding, dilation) of a conv or pool, ONNX defaults filled in.

    ONNX pads are [begin..., end...]; the IR, like torch, keeps the begin pads.
    """
    ones = (1,) * len(kernel)
    stride, dilation = tuple(attrs.get("strides") or ones), tuple(attrs.get("dilations") or ones)
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        geometry = zip(in_sp, out_sp, kernel, stride, dilation, strict=True)
        totals = [max((o - 1) * s + (k - 1) * d + 1 - i, 0) for i, o, k, s, d in geometry]
        padding = tuple(t // 2 if auto == "SAME_UPPER" else (t + 1) // 2 for t in totals)
    else:
        padding = tuple(int(p) for p in (attrs.get("pads") or [0] * len(kernel))[: len(kernel)])
    return stride, padding, dilation


def _module_scopes(node: onnx.NodeProto) -> list[str] | None:
    """Module paths from the root to the module that ran ``node``, as a torch exporter recorded them.

    dynamo keeps them in metadata (``['', 'layer1', 'layer1.0', 'layer1.0.conv1', 'conv2d_1']``,
    the last entry the FX node); the TorchScript exporter in the node name
    (``/layer1/layer1.0/conv1/Conv``, a Sequential child repeating its parent's name).
    """
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                return [s for s in ast.literal_eval(prop.value)[:-1] if s]
            except (ValueError, SyntaxError):
                return None
    if not node.name.startswith("/"):
        return None
    scopes: list[str] = []
    prev = ""
    for part in node.name.strip("/").split("/")[:-1]:
        relative = part[len(prev) + 1 :] if prev and part.startswith(prev + ".") else part
        scopes.append(f"{scopes[-1]}.{relative}" if scopes else relative)
        prev = part
    return scopes


def _load(path_or_model: str | os.PathLike | onnx.ModelProto) -> tuple[onnx.ModelProto, str, str]:
    """(a private copy of the model, its source string, its default name)."""
    if isinstance(path_or_model, onnx.ModelProto):
        model = onnx.ModelProto()
        model.CopyFrom(path_or_model)
        name = model.graph.name or "onnx_model"
        return model, f"onnx:{name}", name
    path = os.fspath(path_or_model)
    if not os.path.isfile(path):
        raise RooflineError(f"ONNX file not found: {path}: check the path")
    try:
        # Only shapes are needed, so external weight data is never read.
        model = onnx.load(path, load_external_data=False)
    except Exception as exc:  # DecodeError, RuntimeError ...: any unreadable protobuf
        raise RooflineError(
            f"{path} is not a valid ONNX model ({type(exc).__name__}): re-export it with torch.onnx.export"
        ) from None
    if not model.graph.node or not model.opset_import:  # random bytes can parse as an empty model
        raise RooflineError(
            f"{path} is not a valid ONNX model (no graph): re-export it with torch.onnx.export"
        )
    return model, f"onnx:{path}", os.path.splitext(os.path.basename(path))[0]


def _fix_batch(model: onnx.ModelProto) -> None:
    """A symbolic leading dim of a graph input is the batch: fix it to 1."""
    initializers = {t.name for t in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        for i, dim in enumerate(dims):
            if dim.HasField("dim_value"):
                continue
            if i == 0:
                dim.Clear()
                dim.dim_value = 1
            else:
                label = dim.dim_param or "?"
                raise RooflineError(
                    f"input {value.name!r} has dynamic dim {label!r} at axis {i}: "
                    "export the model with a fixed input resolution"
                )
    # Shapes the exporter recorded may still carry the symbolic batch: forget
    # those dims so that inference fills them in, keep the static ones.
    for value in (*model.graph.value_info, *model.graph.output):
        for dim in value.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.Clear()


def _infer(model: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except Exception as exc:  # InferenceError, ValidationError
        raise RooflineError(
            f"ONNX shape inference failed: {_one_line(exc)}: check the model with onnx.checker.check_model"
        ) from None


class _Converter:
    def __init__(self, model: onnx.ModelProto):
        graph = model.graph
        self.graph = graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        self.types: dict[str, onnx.TypeProto] = {}
        self.shapes: dict[str, ir.Shape] = {}
        for value in (*graph.input, *graph.value_info, *graph.output):
            self.set_type(value.name, value.type)
        self.alias: dict[str, str] = {}  # activation value -> IR tensor it is a view of
        self.stored: dict[str, ir.Shape] = {}  # constant value -> shape of the data it holds
        self.values: dict[str, np.ndarray] = {}  # small constants: shapes, axes, bounds
        for t in graph.initializer:
            self.set_type(t.name, onnx.helper.make_tensor_type_proto(t.data_type, t.dims))
            self.stored[t.name] = tuple(t.dims)
            if t.data_location != onnx.TensorProto.EXTERNAL and math.prod(t.dims) <= _VALUE_LIMIT:
                self.values[t.name] = numpy_helper.to_array(t)
        self.origin = {out: node for node in graph.node for out in node.output}
        self.readers: Counter[str] = Counter(i for n in graph.node for i in n.input if i)
        self.readers.update(v.name for v in graph.output)
        self.layers: list[ir.Layer] = []
        self.producer: dict[str, int] = {}  # IR tensor -> index of the layer writing it
        self.taken: set[str] = set()
        self.parents = {p for n in graph.node for p in (_module_scopes(n) or [])[:-1]}
        self.inputs: list[tuple[str, ir.Shape]] = []
        self.unsupported: Counter[str] = Counter()
        self.handlers: dict[str, Callable[[onnx.NodeProto], None]] = {
            "Conv": self._conv,
            "Gemm": self._gemm,
            "MatMul": self._matmul,
            "BatchNormalization": self._batch_norm,
            "LayerNormalization": self._layer_norm,
            "GroupNormalization": self._group_norm,
            "MaxPool": self._pool,
            "AveragePool": self._pool,
            "GlobalAveragePool": self._global_pool,
            "GlobalMaxPool": self._global_pool,
            "ReduceMean": self._reduce_mean,
            "Concat": self._concat,
            "Resize": self._resize,
            "Upsample": self._resize,
            "Softmax": self._softmax,
            "Clip": self._clip,
            "Gather": self._gather,
        }

    # -- bookkeeping -------------------------------------------------------
    def is_activation(self, name: str) -> bool:
        return name in self.alias

    def shape(self, name: str) -> ir.Shape:
        if name not in self.shapes:
            node = self.origin.get(name)
            where = f" (output of {node.op_type} node {node.name!r})" if node else ""
            raise RooflineError(
                f"tensor {name!r}{where} has no static shape after ONNX shape inference: "
                "export the model with fixed input shapes and standard ONNX ops"
            )
        return self.shapes[name]

    def set_type(self, name: str, type_proto: onnx.TypeProto) -> None:
        self.types[name] = type_proto
        dims = _dims(type_proto)
        if dims is not None:
            self.shapes[name] = dims

    def set_value(self, name: str, value: np.ndarray) -> None:
        value = np.asarray(value)
        dtype = onnx.helper.np_dtype_to_tensor_dtype(value.dtype)
        self.set_type(name, onnx.helper.make_tensor_type_proto(dtype, value.shape))
        if value.size <= _VALUE_LIMIT:
            self.values[name] = value

    def complete_shapes(self, node: onnx.NodeProto) -> None:
        """Infer a node the whole-graph pass left open, with its constant inputs as data.

        ``infer_shapes`` propagates data through shape arithmetic only, so a
        ``ReduceMean`` whose axes or a ``Slice`` whose bounds come out of
        ``Reshape``/``Cast`` of constants keeps an unknown shape; per node, with
        the values this pass has followed, the same inference resolves it.
        """
        if all(not o or o in self.shapes for o in node.output):
            return
        try:
            schema = onnx.defs.get_schema(node.op_type, self.opset, node.domain)
            types = {i: self.types[i] for i in node.input if i in self.types}
            data = {i: numpy_helper.from_array(self.values[i], i) for i in node.input if i in self.values}
            result = shape_inference.infer_node_outputs(schema, node, types, data)
        except Exception:  # no schema, missing input types: the shape stays unknown
            return
        for name, type_proto in result.items():
            self.set_type(name, type_proto)

    def _layer_name(self, node: onnx.NodeProto, suffix: str) -> str:
        """Named as the torch frontend names it when the exporter recorded the module path.

        A leaf module's first op takes the module's path, any other op
        ``path.suffix``; numbered on collision. Without a path, the node name.
        """
        scopes = _module_scopes(node)
        if scopes is None:
            return unique_name(node.name or suffix, self.taken)
        path = scopes[-1] if scopes else ""
        leaf = path and path not in self.parents and path not in self.taken
        return unique_name(path if leaf else f"{path}.{suffix}".lstrip("."), self.taken)

    def emit(
        self,
        node: onnx.NodeProto,
        cls: type[ir.Layer],
        suffix: str,
        inputs: list[str],
        *,
        input_shapes: tuple[ir.Shape, ...] | None = None,
        output_shape: ir.Shape | None = None,
        **attrs: Any,
    ) -> None:
        output = node.output[0]
        self.producer[output] = len(self.layers)
        self.layers.append(
            cls(
                name=self._layer_name(node, suffix),
                inputs=tuple(self.alias[i] for i in inputs),
                output=output,
                input_shapes=input_shapes or tuple(self.shape(i) for i in inputs),
                output_shape=output_shape or self.shape(output),
                **attrs,
            )
        )
        # Extra outputs (batch-norm statistics, dropout masks) are never read in
        # inference graphs; point them at the main output so dataflow stays closed.
        for out in node.output:
            if out:
                self.alias[out] = output

    def weight_shapes(self, names) -> tuple[ir.Shape, ...]:
        """Constant operands with more than one element; one-element ones are scalars."""
        shapes = (self.stored[n] for n in names if n and not self.is_activation(n) and n in self.stored)
        return tuple(s for s in shapes if math.prod(s) > 1)

    def is_vector(self, name: str, length: int) -> bool:
        """A constant holding ``length`` values (a bias, an affine scale), not a broadcast scalar."""
        stored = self.stored.get(name) if name and not self.is_activation(name) else None
        return bool(stored) and math.prod(stored) == length

    # -- dispatch ----------------------------------------------------------
    def run(self) -> None:
        initializers = {t.name for t in self.graph.initializer}
        for value in self.graph.input:
            if value.name not in initializers:  # old exporters list weights as inputs too
                self.alias[value.name] = value.name
                self.inputs.append((value.name, self.shape(value.name)))
        for node in self.graph.node:
            self.complete_shapes(node)
            data = node.input[: DATA_INPUTS.get(node.op_type, len(node.input))]
            activations = [i for i in data if i and self.is_activation(i)]
            if node.op_type in CONSTANT_OPS or not activations:
                self.constant(node)
            elif node.domain not in ("", "ai.onnx"):
                self.unsupported_node(node, f"{node.domain}.{node.op_type}", activations)
            elif node.op_type in VIEW_OPS and self.is_activation(node.input[0]):
                for out in node.output:
                    if out:
                        self.alias[out] = self.alias[node.input[0]]
            elif node.op_type in self.handlers:
                self.handlers[node.op_type](node)
            elif node.op_type in ACTIVATION_OPS:
                self.elementwise(node, ACTIVATION_OPS[node.op_type], activations)
            elif node.op_type in ARITHMETIC_OPS:
                self.arithmetic(node, activations)
            elif node.op_type in COPY_OPS and self.is_activation(node.input[0]):
                fn = COPY_OPS[node.op_type]
                self.emit(node, ir.Elementwise, fn, [node.input[0]], fn=fn)
            else:
                self.unsupported_node(node, node.op_type, activations)

    def constant(self, node: onnx.NodeProto) -> None:
        """A node computing from constants only: no layer; follow its value when small."""
        inputs = [i for i in node.input if i]
        outputs: list[np.ndarray] = []
        if node.op_type == "Shape" and inputs[0] in self.shapes:
            start, end = _attrs(node).get("start", 0), _attrs(node).get("end")
            outputs = [np.array(self.shapes[inputs[0]][start:end], dtype=np.int64)]
        elif node.op_type == "Size" and inputs[0] in self.shapes:
            outputs = [np.array(math.prod(self.shapes[inputs[0]]), dtype=np.int64)]
        elif node.domain in ("", "ai.onnx") and all(i in self.values for i in inputs):
            try:
                evaluator = ReferenceEvaluator(node, opsets={"": self.opset})
                outputs = evaluator.run(None, {i: self.values[i] for i in inputs})
            except Exception:  # an op the reference runtime lacks: its shape still comes from inference
                outputs = []
        for name, value in zip(node.output, outputs, strict=False):
            if name:
                self.set_value(name, value)
        out, source = (node.output[0] if node.output else ""), (inputs[0] if inputs else "")
        for name in node.output:
            self.stored[name] = self.shapes.get(name, ())
        if node.op_type == "Expand" and source in self.stored:
            self.stored[out] = self.stored[source]  # a broadcast materializes nothing
        elif node.op_type == "ConstantOfShape":
            self.stored[out] = ()  # one fill value

    def unsupported_node(self, node: onnx.NodeProto, target: str, activations: list[str]) -> None:
        self.unsupported[target] += 1
        self.emit(node, ir.Unsupported, target.lower(), activations, target=target)

    # -- handlers ----------------------------------------------------------
    def elementwise(self, node: onnx.NodeProto, fn: str, inputs: list[str], weights=()) -> None:
        self.emit(node, ir.Elementwise, fn, inputs, fn=fn, weights=tuple(weights))

    def arithmetic(self, node: onnx.NodeProto, activations: list[str]) -> None:
        fn = ARITHMETIC_OPS[node.op_type]
        a, b = node.input[0], node.input[1]
        if fn == "mul" and self._fold_silu(node, a, b):
            return
        if fn == "add" and self._fold_linear_bias(node, a, b):
            return
        self.elementwise(node, fn, activations, self.weight_shapes(node.input))

    def _fold_silu(self, node: onnx.NodeProto, a: str, b: str) -> bool:
        """x * Sigmoid(x), the exporter's silu, when the sigmoid has no other reader."""
        for x, s in ((a, b), (b, a)):
            index = self.producer.get(s)
            layer = self.layers[index] if index is not None else None
            if (
                isinstance(layer, ir.Elementwise)
                and layer.fn == "sigmoid"
                and self.readers[s] == 1
                and self.is_activation(x)
                and layer.inputs == (self.alias[x],)
            ):
                self._replace(index, s, node.output[0], fn="silu")
                return True
        return False

    def _fold_linear_bias(self, node: onnx.NodeProto, a: str, b: str) -> bool:
        """MatMul + Add(bias vector): ``nn.Linear`` as the dynamo exporter writes it."""
        for y, bias in ((a, b), (b, a)):
            index = self.producer.get(y)
            layer = self.layers[index] if index is not None else None
            if (
                isinstance(layer, ir.Linear)
                and not layer.bias
                and self.readers[y] == 1
                and self.is_vector(bias, layer.out_features)
                and len(self.stored[bias]) == 1
                and self.shape(node.output[0]) == layer.output_shape
            ):
                self._replace(index, y, node.output[0], bias=True)
                return True
        return False

    def _replace(self, index: int, old_output: str, new_output: str, **changes: Any) -> None:
        self.layers[index] = dataclasses.replace(
            self.layers[index], output=new_output, output_shape=self.shape(new_output), **changes
        )
        del self.producer[old_output]
        self.producer[new_output] = index
        self.alias[new_output] = new_output

    def _clip(self, node: onnx.NodeProto) -> None:
        attrs = _attrs(node)
        bounds = [attrs.get("min"), attrs.get("max")]  # opset < 11
        for i, name in enumerate(node.input[1:3]):
            if name in self.values:
                bounds[i] = float(np.asarray(self.values[name]).reshape(-1)[0])
        fn = "relu6" if bounds == [0.0, 6.0] else "clamp"
        self.elementwise(node, fn, [node.input[0]])

    def _conv(self, node: onnx.NodeProto) -> None:
        x, w = node.input[0], node.input[1]
        if self.is_activation(w):
            self.unsupported_node(node, "Conv(activation weight)", [x, w])
            return
        attrs = _attrs(node)
        groups, in_channels = int(attrs.get("group", 1)), self.shape(x)[1]
        if self.stored[w][1] * groups != in_channels:  # strict shape inference lets this through
            raise RooflineError(
                f"Conv node {node.name!r}: weight {w!r} of shape {self.stored[w]} with {groups} group(s) "
                f"does not fit {in_channels} input channels: fix or re-export the model"
            )
        kernel = tuple(self.stored[w][2:])
        stride, padding, dilation = _window(attrs, kernel, self.shape(x)[2:], self.shape(node.output[0])[2:])
        bias = len(node.input) > 2 and self.is_vector(node.input[2], self.stored[w][0])
        self.emit(
            node, ir.Conv, "conv", [x], kernel=kernel, stride=stride, padding=padding,
            dilation=dilation, groups=groups, bias=bias,
        )  # fmt: skip

    def _product(self, node: onnx.NodeProto, a: str, b: str, trans_a: bool, trans_b: bool) -> None:
        """A @ B: a Linear when one side is constant, else a MatMul of two activations."""
        sa, sb, out = self.shape(a), self.shape(b), self.shape(node.output[0])
        if trans_a:
            sa = (*sa[:-2], sa[-1], sa[-2])
        if self.is_activation(a) and self.is_activation(b):
            self.emit(node, ir.MatMul, "matmul", [a, b], input_shapes=(sa, sb))
        elif self.is_activation(a):
            self.emit(node, ir.Linear, "linear", [a], input_shapes=(sa,), bias=False)
        else:
            # W @ x is (x^T W^T)^T: give the Linear x^T so rows x in_features holds.
            rows = sb if trans_b else (*sb[:-2], sb[-1], sb[-2])
            out = (*out[:-2], out[-1], out[-2])
            self.emit(node, ir.Linear, "linear", [b], input_shapes=(rows,), output_shape=out, bias=False)

    def _gemm(self, node: onnx.NodeProto) -> None:
        attrs = _attrs(node)
        a, b = node.input[0], node.input[1]
        self._product(node, a, b, bool(attrs.get("transA", 0)), bool(attrs.get("transB", 0)))
        c = node.input[2] if len(node.input) > 2 else ""
        layer = self.layers[-1]
        if isinstance(layer, ir.Linear) and self.is_vector(c, layer.out_features):
            self.layers[-1] = dataclasses.replace(layer, bias=True)

    def _matmul(self, node: onnx.NodeProto) -> None:
        self._product(node, node.input[0], node.input[1], False, False)

    def _batch_norm(self, node: onnx.NodeProto) -> None:
        x = node.input[0]
        self.emit(node, ir.Norm, "bn", [x], fn="batch", channels=self.shape(x)[1], affine=True)

    def _layer_norm(self, node: onnx.NodeProto) -> None:
        x, shape = node.input[0], self.shape(node.input[0])
        channels = math.prod(shape[_attrs(node).get("axis", -1) % len(shape) :])
        affine = self.is_vector(node.input[1], channels)
        self.emit(node, ir.Norm, "ln", [x], fn="layer", channels=channels, affine=affine)

    def _group_norm(self, node: onnx.NodeProto) -> None:
        x = node.input[0]
        channels = self.shape(x)[1]
        # opset 18 stores one scale per group, opset 21 one per channel: either is affine.
        affine = len(node.input) > 1 and not self.is_activation(node.input[1])
        self.emit(node, ir.Norm, "gn", [x], fn="group", channels=channels, affine=affine)

    def _pool(self, node: onnx.NodeProto) -> None:
        attrs, x = _attrs(node), node.input[0]
        kernel = tuple(attrs["kernel_shape"])
        stride, padding, _ = _window(attrs, kernel, self.shape(x)[2:], self.shape(node.output[0])[2:])
        mode = "max" if node.op_type == "MaxPool" else "avg"
        self.emit(
            node, ir.Pool, f"{mode}pool", [x], mode=mode, kernel=kernel, stride=stride, padding=padding,
        )  # fmt: skip

    def _global_pool(self, node: onnx.NodeProto) -> None:
        mode = "max" if node.op_type == "GlobalMaxPool" else "avg"
        self._spatial_pool(node, mode, "pool")

    def _spatial_pool(self, node: onnx.NodeProto, mode: str, suffix: str) -> None:
        x = node.input[0]
        kernel = tuple(self.shape(x)[2:])
        self.emit(node, ir.Pool, suffix, [x], mode=mode, kernel=kernel, stride=kernel, kind="global")

    def _reduce_mean(self, node: onnx.NodeProto) -> None:
        x, attrs = node.input[0], _attrs(node)
        rank = len(self.shape(x))
        axes = attrs.get("axes")  # opset < 18 keeps the axes as an attribute
        if axes is None and len(node.input) > 1 and node.input[1] in self.values:
            axes = self.values[node.input[1]].reshape(-1).tolist()
        if rank >= 3 and axes is not None and {int(a) % rank for a in axes} == set(range(2, rank)):
            self._spatial_pool(node, "avg", "mean")
        else:
            self.unsupported_node(node, "ReduceMean", [x])

    def _concat(self, node: onnx.NodeProto) -> None:
        if not all(self.is_activation(i) for i in node.input):
            self.unsupported_node(node, "Concat(constant)", [i for i in node.input if self.is_activation(i)])
            return
        axis = _attrs(node).get("axis", 0) % len(self.shape(node.output[0]))
        self.emit(node, ir.Concat, "cat", list(node.input), axis=axis)

    def _resize(self, node: onnx.NodeProto) -> None:
        mode = _attrs(node).get("mode", b"nearest")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        self.emit(node, ir.Resize, "resize", [node.input[0]], mode=_RESIZE_MODES.get(mode, mode))

    def _softmax(self, node: onnx.NodeProto) -> None:
        rank = len(self.shape(node.output[0]))
        self.emit(node, ir.Softmax, "softmax", [node.input[0]], axis=_attrs(node).get("axis", -1) % rank)

    def _gather(self, node: onnx.NodeProto) -> None:
        data, index = node.input[0], node.input[1]
        if self.is_activation(data) and index in self.values and self.values[index].size == 1:
            self.alias[node.output[0]] = self.alias[data]  # x[:, i] is a view (aten.select)
        else:
            self.unsupported_node(node, "Gather", [i for i in node.input if self.is_activation(i)])


def from_onnx(path_or_model: str | os.PathLike | onnx.ModelProto, name: str | None = None) -> ir.Network:
    """Read an ONNX model (a path or a ``ModelProto``) into the IR at batch 1."""
    model, source, default_name = _load(path_or_model)
    _fix_batch(model)
    model = _infer(model)
    converter = _Converter(model)
    converter.run()
    outputs = [converter.alias[v.name] for v in model.graph.output if converter.is_activation(v.name)]
    first = converter.inputs[0][1] if converter.inputs else ()
    resolution = first[2] if len(first) == 4 and first[2] == first[3] else None
    return ir.Network(
        name=name or default_name,
        source=source,
        resolution=resolution,
        inputs=tuple(converter.inputs),
        outputs=tuple(dict.fromkeys(outputs)),
        layers=tuple(converter.layers),
        unsupported_ops=dict(converter.unsupported),
    )
