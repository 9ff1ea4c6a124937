"""The roofline-ir JSON format: reading a document with every field and every edge checked.

``Network.to_dict`` writes the format; ``read_network`` reads it back. A
malformed document (a user's file, a truncated download, a hand edit) raises
one ``RooflineError`` line naming the source, the field
(``layers[3] (conv1).stride[0]``), the problem and the fix, through the shared
validation layer (``roofline.schema``): each field's type and range, each layer
kind's required fields, and the dataflow (every tensor a layer reads is written
before it, once). The checks are written for the valid case first (plain type
tests, messages built only on failure), so loading the zoo is no slower than
it was without them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from roofline.model.ir import LAYER_KINDS, Layer, Network, Shape
from roofline.schema import Fields, check_integer, type_name

#: How every message about a malformed IR document ends.
IR_FIX = "fix the file or re-export it with roofline"
#: The largest tensor (and dim, kernel window, batch) an IR document may describe: far beyond any
#: GPU's memory, small enough that every count the analysis derives stays finite in float64.
MAX_ELEMS = 2**48
_MAX_TEXT = "2**48"

_NETWORK_FIELDS = (
    "format", "version", "name", "source", "resolution", "batch", "inputs", "outputs",
    "unsupported_ops", "images_per_sample", "weight_only_ops", "weight_only_flops", "layers",
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
    counts = _op_counts(f, "unsupported_ops")
    # Optional (files written before these fields existed have neither): see ``Network``.
    weight_only = _op_counts(f, "weight_only_ops")
    weight_only_flops = f.integer("weight_only_flops", 0, default=0)
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
        weight_only_ops=weight_only,
        weight_only_flops=weight_only_flops,
        layers=tuple(layers),
    )


def _op_counts(f: Fields, name: str) -> dict[str, int]:
    """An optional {op name: count >= 0} object of the document."""
    ops = f.object(name, default={})
    counts = {}
    for op in ops.data:
        if not isinstance(op, str) or not op:
            raise ops.error(_key(op), "must be an op name")
        counts[op] = ops.integer(op, 0)
    return counts


def read_network(data: Any, source: str = "IR document") -> Network:
    """The network a ``Network.to_dict()`` document describes, checked field by field and edge by edge."""
    return _read_network(data, source)


def read_layer(data: Any, source: str = "layer") -> Layer:
    """One layer from its ``to_dict()``, its fields checked (``RooflineError`` naming the field)."""
    return _read_layers([data], source, None, 1)[0]
