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
from dataclasses import dataclass, field
from typing import Any, ClassVar

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


@dataclass(frozen=True, kw_only=True)
class Network:
    """Layers in execution order; tensors are named, so dataflow is explicit.

    ``inputs`` are the graph inputs (name, shape); ``outputs`` the tensors the
    network returns. ``batch`` is the leading dim of every activation shape.
    ``images_per_sample`` is f for a folded network (``roofline.analysis.fold``): one
    sample stacks f images on the channel axis.

    ``weight_only_ops`` (ATen op -> count) and ``weight_only_flops`` are the work
    a traced forward pass did on weights and constants alone: swin v2's
    position-bias MLP, relative-position table lookups, weight standardization.
    It does not depend on the input, so it is not a layer and not in ``flops()``:
    an engine computes it once when it builds the engine (TensorRT's constant
    folding; ``torch.onnx.export(do_constant_folding=True)``), not per image,
    and batch leaves it unchanged. Its FLOPs follow ``torch.utils.flop_counter``,
    so ``flops() + weight_only_flops`` is that counter's total for one image.
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
    weight_only_ops: dict[str, int] = field(default_factory=dict, hash=False, compare=True)
    weight_only_flops: int = 0

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
        # Written only when there is some, so files of networks without any stay as they were.
        weight_only = (
            {"weight_only_ops": dict(self.weight_only_ops), "weight_only_flops": self.weight_only_flops}
            if self.weight_only_ops or self.weight_only_flops
            else {}
        )
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
            **weight_only,
            "layers": [layer.to_dict() for layer in self.layers],
        }
