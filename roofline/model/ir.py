"""Intermediate representation: one frozen dataclass per CNN layer kind.

Every layer records the names and shapes of the activation tensors it reads and
writes (the dataflow) and the shapes of the weights it reads. Its arithmetic is
a pure function of those shapes, written on the class, so an op's FLOPs are one
hop from its name.

Conventions (DESIGN.md, "Core definitions"):

* ``macs`` counts multiply-accumulates of convolutions and matrix products.
* ``flops`` = 2 x ``macs``: the convention of ``torch.utils.flop_counter``
  (fvcore and ptflops report MACs). Bias adds are not counted, as there.
* ``elementwise_ops`` is the per-element work of every other layer (pooling
  window reads, activations, adds); it is reported separately, never folded
  into ``flops``.
* ``bytes(dtype_bytes)`` is the traffic of the layer run on its own: every input
  activation, every weight and the output, each touched once at ``dtype_bytes``
  per element. The fusion pass (``roofline.model.fusion``) computes the traffic of
  what an engine actually runs.

Shapes include the batch as their leading dimension. Networks are stored at
batch 1 and scaled with ``with_batch``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from roofline.schema import Fields, check_integer, type_name

Shape = tuple[int, ...]


def numel(shape: Shape) -> int:
    return math.prod(shape)


def scale_batch(shape: Shape, new: int, old: int) -> Shape:
    # Scaling (not replacing) the leading dim keeps shapes right when a model
    # folds batch with another axis, e.g. (batch*heads, L, D).
    if not shape:
        return shape
    if shape[0] * new % old:
        raise ValueError(f"leading dim {shape[0]} does not scale from batch {old} to {new}")
    return (shape[0] * new // old, *shape[1:])


@dataclass(frozen=True, kw_only=True)
class Layer:
    """Base of all layer kinds: dataflow, shapes and the generic byte count."""

    op: ClassVar[str] = "layer"

    name: str
    inputs: tuple[str, ...]
    output: str
    input_shapes: tuple[Shape, ...]
    output_shape: Shape

    def weight_shapes(self) -> tuple[Shape, ...]:
        return ()

    def macs(self) -> int:
        return 0

    def flops(self) -> int:
        """2 x MACs (``torch.utils.flop_counter`` convention)."""
        return 2 * self.macs()

    def elementwise_ops(self) -> int:
        """One operation per output element unless a subclass says otherwise."""
        return numel(self.output_shape)

    def params(self) -> int:
        return sum(numel(s) for s in self.weight_shapes())

    def activation_elems(self) -> int:
        return sum(numel(s) for s in self.input_shapes) + numel(self.output_shape)

    def bytes(self, dtype_bytes: int) -> int:
        """Unfused traffic: inputs + weights + output, each moved once."""
        return (self.activation_elems() + self.params()) * dtype_bytes

    def with_batch(self, new: int, old: int = 1) -> Layer:
        """This layer with its leading dims rescaled from batch ``old`` to ``new``."""
        return dataclasses.replace(
            self,
            input_shapes=tuple(scale_batch(s, new, old) for s in self.input_shapes),
            output_shape=scale_batch(self.output_shape, new, old),
        )

    def describe(self) -> str:
        return self.op

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.default is not dataclasses.MISSING and value == f.default:
                continue
            out[f.name] = _jsonable(value)
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True, kw_only=True)
class Conv(Layer):
    """N-d convolution (1-d, 2-d, 3-d), with groups, dilation, stride, padding.

    Weight shape (K, C/groups, *kernel). MACs = N x K x prod(out spatial) x
    (C/groups) x prod(kernel): every output element is a dot product over its
    group's C/groups input channels and the kernel window. This is
    ``conv_flop_count`` in ``torch/utils/flop_counter.py`` (FLOPs = 2 x MACs);
    dilation, stride and padding enter only through the output shape.
    """

    op: ClassVar[str] = "conv"

    kernel: tuple[int, ...]
    stride: tuple[int, ...] = ()
    padding: tuple[int, ...] = ()
    dilation: tuple[int, ...] = ()
    groups: int = 1
    bias: bool = False

    @property
    def in_channels(self) -> int:
        return self.input_shapes[0][1]

    @property
    def out_channels(self) -> int:
        return self.output_shape[1]

    @property
    def depthwise(self) -> bool:
        return self.groups > 1 and self.groups == self.in_channels

    def weight_shapes(self) -> tuple[Shape, ...]:
        w = (self.out_channels, self.in_channels // self.groups, *self.kernel)
        return (w, (self.out_channels,)) if self.bias else (w,)

    def macs(self) -> int:
        return numel(self.output_shape) * (self.in_channels // self.groups) * numel(self.kernel)

    def elementwise_ops(self) -> int:
        return 0

    def describe(self) -> str:
        k = "x".join(map(str, self.kernel))
        if self.depthwise:
            return f"dwconv{k}"
        return f"conv{k}" + (f"/g{self.groups}" if self.groups > 1 else "")


@dataclass(frozen=True, kw_only=True)
class Linear(Layer):
    """Fully connected layer, a GEMM against a weight (out_features, in_features).

    MACs = (rows of the input) x in_features x out_features, i.e. M x K x N of
    the GEMM; ``addmm``/``mm`` in ``torch/utils/flop_counter.py``.
    """

    op: ClassVar[str] = "linear"

    bias: bool = False

    @property
    def in_features(self) -> int:
        return self.input_shapes[0][-1]

    @property
    def out_features(self) -> int:
        return self.output_shape[-1]

    def weight_shapes(self) -> tuple[Shape, ...]:
        w = (self.out_features, self.in_features)
        return (w, (self.out_features,)) if self.bias else (w,)

    def macs(self) -> int:
        return numel(self.output_shape) * self.in_features

    def elementwise_ops(self) -> int:
        return 0


@dataclass(frozen=True, kw_only=True)
class MatMul(Layer):
    """Batched matrix product of two activations, (..., M, K) @ (..., K, N).

    MACs = prod(output) x K; ``bmm_flop`` in ``torch/utils/flop_counter.py``.
    """

    op: ClassVar[str] = "matmul"

    def macs(self) -> int:
        return numel(self.output_shape) * self.input_shapes[0][-1]

    def elementwise_ops(self) -> int:
        return 0


@dataclass(frozen=True, kw_only=True)
class Pool(Layer):
    """Max or average pooling: windowed, global, or adaptive.

    ``kernel`` is the window; a global or adaptive pool stores the window it
    implies (input spatial / output spatial, the exact case for the
    evenly-divisible shapes CNNs use). Work = one read-and-combine per window
    element per output element; no FLOPs under the matmul convention.
    """

    op: ClassVar[str] = "pool"

    mode: str  # "max" or "avg"
    kernel: tuple[int, ...]
    stride: tuple[int, ...] = ()
    padding: tuple[int, ...] = ()
    kind: str = "window"  # "window", "global" or "adaptive"

    def elementwise_ops(self) -> int:
        return numel(self.output_shape) * numel(self.kernel)

    def describe(self) -> str:
        if self.kind == "global":
            return f"global_{self.mode}pool"
        return f"{self.mode}pool" + "x".join(map(str, self.kernel))


@dataclass(frozen=True, kw_only=True)
class Elementwise(Layer):
    """Activation or arithmetic applied per element, with broadcasting.

    ``fn`` names it (relu, silu, sigmoid, hardswish, add, mul, copy, pad ...).
    Constant operands (a layer-scale vector, a learned bias) are weights.
    """

    op: ClassVar[str] = "elementwise"

    fn: str
    weights: tuple[Shape, ...] = ()

    def weight_shapes(self) -> tuple[Shape, ...]:
        return self.weights

    def describe(self) -> str:
        return self.fn


@dataclass(frozen=True, kw_only=True)
class Norm(Layer):
    """Batch, layer or group normalization at inference.

    Inference batch norm is a per-channel affine y = a x + b (running
    statistics folded), so it carries two vectors of ``channels``; layer and
    group norm carry their affine vectors too when ``affine``. Work ~ a few
    operations per element, counted as one per output element.
    """

    op: ClassVar[str] = "norm"

    fn: str  # "batch", "layer" or "group"
    channels: int
    affine: bool = True

    def weight_shapes(self) -> tuple[Shape, ...]:
        return ((self.channels,), (self.channels,)) if self.affine else ()

    def describe(self) -> str:
        return {"batch": "bn", "layer": "ln", "group": "gn"}.get(self.fn, self.fn)


@dataclass(frozen=True, kw_only=True)
class Concat(Layer):
    """Concatenation along ``axis``; pure data movement."""

    op: ClassVar[str] = "concat"

    axis: int = 1

    def elementwise_ops(self) -> int:
        return 0


@dataclass(frozen=True, kw_only=True)
class Resize(Layer):
    """Upsample/resize (nearest, bilinear ...) to ``output_shape``."""

    op: ClassVar[str] = "resize"

    mode: str = "nearest"

    def describe(self) -> str:
        return f"resize_{self.mode}"


@dataclass(frozen=True, kw_only=True)
class Softmax(Layer):
    """Softmax along ``axis``: exp, sum and divide, counted as one op per element."""

    op: ClassVar[str] = "softmax"

    axis: int = -1


@dataclass(frozen=True, kw_only=True)
class Unsupported(Layer):
    """An op no formula covers. Its traffic is counted, its FLOPs are not,
    and reports name it (fvcore's ``unsupported_ops``) instead of hiding it."""

    op: ClassVar[str] = "unsupported"

    target: str

    def describe(self) -> str:
        return f"unsupported:{self.target}"


LAYER_KINDS: dict[str, type[Layer]] = {
    cls.op: cls
    for cls in (Conv, Linear, MatMul, Pool, Elementwise, Norm, Concat, Resize, Softmax, Unsupported)
}


def layer_from_dict(data: Any, source: str = "layer") -> Layer:
    """One layer from its ``to_dict()``, its fields checked (``RooflineError`` naming the field)."""
    return _read_layers([data], source, None, 1)[0]


@dataclass(frozen=True, kw_only=True)
class Network:
    """Layers in execution order; tensors are named, so dataflow is explicit.

    ``inputs`` are the graph inputs (name, shape); ``outputs`` the tensors the
    network returns. ``batch`` is the leading dim of every activation shape.
    ``images_per_sample`` is f for a folded network (``roofline.analysis.fold``): one
    sample stacks f images on the channel axis.
    """

    name: str
    inputs: tuple[tuple[str, Shape], ...]
    outputs: tuple[str, ...]
    layers: tuple[Layer, ...]
    batch: int = 1
    resolution: int | None = None
    source: str = ""
    unsupported_ops: dict[str, int] = field(default_factory=dict, hash=False, compare=True)
    images_per_sample: int = 1

    def with_batch(self, batch: int) -> Network:
        if batch == self.batch:
            return self
        return dataclasses.replace(
            self,
            batch=batch,
            inputs=tuple((n, scale_batch(s, batch, self.batch)) for n, s in self.inputs),
            layers=tuple(layer.with_batch(batch, self.batch) for layer in self.layers),
        )

    def consumers(self) -> dict[str, list[Layer]]:
        """Tensor name -> the layers that read it (graph outputs count as a reader)."""
        readers: dict[str, list[Layer]] = {}
        for layer in self.layers:
            for name in dict.fromkeys(layer.inputs):
                readers.setdefault(name, []).append(layer)
        return readers

    def macs(self) -> int:
        return sum(layer.macs() for layer in self.layers)

    def flops(self) -> int:
        return sum(layer.flops() for layer in self.layers)

    def params(self) -> int:
        return sum(layer.params() for layer in self.layers)

    def to_dict(self) -> dict[str, Any]:
        folded = {"images_per_sample": self.images_per_sample} if self.images_per_sample != 1 else {}
        return {
            "format": "roofline-ir",
            "version": 1,
            "name": self.name,
            "source": self.source,
            "resolution": self.resolution,
            "batch": self.batch,
            "inputs": [[n, list(s)] for n, s in self.inputs],
            "outputs": list(self.outputs),
            "unsupported_ops": dict(self.unsupported_ops),
            **folded,
            "layers": [layer.to_dict() for layer in self.layers],
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "IR document") -> Network:
        """The network a ``to_dict()`` document describes, checked field by field and edge by edge.

        Anything malformed raises one ``RooflineError`` line naming ``source``,
        the field (``layers[3] (conv1).stride[0]``), the problem and the fix.
        """
        return _read_network(data, source)


# -- reading IR documents ----------------------------------------------------------------------
#
# ``Network.from_dict`` checks a document as it converts it, through the shared validation layer
# (``roofline.schema``): every field's type and range, each layer kind's required fields, and the
# dataflow (every tensor a layer reads is written before, once). A malformed document raises one
# line naming the source, the field, the problem and ``IR_FIX``. The per-field checks below are
# written for the valid case first (plain type tests, no intermediate objects), so that loading
# the whole zoo stays as fast as it was without them; the messages are built only on failure.

#: How every message about a malformed IR document ends.
IR_FIX = "fix the file or re-export it with roofline"
#: The largest tensor (and dim, kernel window, batch) an IR document may describe: far beyond any
#: GPU's memory, small enough that every count the analysis derives stays finite in float64.
MAX_ELEMS = 2**48
_MAX_TEXT = "2**48"

_NETWORK_FIELDS = (
    "format", "version", "name", "source", "resolution", "batch", "inputs", "outputs",
    "unsupported_ops", "images_per_sample", "layers",
)  # fmt: skip


class _Bad(Exception):
    """One field of a layer is wrong: ``field`` is its path inside the layer, ``problem`` the words."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(field, problem)
        self.field, self.problem = field, problem


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _key(key: Any) -> str:
    """A field name as a message shows it: user text stays on one line."""
    return key if isinstance(key, str) and key.isprintable() and key else repr(key)


def _text(value: Any) -> str:
    if type(value) is str and value:
        return value
    raise _Bad("", f"must be a non-empty string, got {_show(value)}")


def _bool(value: Any) -> bool:
    if value is True or value is False:
        return value
    raise _Bad("", f"must be true or false, got {_show(value)}")


def _int(value: Any) -> int:
    return check_integer(value, None, None, lambda problem: _Bad("", problem))


def _bounded(value: Any, minimum: int, field: str = "") -> int:
    """An integer in [minimum, MAX_ELEMS]; a float with an integer value (``2.0``) is that integer."""
    value = check_integer(value, minimum, None, lambda problem: _Bad(field, problem))
    if value > MAX_ELEMS:
        raise _Bad(field, f"must be at most {_MAX_TEXT}, got {_show(value)}")
    return value


def _count(value: Any) -> int:
    if type(value) is int and 0 < value <= MAX_ELEMS:
        return value
    return _bounded(value, 1)


def _choice(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value in choices and type(value) is str:
            return value
        raise _Bad("", f"must be one of {', '.join(choices)}, got {_show(value)}")

    return check


def _ints_slow(value: Any, minimum: int, what: str) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)):
        raise _Bad("", f"must be {what}, got {type_name(value)}")
    out = []
    for i, d in enumerate(value):
        out.append(_bounded(d, minimum, f"[{i}]"))
    return _capped(tuple(out))


def _capped(value: tuple[int, ...]) -> tuple[int, ...]:
    if len(value) > 1 and math.prod(value) > MAX_ELEMS:
        raise _Bad("", f"multiplies out to {math.prod(value):.3g} elements, more than {_MAX_TEXT}")
    return value


def _shape(value: Any) -> Shape:
    """A shape, kernel, stride or dilation: a list of positive integers."""
    if type(value) is list:
        for d in value:
            if type(d) is not int or d < 1:
                break
        else:
            if math.prod(value) <= MAX_ELEMS:
                return tuple(value)
    return _ints_slow(value, 1, "a list of positive integers")


def _padding(value: Any) -> tuple[int, ...]:
    if type(value) is list:
        for d in value:
            if type(d) is not int or d < 0 or d > MAX_ELEMS:
                break
        else:
            return tuple(value)
    return _ints_slow(value, 0, "a list of integers >= 0")


def _shapes(value: Any) -> tuple[Shape, ...]:
    if type(value) is not list and type(value) is not tuple:
        raise _Bad("", f"must be a list of shapes (lists of positive integers), got {type_name(value)}")
    out = []
    for i, shape in enumerate(value):
        try:
            out.append(_shape(shape))
        except _Bad as bad:
            raise _Bad(f"[{i}]{bad.field}", bad.problem) from None
    return tuple(out)


def _names(value: Any) -> tuple[str, ...]:
    if type(value) is list:
        for name in value:
            if type(name) is not str or not name:
                break
        else:
            if value:
                return tuple(value)
    if not isinstance(value, (list, tuple)):
        raise _Bad("", f"must be a list of tensor names, got {type_name(value)}")
    if not value:
        raise _Bad("", "must not be empty: a layer reads at least one tensor")
    for i, name in enumerate(value):
        if type(name) is not str or not name:
            raise _Bad(f"[{i}]", f"must be a non-empty string (a tensor name), got {_show(name)}")
    return tuple(value)


#: The check of each layer field; a field of a new layer kind needs an entry (checked below).
_FIELD_CHECKS: dict[str, Callable[[Any], Any]] = {
    "name": _text,
    "inputs": _names,
    "output": _text,
    "input_shapes": _shapes,
    "output_shape": _shape,
    "kernel": _shape,
    "stride": _shape,
    "dilation": _shape,
    "padding": _padding,
    "groups": _count,
    "bias": _bool,
    "affine": _bool,
    "channels": _count,
    "weights": _shapes,
    "axis": _int,
    "fn": _text,
    "mode": _text,
    "kind": _choice("window", "global", "adaptive"),
    "target": _text,
}
_KIND_CHECKS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "pool": {"mode": _choice("max", "avg")},
    "norm": {"fn": _choice("batch", "layer", "group")},
}


def _rank(shapes: tuple[Shape, ...], field: str, at_least: int, what: str) -> None:
    if len(shapes[0]) < at_least:
        raise _Bad(field, f"is {list(shapes[0])}, but {what}")


def _same_length(kw: dict[str, Any], names: tuple[str, ...], kernel: tuple[int, ...]) -> None:
    for name in names:
        value = kw.get(name)
        if value and len(value) != len(kernel):
            raise _Bad(name, f"has {len(value)} values for a {len(kernel)}-d kernel {list(kernel)}")


def _check_conv(kw: dict[str, Any]) -> None:
    x, out, kernel = kw["input_shapes"][0], kw["output_shape"], kw["kernel"]
    _rank((x,), "input_shapes[0]", 3, "a convolution reads (batch, channels, *spatial)")
    if len(kernel) != len(x) - 2:
        raise _Bad("kernel", f"has {len(kernel)} dims for the {len(x) - 2} spatial dims of input {list(x)}")
    if len(out) != len(x):
        raise _Bad("output_shape", f"is {list(out)}, not of the rank of the input {list(x)}")
    _same_length(kw, ("stride", "padding", "dilation"), kernel)
    groups = kw.get("groups", 1)
    if x[1] % groups or out[1] % groups:
        raise _Bad(
            "groups", f"is {groups}, which does not divide the {x[1]} input and {out[1]} output channels"
        )


def _check_linear(kw: dict[str, Any]) -> None:
    _rank(kw["input_shapes"], "input_shapes[0]", 1, "a linear layer reads (..., in_features)")
    _rank((kw["output_shape"],), "output_shape", 1, "a linear layer writes (..., out_features)")


def _check_matmul(kw: dict[str, Any]) -> None:
    _rank(kw["input_shapes"], "input_shapes[0]", 1, "a matrix product reads (..., M, K)")
    _rank((kw["output_shape"],), "output_shape", 2, "a matrix product writes (..., M, N)")


def _check_pool(kw: dict[str, Any]) -> None:
    if not kw["kernel"]:
        raise _Bad("kernel", "must not be empty")
    _same_length(kw, ("stride", "padding"), kw["kernel"])


_KIND_RULES: dict[str, Callable[[dict[str, Any]], None]] = {
    "conv": _check_conv,
    "linear": _check_linear,
    "matmul": _check_matmul,
    "pool": _check_pool,
}


@dataclass(frozen=True)
class _Kind:
    cls: type[Layer]
    checks: dict[str, Callable[[Any], Any]]
    required: tuple[str, ...]
    rule: Callable[[dict[str, Any]], None] | None


def _kinds() -> dict[str, _Kind]:
    kinds = {}
    for op, cls in LAYER_KINDS.items():
        fields = dataclasses.fields(cls)
        checks = {f.name: _KIND_CHECKS.get(op, {}).get(f.name, _FIELD_CHECKS.get(f.name)) for f in fields}
        unchecked = [name for name, check in checks.items() if check is None]
        if unchecked:  # a field added to a layer kind needs its check in _FIELD_CHECKS
            raise TypeError(f"{cls.__name__} fields without a check in _FIELD_CHECKS: {unchecked}")
        missing = dataclasses.MISSING
        required = tuple(f.name for f in fields if f.default is missing and f.default_factory is missing)
        kinds[op] = _Kind(cls, checks, required, _KIND_RULES.get(op))
    return kinds


_KINDS = _kinds()


def _read_layer(data: Any, written: set[str] | None, batch: int) -> Layer:
    """One layer of a document; ``written`` holds the tensors it may read (None: no dataflow check)."""
    if type(data) is not dict:
        if not isinstance(data, Mapping):
            raise _Bad("", f"must be an object (a layer), got {type_name(data)}")
        data = dict(data)
    op = data.get("op")
    kind = _KINDS.get(op) if type(op) is str else None
    if kind is None:
        known = ", ".join(LAYER_KINDS)
        if "op" not in data:
            raise _Bad("op", f"is missing (one of {known})")
        raise _Bad("op", f"must be one of {known}, got {_show(op)}")
    checks = kind.checks
    kw: dict[str, Any] = {}
    for key, value in data.items():
        check = checks.get(key)
        if check is None:
            if key == "op":
                continue
            raise _Bad(_key(key), f"is not a field of a {op} layer (its fields: {', '.join(checks)})")
        try:
            kw[key] = check(value)
        except _Bad as bad:
            raise _Bad(key + bad.field, bad.problem) from None
    for key in kind.required:
        if key not in kw:
            raise _Bad(key, "is missing")
    inputs, shapes, output = kw["inputs"], kw["input_shapes"], kw["output"]
    if len(shapes) != len(inputs):
        raise _Bad(
            "input_shapes", f"has {len(shapes)} shape(s) for {len(inputs)} input(s); give one shape per input"
        )
    if written is not None:
        for i, name in enumerate(inputs):
            if name not in written:
                raise _Bad(
                    f"inputs[{i}]",
                    f"names tensor {name!r}, which no earlier layer writes and no graph input holds",
                )
        if output in written:
            held = f"names tensor {output!r}, which an earlier layer or a graph input already holds"
            raise _Bad("output", f"{held}; write each tensor once")
    if batch != 1:
        for i, shape in enumerate(shapes):
            _check_leading(shape, batch, f"input_shapes[{i}]")
        _check_leading(kw["output_shape"], batch, "output_shape")
    if kind.rule is not None:
        kind.rule(kw)
    return kind.cls(**kw)


def _check_leading(shape: Shape, batch: int, field: str) -> None:
    if shape and shape[0] % batch:
        raise _Bad(field, f"has leading dim {shape[0]}, not a multiple of the batch {batch}")


def _read_layers(items: list, source: str, written: set[str] | None, batch: int) -> list[Layer]:
    layers = []
    for i, data in enumerate(items):
        try:
            layer = _read_layer(data, written, batch)
        except _Bad as bad:
            name = data.get("name") if isinstance(data, Mapping) else None
            where = f"layers[{i}] ({_key(name)})" if isinstance(name, str) and name else f"layers[{i}]"
            raise Fields({}, source, IR_FIX, where).error(bad.field, bad.problem) from None
        if written is not None:
            written.add(layer.output)
        layers.append(layer)
    return layers


def _at_most(f: Fields, name: str, value: int) -> int:
    if value > MAX_ELEMS:
        raise f.error(name, f"must be at most {_MAX_TEXT}, got {value}")
    return value


def _read_network(data: Any, source: str) -> Network:
    f = Fields(data, source, IR_FIX)
    fmt = f.raw("format", None)
    if fmt != "roofline-ir" or type(fmt) is not str:
        got = "is missing" if "format" not in f.data else f"is {_show(fmt)}, not 'roofline-ir'"
        raise f.error("format", f"{got}: not a valid roofline IR file")
    version = f.raw("version", None)
    if type(version) is not int or version != 1:
        raise f.error("version", f"must be 1, got {_show(version)}")
    for key in f.data:
        if key not in _NETWORK_FIELDS:
            raise f.error(
                _key(key),
                f"is not a field of a roofline IR document (its fields: {', '.join(_NETWORK_FIELDS)})",
            )
    name = f.string("name")
    origin = f.raw("source", "")
    if not isinstance(origin, str):
        raise f.error("source", f"must be a string, got {type_name(origin)}")
    resolution = f.integer("resolution", 1, default=None)
    batch = _at_most(f, "batch", f.integer("batch", 1, default=1))
    images = _at_most(f, "images_per_sample", f.integer("images_per_sample", 1, default=1))
    unsupported = f.object("unsupported_ops", default={})
    counts = {}
    for op in unsupported.data:
        if not isinstance(op, str) or not op:
            raise unsupported.error(_key(op), "must be an op name")
        counts[op] = unsupported.integer(op, 0)
    inputs: list[tuple[str, Shape]] = []
    written: set[str] = set()
    for i, item in enumerate(f.list("inputs")):
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise f.error(f"inputs[{i}]", f"must be a [name, shape] pair, got {_show(item)}")
        try:
            try:
                tensor = _text(item[0])
            except _Bad as bad:
                raise _Bad(f"[0]{bad.field}", bad.problem) from None
            try:
                shape = _shape(item[1])
            except _Bad as bad:
                raise _Bad(f"[1]{bad.field}", bad.problem) from None
            if tensor in written:
                raise _Bad("[0]", f"is {tensor!r} again; graph inputs have distinct names")
            _check_leading(shape, batch, "[1]")
        except _Bad as bad:
            raise f.error(f"inputs[{i}]{bad.field}", bad.problem) from None
        inputs.append((tensor, shape))
        written.add(tensor)
    layers = _read_layers(f.list("layers", nonempty=True), source, written, batch)
    outputs = f.list("outputs")
    for i, tensor in enumerate(outputs):
        if not isinstance(tensor, str) or tensor not in written:
            raise f.error(
                f"outputs[{i}]", f"is {_show(tensor)}, not a tensor a layer writes or a graph input holds"
            )
    return Network(
        name=name,
        source=origin,
        resolution=resolution,
        batch=batch,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        unsupported_ops=counts,
        images_per_sample=images,
        layers=tuple(layers),
    )
