"""Fusion pass: what an inference engine actually launches, by the engine's rules.

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
6. Attention: Q K^T, the softmax and the product with V run as one fused
   kernel that never writes the score matrix (FlashAttention: Dao et al.,
   NeurIPS 2022; TensorRT's multi-head attention fusion, Developer Guide
   "Multi-Head Attention Fusion"; PyTorch's scaled_dot_product_attention).
   The kernel reads Q, K and V and writes the output; scalar scalings of Q
   and K stay pointwise kernels of their own.

An op is absorbed only when the tensor between it and the kernel has no other
reader, since otherwise the intermediate must still be written to DRAM.
Fusing only removes the write and re-read of intermediates and folding only
replaces 2C BN vectors with at most C bias values, so a kernel never moves
more bytes than its layers did separately.

Those are TensorRT's rules (``TENSORRT``). Other engines fuse less, and a
``FusionPolicy`` says which of the rules each one applies; the engine data
(``roofline.analysis.engines``) names the policy and its sources. With every
rule off (eager PyTorch) each layer is its own kernel, and a concatenation is
a copy kernel that reads its inputs and writes the joined tensor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from roofline.model.ir import (
    Concat,
    Conv,
    Elementwise,
    Layer,
    Linear,
    MatMul,
    Network,
    Norm,
    Pool,
    Shape,
    Softmax,
    numel,
)

#: Elementwise functions of one tensor that an engine fuses into an epilogue.
ACTIVATIONS = frozenset(
    {
        "relu", "relu6", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh",
        "hardswish", "hardsigmoid", "hardtanh", "clamp", "mish", "softplus",
    }
)  # fmt: skip


@dataclass(frozen=True)
class FusionPolicy:
    """Which of the module's fusion rules an engine applies (numbers refer to the module doc)."""

    #: Rule 1: batch norm right after a convolution or GEMM folds into its weights.
    fold_bn: bool = True
    #: Rule 1: activations a conv/GEMM epilogue runs (a subset of ``ACTIVATIONS``; empty: none).
    epilogue_activations: frozenset[str] = ACTIVATIONS
    #: Rule 1: one residual add runs in the conv/GEMM epilogue.
    epilogue_add: bool = True
    #: Rule 3: chains of elementwise ops and batch norms become one kernel.
    pointwise_chains: bool = True
    #: Rule 3 extended: normalizations, softmax and global pooling join pointwise chains as
    #: reductions (a code generator fusing pointwise producers and consumers into one reduction kernel).
    fuse_reductions: bool = False
    #: Rule 5: producers write into the joined buffer; False: the concatenation is a copy kernel.
    eliminate_concat: bool = True
    #: Rule 6: matmul -> softmax -> matmul is one attention kernel.
    fused_attention: bool = True
    #: A convolution's bias runs in its epilogue; False: a pointwise add after it (eager PyTorch's
    #: cuDNN path adds the bias in a separate kernel), which pointwise chains may then extend.
    conv_bias_epilogue: bool = True


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


def _attention_step(kernel: _Open, layer: Layer, via: str) -> bool:
    """Rule 6: a score matmul takes its softmax, then the matmul that weights V by it."""
    if not isinstance(kernel.anchor, MatMul):
        return False
    if not kernel.fused:
        return isinstance(layer, Softmax)
    return (
        len(kernel.fused) == 1
        and isinstance(kernel.fused[0], Softmax)
        and isinstance(layer, MatMul)
        and layer.inputs[0] == via
    )


def _is_pointwise(layer: Layer, policy: FusionPolicy) -> bool:
    if isinstance(layer, Elementwise) or (isinstance(layer, Norm) and layer.fn == "batch"):
        return True
    if not policy.fuse_reductions:
        return False
    return isinstance(layer, (Norm, Softmax)) or (isinstance(layer, Pool) and layer.kind == "global")


def _absorb(kernel: _Open, layer: Layer, via: str, policy: FusionPolicy) -> bool:
    """Fuse ``layer`` (which reads ``via``, the kernel's output) if a rule of ``policy`` allows."""
    others = {n: s for n, s in zip(layer.inputs, layer.input_shapes, strict=True) if n != via}
    if _is_gemm(kernel.anchor):
        if isinstance(layer, Norm) and layer.fn == "batch" and not kernel.fused and policy.fold_bn:
            if not getattr(kernel.anchor, "bias", False):
                kernel.weight_elems += layer.channels  # the folded shift becomes a bias
        elif isinstance(layer, Elementwise) and layer.fn in policy.epilogue_activations and not layer.weights:
            pass
        elif (
            policy.epilogue_add
            and isinstance(layer, Elementwise)
            and layer.fn == "add"
            and not kernel.added_residual
            and len(others) == 1
            and all(s == layer.output_shape for s in others.values())
        ):
            kernel.added_residual = True
            kernel.inputs.update(others)
        else:
            return False
    elif policy.fused_attention and _attention_step(kernel, layer, via):
        kernel.inputs.update(others)
    elif policy.pointwise_chains and _is_pointwise(kernel.anchor, policy) and _is_pointwise(layer, policy):
        kernel.inputs.update(others)
        kernel.weight_elems += layer.params()
    else:
        return False
    kernel.fused.append(layer)
    return True


#: TensorRT's documented fusions: every rule of the module doc.
TENSORRT = FusionPolicy()


def fuse(network: Network, policy: FusionPolicy = TENSORRT) -> tuple[Kernel, ...]:
    """Group ``network``'s layers into the kernels an engine with ``policy`` would launch."""
    readers = {name: len(layers) for name, layers in network.consumers().items()}
    for name in network.outputs:
        readers[name] = readers.get(name, 0) + 1  # a graph output is materialized
    open_by_output: dict[str, _Open] = {}
    kernels: list[_Open] = []
    for layer in network.layers:
        if isinstance(layer, Concat) and policy.eliminate_concat:
            continue
        # Latest producer first: for a residual add of two conv branches the
        # engine fuses the add into the branch that runs last.
        for via in sorted(
            (n for n in dict.fromkeys(layer.inputs) if n in open_by_output and readers.get(n) == 1),
            key=lambda n: open_by_output[n].order,
            reverse=True,
        ):
            kernel = open_by_output[via]
            if _absorb(kernel, layer, via, policy):
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
            if isinstance(layer, Conv) and layer.bias and not policy.conv_bias_epilogue:
                kernel.weight_elems -= layer.out_channels  # the add reads the bias, not the conv
                bias = _bias_add(layer)
                inputs = {layer.output: layer.output_shape}
                kernels.append(
                    _Open(anchor=bias, order=len(kernels), inputs=inputs, weight_elems=bias.params())
                )
                open_by_output[layer.output] = kernels[-1]
    return tuple(k.freeze() for k in kernels)


def _bias_add(conv: Conv) -> Elementwise:
    """The separate bias add of an engine that runs ``conv`` without it in the epilogue."""
    shape = conv.output_shape
    return Elementwise(
        name=f"{conv.name}.bias", inputs=(conv.output,), output=conv.output, input_shapes=(shape,),
        output_shape=shape, fn="add", weights=((conv.out_channels,),),
    )  # fmt: skip
