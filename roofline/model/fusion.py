"""Fusion pass: what an inference engine such as TensorRT actually launches.

Bytes and arithmetic intensity are meaningful only after fusion (DESIGN.md,
"Core definitions": AI is computed "after the fusions a deployment engine
performs"). The rules follow TensorRT's documented layer fusions (TensorRT
Developer Guide, "Types of Fusions": Convolution and ReLU/activation,
Convolution and ElementWise sum, Scale (BN) folding, PointWise fusion,
Concatenation elimination):

1. A convolution or GEMM anchors a kernel. Batch norm right after it folds into
   its weights (a bias appears if it had none); activations and one residual
   add then run in its epilogue. The add's other operand becomes an extra
   input the kernel reads.
2. Depthwise and grouped convolutions anchor their own kernels under the same
   rules; they are never merged into a neighbouring convolution.
3. A chain of elementwise ops and normalizations that no anchor absorbed
   becomes one pointwise kernel (SE gating x * sigmoid(s), pre-activation BN).
4. Pooling (incl. the SE squeeze), resize, softmax, batched matmul and
   unsupported ops stay standalone.
5. Concatenation is eliminated: producers write straight into the joined
   buffer, and consumers read the joined tensor.

An op is absorbed only when the tensor between it and the kernel has no other
reader, since otherwise the intermediate must still be written to DRAM.
Fusing only removes the write and re-read of intermediates and folding only
replaces 2C BN vectors with at most C bias values, so a kernel never moves
more bytes than its layers did separately.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from roofline.model.ir import Concat, Conv, Elementwise, Layer, Linear, Network, Norm, Shape, numel

#: Elementwise functions of one tensor that an engine fuses into an epilogue.
ACTIVATIONS = frozenset(
    {
        "relu", "relu6", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh",
        "hardswish", "hardsigmoid", "hardtanh", "clamp", "mish", "softplus",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Kernel:
    """One launched kernel: an anchor layer and what was fused into it."""

    anchor: Layer
    fused: tuple[Layer, ...]
    inputs: tuple[tuple[str, Shape], ...]  # tensors read from DRAM
    output: str
    output_shape: Shape
    weight_elems: int

    @property
    def name(self) -> str:
        return self.anchor.name

    @property
    def layers(self) -> tuple[Layer, ...]:
        return (self.anchor, *self.fused)

    def describe(self) -> str:
        """The op chain, e.g. ``conv3x3+bn+relu``."""
        return "+".join(layer.describe() for layer in self.layers)

    def macs(self) -> int:
        return sum(layer.macs() for layer in self.layers)

    def flops(self) -> int:
        return 2 * self.macs()

    def elementwise_ops(self) -> int:
        return sum(layer.elementwise_ops() for layer in self.layers)

    def bytes(self, dtype_bytes: int) -> int:
        elems = sum(numel(s) for _, s in self.inputs) + self.weight_elems + numel(self.output_shape)
        return elems * dtype_bytes


@dataclass
class _Open:
    anchor: Layer
    order: int
    fused: list[Layer] = field(default_factory=list)
    inputs: dict[str, Shape] = field(default_factory=dict)
    weight_elems: int = 0
    added_residual: bool = False

    @property
    def output_layer(self) -> Layer:
        return self.fused[-1] if self.fused else self.anchor

    def freeze(self) -> Kernel:
        out = self.output_layer
        return Kernel(
            anchor=self.anchor,
            fused=tuple(self.fused),
            inputs=tuple(self.inputs.items()),
            output=out.output,
            output_shape=out.output_shape,
            weight_elems=self.weight_elems,
        )


def _is_gemm(layer: Layer) -> bool:
    return isinstance(layer, (Conv, Linear))


def _is_pointwise(layer: Layer) -> bool:
    return isinstance(layer, Elementwise) or (isinstance(layer, Norm) and layer.fn == "batch")


def _absorb(kernel: _Open, layer: Layer, via: str) -> bool:
    """Fuse ``layer`` (which reads ``via``, the kernel's output) if a rule allows."""
    others = {n: s for n, s in zip(layer.inputs, layer.input_shapes, strict=True) if n != via}
    if _is_gemm(kernel.anchor):
        if isinstance(layer, Norm) and layer.fn == "batch" and not kernel.fused:
            if not getattr(kernel.anchor, "bias", False):
                kernel.weight_elems += layer.channels  # the folded shift becomes a bias
        elif isinstance(layer, Elementwise) and layer.fn in ACTIVATIONS and not layer.weights:
            pass
        elif (
            isinstance(layer, Elementwise)
            and layer.fn == "add"
            and not kernel.added_residual
            and len(others) == 1
            and all(s == layer.output_shape for s in others.values())
        ):
            kernel.added_residual = True
            kernel.inputs.update(others)
        else:
            return False
    elif _is_pointwise(kernel.anchor) and _is_pointwise(layer):
        kernel.inputs.update(others)
        kernel.weight_elems += layer.params()
    else:
        return False
    kernel.fused.append(layer)
    return True


def fuse(network: Network) -> tuple[Kernel, ...]:
    """Group ``network``'s layers into the kernels an engine would launch."""
    readers = {name: len(layers) for name, layers in network.consumers().items()}
    for name in network.outputs:
        readers[name] = readers.get(name, 0) + 1  # a graph output is materialized
    open_by_output: dict[str, _Open] = {}
    kernels: list[_Open] = []
    for layer in network.layers:
        if isinstance(layer, Concat):
            continue
        # Latest producer first: for a residual add of two conv branches the
        # engine fuses the add into the branch that runs last.
        for via in sorted(
            (n for n in dict.fromkeys(layer.inputs) if n in open_by_output and readers.get(n) == 1),
            key=lambda n: open_by_output[n].order,
            reverse=True,
        ):
            kernel = open_by_output[via]
            if _absorb(kernel, layer, via):
                del open_by_output[via]
                open_by_output[layer.output] = kernel
                break
        else:
            kernel = _Open(
                anchor=layer,
                order=len(kernels),
                inputs=dict(zip(layer.inputs, layer.input_shapes, strict=True)),
                weight_elems=layer.params(),
            )
            kernels.append(kernel)
            open_by_output[layer.output] = kernel
    return tuple(k.freeze() for k in kernels)
