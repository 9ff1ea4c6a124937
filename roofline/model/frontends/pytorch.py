"""torch frontend: any ``nn.Module`` -> IR, traced on the meta device.

The module runs once on ``meta`` tensors (shapes only, no memory, no math)
under a ``TorchDispatchMode``, which sees every ATen op after autograd and
composite decomposition: the same level ``torch.utils.flop_counter`` counts
at, so FLOPs agree with it by construction. ``ModuleTracker`` supplies the
module path of each op for the layer names.

Dataflow is tracked by tensor identity. View ops (view, permute, slice ...)
alias their base, so they cost nothing and a consumer reads exactly the
view's elements. A tensor not derived from the input (a parameter, a buffer,
a constant) is a weight. An op that reads weights and constants only (swin
v2's position-bias MLP, a relative-position table lookup) is no layer: it is
counted, with its ``torch.utils.flop_counter`` FLOPs, in the network's
``weight_only_ops`` and ``weight_only_flops`` (see ``ir.Network``).
ATen ops are sorted into explicit tables (fvcore's ``_IGNORED_OPS`` idea):
mapped to an IR layer, ignored as views/metadata, or unsupported, which
become ``Unsupported`` layers and are counted by name in the network. Ops that
only move data (a class token joined to the patch tokens, ``roll``, a
token-mean pool) map to existing layers, so ``unsupported_ops`` lists only work
the model cannot time.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry
from torch.utils.module_tracker import ModuleTracker

from roofline.errors import RooflineError
from roofline.model import ir
from roofline.model.frontends import unique_name

aten = torch.ops.aten

#: ATen ops that only reinterpret a tensor: their output aliases the input.
VIEW_OPS = {
    aten.view, aten._unsafe_view, aten.reshape, aten._reshape_alias, aten.t,
    aten.transpose, aten.permute, aten.expand, aten.squeeze, aten.unsqueeze,
    aten.flatten, aten.alias, aten.detach, aten.slice, aten.select, aten.narrow,
    aten.as_strided, aten.split, aten.split_with_sizes, aten.chunk, aten.unbind,
    aten.lift_fresh, aten.dropout, aten.feature_dropout,
    # In-place metadata changes (ConvNeXt's head restrides its pooled tensor with as_strided_).
    aten.as_strided_, aten.squeeze_, aten.unsqueeze_, aten.transpose_, aten.t_, aten.detach_,
}  # fmt: skip

#: Unary activations and their IR names.
ACTIVATION_OPS = {
    aten.relu: "relu", aten.relu_: "relu", aten.silu: "silu", aten.silu_: "silu",
    aten.gelu: "gelu", aten.gelu_: "gelu", aten.sigmoid: "sigmoid", aten.sigmoid_: "sigmoid",
    aten.tanh: "tanh", aten.tanh_: "tanh", aten.hardswish: "hardswish",
    aten.hardswish_: "hardswish", aten.hardsigmoid: "hardsigmoid",
    aten.hardsigmoid_: "hardsigmoid", aten.hardtanh: "hardtanh", aten.hardtanh_: "hardtanh",
    aten.leaky_relu: "leaky_relu", aten.leaky_relu_: "leaky_relu", aten.elu: "elu",
    aten.elu_: "elu", aten.mish: "mish", aten.mish_: "mish", aten.softplus: "softplus",
    aten.clamp: "clamp", aten.clamp_: "clamp", aten.clamp_min: "clamp", aten.clamp_min_: "clamp",
}  # fmt: skip

#: Binary arithmetic (either operand may be a weight or a scalar).
ARITHMETIC_OPS = {
    aten.add: "add", aten.add_: "add", aten.mul: "mul", aten.mul_: "mul",
    aten.sub: "sub", aten.sub_: "sub", aten.div: "div", aten.div_: "div",
}  # fmt: skip

#: Ops that copy memory (layout changes, casts, padding, swin's cyclic shift).
COPY_OPS = {
    aten.clone: "copy", aten._to_copy: "copy", aten.constant_pad_nd: "pad",
    aten.reflection_pad2d: "pad", aten.replication_pad2d: "pad", aten.roll: "roll",
}  # fmt: skip

#: Tensor factories and metadata queries: no layer, their outputs are constants.
IGNORED_OPS = {
    aten.empty, aten.zeros, aten.ones, aten.full, aten.arange, aten.scalar_tensor,
    aten.empty_like, aten.zeros_like, aten.ones_like, aten.full_like, aten.new_empty,
    aten.new_zeros, aten.new_ones, aten.new_full, aten.empty_strided, aten.sym_size,
    aten.sym_stride, aten.sym_numel, aten.is_same_size,
}  # fmt: skip


def _pair(value: Any, dims: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * dims
    value = tuple(int(v) for v in value)
    return value * dims if len(value) == 1 else value


class _Tracer(TorchDispatchMode):
    def __init__(self, tracker: ModuleTracker, leaves: set[str]):
        super().__init__()
        self.tracker = tracker
        self.leaves = leaves
        self.taken: set[str] = set()
        self.names: dict[int, str] = {}  # id -> activation tensor name
        self.alive: list[torch.Tensor] = []  # keep ids unique for the whole trace
        self.layers: list[ir.Layer] = []
        self.unsupported: Counter[str] = Counter()
        self.weight_only: Counter[str] = Counter()
        self.weight_only_flops = 0
        self.handlers: dict[Any, Callable] = {
            aten.convolution: self._conv,
            aten.addmm: self._addmm,
            aten.mm: self._mm,
            aten.bmm: self._bmm,
            aten._native_batch_norm_legit_no_training: self._batch_norm,
            aten.native_batch_norm: self._batch_norm,
            aten.native_layer_norm: self._layer_norm,
            aten.native_group_norm: self._group_norm,
            aten.max_pool2d_with_indices: self._max_pool,
            aten.max_pool2d: self._max_pool,
            aten.avg_pool2d: self._avg_pool,
            aten._adaptive_avg_pool2d: self._adaptive_pool,
            aten.adaptive_max_pool2d: self._adaptive_pool,
            aten.mean: self._mean,
            aten.cat: self._cat,
            aten.upsample_nearest2d: self._resize,
            aten._upsample_nearest_exact2d: self._resize,
            aten.upsample_bilinear2d: self._resize,
            aten._softmax: self._softmax,
            aten._safe_softmax: self._softmax,
        }

    # -- bookkeeping -------------------------------------------------------
    def new_name(self, tensor: torch.Tensor, hint: str) -> str:
        self.alive.append(tensor)
        self.names[id(tensor)] = hint
        return hint

    def layer_name(self, suffix: str) -> str:
        """The innermost module's path; ``path.op_N`` unless a leaf module's first op."""
        parents = [p for p in self.tracker.parents if p != "Global"]
        path = max(parents, key=lambda p: p.count("."), default="").partition(".")[2]
        if path in self.leaves and path not in self.taken:
            return unique_name(path, self.taken)
        return unique_name(f"{path}.{suffix}" if path else suffix, self.taken)

    def is_activation(self, value: Any) -> bool:
        return isinstance(value, torch.Tensor) and id(value) in self.names

    def emit(
        self, cls: type[ir.Layer], suffix: str, inputs: list[torch.Tensor], out: torch.Tensor, **attrs
    ) -> None:
        name = self.layer_name(suffix)
        shapes = {"input_shapes": tuple(tuple(t.shape) for t in inputs), "output_shape": tuple(out.shape)}
        self.layers.append(
            cls(
                name=name,
                inputs=tuple(self.names[id(t)] for t in inputs),
                output=self.new_name(out, name),
                **(shapes | attrs),
            )
        )

    # -- dispatch ----------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func.overloadpacket
        activations = [a for a in _flat(args) if self.is_activation(a)]
        if packet in IGNORED_OPS:
            return out
        if not activations:
            if packet not in VIEW_OPS and any(isinstance(a, torch.Tensor) for a in _flat(args)):
                self._weight_only(packet, args, kwargs, out)
            return out
        if packet in VIEW_OPS:
            base = self.names[id(activations[0])]
            for t in _flat(out):
                if isinstance(t, torch.Tensor):
                    self.alive.append(t)
                    self.names[id(t)] = base
            return out
        handler = self.handlers.get(packet)
        if handler is not None:
            handler(packet, args, kwargs, out)
        elif packet in ACTIVATION_OPS:
            self._elementwise(ACTIVATION_OPS[packet], args, out)
        elif packet in ARITHMETIC_OPS:
            self._elementwise(ARITHMETIC_OPS[packet], args, out)
        elif packet in COPY_OPS:
            self._elementwise(COPY_OPS[packet], args[:1], out)
        else:
            self._unsupported(str(packet).removeprefix("aten."), activations, out)
        return out

    def _weight_only(self, packet, args, kwargs, out) -> None:
        """Work on weights and constants alone: counted once, with the FLOPs
        ``torch.utils.flop_counter`` gives it (its ``flop_registry``)."""
        self.weight_only[str(packet).removeprefix("aten.")] += 1
        formula = flop_registry.get(packet)
        if formula is not None:
            self.weight_only_flops += int(formula(*args, **kwargs, out_val=out))

    def _unsupported(self, target: str, inputs: list[torch.Tensor], out: Any) -> None:
        self.unsupported[target] += 1
        first = next((t for t in _flat(out) if isinstance(t, torch.Tensor)), None)
        if first is not None:
            self.emit(ir.Unsupported, target, inputs, first, target=target)

    # -- handlers ----------------------------------------------------------
    def _conv(self, packet, args, kwargs, out) -> None:
        x, w, b, stride, padding, dilation, transposed, _, groups = args[:9]
        if transposed:
            self._unsupported("convolution(transposed)", [x], out)
            return
        dims = w.dim() - 2
        self.emit(
            ir.Conv, "conv", [x], out,
            kernel=tuple(w.shape[2:]), stride=_pair(stride, dims), padding=_pair(padding, dims),
            dilation=_pair(dilation, dims), groups=int(groups), bias=b is not None,
        )  # fmt: skip

    def _addmm(self, packet, args, kwargs, out) -> None:
        bias, x, w = args[:3]
        if self.is_activation(w):
            self._unsupported("addmm(activation x activation)", [x, w], out)
        else:
            self.emit(ir.Linear, "linear", [x], out, bias=True)

    def _mm(self, packet, args, kwargs, out) -> None:
        x, w = args[:2]
        if self.is_activation(x) and self.is_activation(w):
            self.emit(ir.MatMul, "matmul", [x, w], out)
        elif self.is_activation(x):
            self.emit(ir.Linear, "linear", [x], out, bias=False)
        else:
            # W @ x is the Linear (x^T W^T)^T: rows of x^T are the GEMM's M.
            self.emit(
                ir.Linear, "linear", [w], out, bias=False,
                input_shapes=(tuple(w.shape[::-1]),), output_shape=tuple(out.shape[::-1]),
            )  # fmt: skip

    def _bmm(self, packet, args, kwargs, out) -> None:
        a, b = args[:2]
        if self.is_activation(a):
            self.emit(ir.MatMul, "matmul", [t for t in (a, b) if self.is_activation(t)], out)
            return
        # C @ x with C constant (an attention-pool head's learned query against the keys): MatMul
        # takes K from its first input's last dim, so record it as (x^T C^T)^T, as _mm does W @ x.
        self.emit(
            ir.MatMul, "matmul", [b], out,
            input_shapes=(tuple(b.transpose(-2, -1).shape),),
            output_shape=tuple(out.transpose(-2, -1).shape),
        )  # fmt: skip

    def _batch_norm(self, packet, args, kwargs, out) -> None:
        x, weight = args[0], args[1]
        self.emit(ir.Norm, "bn", [x], out[0], fn="batch", channels=x.shape[1], affine=weight is not None)

    def _layer_norm(self, packet, args, kwargs, out) -> None:
        x, shape, weight = args[0], args[1], args[2]
        self.emit(
            ir.Norm, "ln", [x], out[0], fn="layer", channels=math.prod(shape), affine=weight is not None
        )

    def _group_norm(self, packet, args, kwargs, out) -> None:
        x, weight = args[0], args[1]
        self.emit(ir.Norm, "gn", [x], out[0], fn="group", channels=x.shape[1], affine=weight is not None)

    def _max_pool(self, packet, args, kwargs, out) -> None:
        out = out[0] if isinstance(out, tuple) else out
        x, kernel = args[0], args[1]
        stride = args[2] if len(args) > 2 and args[2] else kernel
        padding = args[3] if len(args) > 3 else 0
        self.emit(
            ir.Pool, "maxpool", [x], out, mode="max", kernel=_pair(kernel, 2),
            stride=_pair(stride, 2), padding=_pair(padding, 2),
        )  # fmt: skip

    def _avg_pool(self, packet, args, kwargs, out) -> None:
        x, kernel = args[0], args[1]
        stride = args[2] if len(args) > 2 and args[2] else kernel
        padding = args[3] if len(args) > 3 else 0
        self.emit(
            ir.Pool, "avgpool", [x], out, mode="avg", kernel=_pair(kernel, 2),
            stride=_pair(stride, 2), padding=_pair(padding, 2),
        )  # fmt: skip

    def _adaptive_pool(self, packet, args, kwargs, out) -> None:
        mode = "max" if packet is aten.adaptive_max_pool2d else "avg"
        out = out[0] if isinstance(out, tuple) else out
        self._window_pool(mode, args[0], out, "pool")

    def _mean(self, packet, args, kwargs, out) -> None:
        x = args[0]
        dims = args[1] if len(args) > 1 else kwargs.get("dim")
        reduced = sorted({d % x.dim() for d in dims} if dims else range(x.dim()))
        if x.dim() >= 3 and reduced == list(range(2, x.dim())):
            self._window_pool("avg", x, out, "mean")
        elif reduced and 0 not in reduced:
            # Any other mean that keeps the batch (swin's channels-last (N, H, W, C) -> (N, C) head,
            # a ViT's token mean) is a global average pool over the reduced dims: one read-and-add
            # per input element, the Pool layer's work whatever the axes are.
            kernel = tuple(x.shape[d] for d in reduced)
            self.emit(ir.Pool, "mean", [x], out, mode="avg", kernel=kernel, stride=kernel, kind="global")
        else:
            self._unsupported("mean(batch)", [x], out)  # mixes samples: batch scaling would be wrong

    def _window_pool(self, mode: str, x: torch.Tensor, out: torch.Tensor, suffix: str) -> None:
        in_sp, out_sp = tuple(x.shape[2:]), tuple(out.shape[2:]) or (1,) * (x.dim() - 2)
        kernel = tuple(max(1, i // o) for i, o in zip(in_sp, out_sp, strict=True))
        kind = "global" if all(o == 1 for o in out_sp) else "adaptive"
        self.emit(ir.Pool, suffix, [x], out, mode=mode, kernel=kernel, stride=kernel, kind=kind)

    def _cat(self, packet, args, kwargs, out) -> None:
        tensors = list(args[0])
        dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
        inputs = [t for t in tensors if self.is_activation(t)]
        if len(inputs) < len(tensors):
            # A constant joined to activations (a ViT's class token before its patch tokens) is a copy
            # of the activations with the constant's elements written beside them: an elementwise copy
            # reading the constants as weights. Not a Concat, whose inputs sum to its output (and whose
            # channel widths ``roofline.model.channels`` adds up).
            weights = tuple(tuple(t.shape) for t in tensors if not self.is_activation(t) and t.numel())
            self.emit(ir.Elementwise, "cat", inputs, out, fn="cat", weights=weights)
            return
        self.emit(ir.Concat, "cat", tensors, out, axis=dim % out.dim())

    def _resize(self, packet, args, kwargs, out) -> None:
        mode = "bilinear" if packet is aten.upsample_bilinear2d else "nearest"
        self.emit(ir.Resize, "resize", [args[0]], out, mode=mode)

    def _softmax(self, packet, args, kwargs, out) -> None:
        self.emit(ir.Softmax, "softmax", [args[0]], out, axis=args[1] % out.dim())

    def _elementwise(self, fn: str, args, out) -> None:
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        inputs = [t for t in tensors if self.is_activation(t)]
        # A constant operand with one element is a scalar, not a weight: the
        # ONNX frontend reads the same constants the same way.
        weights = tuple(tuple(t.shape) for t in tensors if not self.is_activation(t) and t.numel() > 1)
        if fn == "hardtanh" and tuple(args[1:3]) == (0.0, 6.0):
            fn = "relu6"
        self.emit(ir.Elementwise, fn, inputs, out, fn=fn, weights=weights)


def _flat(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _flat(v)]
    return [value]


def _meta_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Meta stand-ins for the parameters and buffers, none requiring grad.

    ``ModuleTracker``'s pre-forward hook registers a grad hook on every input
    tensor that requires grad; a parameter passed straight into a submodule
    (CaiT's class token, PiT's, an attention-pool head's query) is such an
    input, and under ``no_grad`` the hook fails ("Expected gradient function
    to be set", ``torch/autograd/graph.py``). Detached copies are what
    ``module.requires_grad_(False)`` would give, without touching the module.
    """
    state = dict(module.named_parameters(remove_duplicate=False))
    state.update(module.named_buffers(remove_duplicate=False))
    # Tied tensors (one parameter under several names, CoaT's shared convs) must stay one tensor:
    # functional_call refuses different values for names it knows are tied.
    stand_ins: dict[int, torch.Tensor] = {}
    for v in state.values():
        if id(v) not in stand_ins:
            stand_ins[id(v)] = v.detach() if v.device.type == "meta" else torch.empty_like(v, device="meta")
    return {k: stand_ins[id(v)] for k, v in state.items()}


def trace_module(
    module: torch.nn.Module,
    input_shape: tuple[int, ...],
    *,
    name: str,
    source: str = "",
    resolution: int | None = None,
) -> ir.Network:
    """Trace ``module`` at ``input_shape`` (batch first) into the IR.

    The module itself is left untouched: it runs through
    ``torch.func.functional_call`` with meta copies of its parameters and
    buffers, in eval mode.
    """
    state = _meta_state(module)
    leaves = {n for n, m in module.named_modules() if n and not any(m.children())}
    tracker = ModuleTracker()
    tracer = _Tracer(tracker, leaves)
    x = torch.empty(input_shape, device="meta")
    tracer.new_name(x, "input")
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), tracker, tracer:
            y = torch.func.functional_call(module, state, (x,))
    finally:
        module.train(was_training)
    outputs = tuple(dict.fromkeys(tracer.names[id(t)] for t in _flat(y) if tracer.is_activation(t)))
    return ir.Network(
        name=name,
        source=source,
        resolution=resolution,
        inputs=(("input", tuple(input_shape)),),
        outputs=outputs,
        layers=tuple(tracer.layers),
        unsupported_ops=dict(tracer.unsupported),
        weight_only_ops=dict(tracer.weight_only),
        weight_only_flops=tracer.weight_only_flops,
    )


def flop_counter_total(module: torch.nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass by ``torch.utils.flop_counter`` (the reference)."""
    from torch.utils.flop_counter import FlopCounterMode

    module.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        torch.func.functional_call(module, _meta_state(module), (torch.empty(input_shape, device="meta"),))
    return counter.get_total_flops()


def _versions() -> str:
    return f"torch {torch.__version__.split('+')[0]}"


def timm_model(name: str, resolution: int | None = None) -> tuple[torch.nn.Module, tuple[int, ...]]:
    """A timm model on the meta device and its input shape (default input size)."""
    try:
        import timm
    except ImportError:
        raise RooflineError("timm models need timm: pip install 'roofline[torch]'") from None
    if not timm.is_model(name):
        raise RooflineError(f"unknown timm model {name!r}: see timm.list_models() for names")
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    channels, height, width = model.pretrained_cfg.get("input_size", (3, 224, 224))
    if resolution is not None:
        height = width = resolution
    return model, (1, channels, height, width)


def torchvision_model(name: str, resolution: int | None = None) -> tuple[torch.nn.Module, tuple[int, ...]]:
    """A torchvision model on the meta device and its input shape (its weights' crop size)."""
    try:
        import torchvision
    except ImportError:
        raise RooflineError("torchvision models need torchvision: pip install 'roofline[torch]'") from None
    if name not in torchvision.models.list_models():
        raise RooflineError(f"unknown torchvision model {name!r}: see torchvision.models.list_models()")
    try:
        with torch.device("meta"):
            try:  # segmentation/detection builders load a pretrained backbone unless told not to
                model = torchvision.models.get_model(name, weights=None, weights_backbone=None)
            except TypeError:
                model = torchvision.models.get_model(name, weights=None)
    except OSError as exc:  # a download it still attempts (URLError is an OSError), e.g. offline
        raise RooflineError(
            f"torchvision:{name} tried to download weights and failed ({exc}); "
            "trace it where the network is reachable, or export it to ONNX"
        ) from None
    size = resolution
    if size is None:
        try:
            size = torchvision.models.get_model_weights(name).DEFAULT.transforms().crop_size[0]
        except (ValueError, AttributeError, IndexError):
            size = 224
    return model, (1, 3, size, size)


def reparameterized(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` in its deployed form: a copy with every reparameterisable block fused.

    RepVGG's parallel 3x3/1x1/identity branches become one 3x3 conv, MobileOne's
    and FastViT's over-parameterised branches likewise (Ding et al., "RepVGG",
    CVPR 2021, section 3.3; Vasu et al., "MobileOne", CVPR 2023, section 3), by
    timm's own ``timm.utils.model.reparameterize_model``, the function timm
    points to for inference. The blocks build their fused convs with plain
    constructors, so the copy is fused under ``torch.device("meta")``: the new
    convs land on meta with the rest, and only shapes are computed.
    """
    try:
        from timm.utils.model import reparameterize_model
    except ImportError:
        raise RooflineError(
            "--reparam needs timm.utils.model.reparameterize_model (timm 0.9 or later): pip install -U timm"
        ) from None
    with torch.device("meta"):
        return reparameterize_model(model)


def from_timm(name: str, resolution: int | None = None, reparam: bool = False) -> ir.Network:
    """timm model ``name`` traced at ``resolution`` (default: its own); ``reparam``: in deployed form."""
    import timm

    model, shape = timm_model(name, resolution)
    deployed = ""
    if reparam:
        model = reparameterized(model)
        deployed = ", reparameterized by timm.utils.model.reparameterize_model"
    return trace_module(
        model, shape, name=name, resolution=shape[-1],
        source=f"timm:{name} (timm {timm.__version__}, {_versions()}{deployed})",
    )  # fmt: skip


def from_torchvision(name: str, resolution: int | None = None) -> ir.Network:
    import torchvision

    model, shape = torchvision_model(name, resolution)
    return trace_module(
        model, shape, name=name, resolution=shape[-1],
        source=f"torchvision:{name} (torchvision {torchvision.__version__}, {_versions()})",
    )  # fmt: skip
