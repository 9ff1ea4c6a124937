"""Channel groups: the sets of channel axes that must keep one width.

GPU-aware width adjustment (DESIGN.md, "GPU-aware width adjustment") moves a
layer's width to the right edge of a wave step, and folding (DESIGN.md,
"Folding") widens every layer by sqrt(f). Neither may change one layer alone: a
residual add needs both operands equally wide, a depthwise conv and the BN after
it have exactly as many channels as their input, an SE gate must match the
tensor it scales. So widths are not per layer but per *channel group*: the
union of every tensor whose channel axis (dim 1; a flatten to (N, C) keeps it)
is tied to another's by such an op. A group is what a designer widens; the
dense Conv/Linear layers writing it are its ``producers``.

Some groups may not change (``fixed``): the network's input and output, the
channels of a grouped conv (its ``groups`` would have to change too), anything
an op we cannot reason about touches (matmul, unsupported ops, reshapes, channel
slices), and concat outputs, whose width is not chosen but is the sum of their
inputs and is recomputed by ``resize`` (so a concat whose group is otherwise
fixed freezes its inputs). Option-A shortcuts (an Elementwise ``pad`` adding
zero channels) start a new free group that must stay at least as wide as the
one it pads.

A tensor read through a channel-changing view (a slice ``x[:, :k]``, or a
flatten of C x H x W) appears as ``TENSOR@READER``; both ends are fixed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from roofline.model.ir import (
    Concat,
    Conv,
    Elementwise,
    Layer,
    Linear,
    MatMul,
    Network,
    Norm,
    Shape,
    Softmax,
    Unsupported,
)


@dataclass(frozen=True)
class ChannelGroup:
    """Tensors whose channel axis has one width, and the dense layers that write it."""

    id: int  # stable index, in order of first appearance in network.layers
    width: int
    producers: tuple[str, ...]  # dense Conv/Linear layers whose output channels are this group
    tensors: tuple[str, ...]
    fixed: bool
    reason: str  # why fixed; "" when free


@dataclass(frozen=True)
class _Analysis:
    groups: tuple[ChannelGroup, ...]
    group_of: Mapping[str, int]  # node (tensor or view) -> group id
    slots: tuple[tuple[tuple[str | None, ...], str | None], ...]  # per layer: input nodes, output node
    hard: frozenset[int]  # fixed by something other than being a concat's sum
    concats: tuple[int, ...]  # indices of channel-axis Concat layers
    pads: tuple[tuple[int, int, str], ...]  # (input group, output group, layer) of channel pads


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.width: dict[str, int] = {}
        self.fixes: list[tuple[str, str, bool]] = []  # (node, reason, hard), in the order found

    def node(self, key: str, width: int) -> str:
        self.width.setdefault(key, width)
        self.parent.setdefault(key, key)
        return key

    def find(self, key: str) -> str:
        while self.parent[key] != key:
            self.parent[key] = key = self.parent[self.parent[key]]
        return key

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(b)] = self.find(a)

    def fix(self, nodes: tuple[str | None, ...], reason: str, hard: bool = True) -> None:
        self.fixes.extend((n, reason, hard) for n in nodes if n is not None)


def _is_channel_pad(layer: Layer) -> bool:
    # A pad that keeps the spatial dims pads channels only. Recognising it even when it adds zero
    # channels keeps the groups of a resized network (stages equally wide) those of the original.
    if not isinstance(layer, Elementwise) or layer.fn != "pad":
        return False
    src, out = layer.input_shapes[0], layer.output_shape
    return len(src) >= 2 and len(out) >= 2 and (src[1] != out[1] or src[2:] == out[2:])


def _tie(uf: _UnionFind, layer: Layer, ins: tuple[str | None, ...], out: str | None) -> None:
    """Shape-preserving ops: the output shares the group of each same-width input."""
    if out is None:
        uf.fix(ins, f"reshape at {layer.name}")
        return
    c, tied, odd = layer.output_shape[1], False, False
    for node, shape in zip(ins, layer.input_shapes, strict=True):
        if node is None:
            continue
        if shape[1] == c:
            uf.union(node, out)
            tied = True
        elif shape[1] == 1:  # widening a broadcast (N, 1, ...) operand would break the broadcast
            uf.fix((node,), f"broadcast operand of {layer.name}")
        else:
            odd = True
    if odd or not tied:
        uf.fix((*ins, out), f"reshape at {layer.name}")


def _analyse(network: Network) -> _Analysis:
    uf = _UnionFind()
    shape_of: dict[str, Shape] = {}
    producers: dict[str, list[str]] = {}
    slots, concats, pads = [], [], []
    for name, shape in network.inputs:
        shape_of[name] = shape
        if len(shape) >= 2:
            uf.fix((uf.node(name, shape[1]),), "network input")

    def read(layer: Layer, tensor: str, shape: Shape) -> str | None:
        if len(shape) < 2:
            return None
        src = shape_of.get(tensor, shape)
        if len(src) >= 2 and src[1] == shape[1]:
            return uf.node(tensor, shape[1])
        reason = f"channel view of {tensor} at {layer.name}"
        if len(src) >= 2:
            uf.fix((uf.node(tensor, src[1]),), reason)
        view = uf.node(f"{tensor}@{layer.name}", shape[1])
        uf.fix((view,), reason)
        return view

    for i, layer in enumerate(network.layers):
        ins = tuple(read(layer, t, s) for t, s in zip(layer.inputs, layer.input_shapes, strict=True))
        rank = len(layer.output_shape)
        out = uf.node(layer.output, layer.output_shape[1]) if rank >= 2 else None
        shape_of[layer.output] = layer.output_shape
        touched = (*ins, out)
        if (isinstance(layer, Conv) and layer.groups == 1) or isinstance(layer, Linear):
            if out is not None:
                producers.setdefault(out, []).append(layer.name)
            if isinstance(layer, Linear) and (rank != 2 or len(layer.input_shapes[0]) != 2):
                uf.fix(touched, f"linear on rank-{len(layer.input_shapes[0])} input {layer.name}")
        elif isinstance(layer, Conv):
            if layer.groups == layer.in_channels == layer.out_channels:
                uf.union(ins[0], out)  # depthwise: one filter per channel, width follows the input
            else:
                # Simplification: the channels of any other grouped conv are frozen rather than
                # rescaling ``groups`` or the per-group width.
                if layer.in_channels == layer.out_channels:
                    uf.union(ins[0], out)
                uf.fix(touched, f"grouped conv {layer.name}")
        elif isinstance(layer, Concat) and layer.axis % rank == 1:
            uf.fix((out,), f"concat {layer.name} (width is the sum of its inputs)", hard=False)
            concats.append(i)
        elif isinstance(layer, MatMul):
            uf.fix(touched, f"matmul {layer.name}")
        elif isinstance(layer, Unsupported):
            uf.fix(touched, f"unsupported op {layer.target} at {layer.name}")
        elif isinstance(layer, Softmax) and layer.axis % rank == 1:
            uf.fix(touched, f"softmax over channels at {layer.name}")
        elif _is_channel_pad(layer) and ins[0] is not None and out is not None:
            pads.append((ins[0], out, layer.name))  # option-A shortcut: zero channels appended
        else:
            _tie(uf, layer, ins, out)
        slots.append((ins, out))
    for name in network.outputs:
        if len(shape_of.get(name, ())) >= 2:
            uf.fix((name,), "network output")

    ids: dict[str, int] = {}
    for key in uf.parent:  # dicts keep insertion order: first appearance
        ids.setdefault(uf.find(key), len(ids))
    group_of = {key: ids[uf.find(key)] for key in uf.parent}
    members: list[list[str]] = [[] for _ in ids]
    reasons: list[list[str]] = [[] for _ in ids]
    for key in uf.parent:
        members[group_of[key]].append(key)
    for key, reason, _ in uf.fixes:
        reasons[group_of[key]].append(reason)
    hard = {group_of[key] for key, _, is_hard in uf.fixes if is_hard}
    grown = True
    while grown:  # a concat that may not change width freezes its inputs (e.g. MixNet's split convs)
        grown = False
        for i in concats:
            ins, out = slots[i]
            if group_of[out] not in hard:
                continue
            for g in {group_of[n] for n in ins if n is not None} - hard:
                reasons[g].append(f"input of concat {network.layers[i].name}, which is fixed")
                hard.add(g)
                grown = True
    groups = tuple(
        ChannelGroup(
            id=g,
            width=uf.width[keys[0]],
            producers=tuple(p for k in keys for p in producers.get(k, ())),
            tensors=tuple(keys),
            fixed=bool(reasons[g]),
            reason=reasons[g][0] if reasons[g] else "",
        )
        for g, keys in enumerate(members)
    )
    return _Analysis(
        groups=groups,
        group_of=group_of,
        slots=tuple(slots),
        hard=frozenset(hard),
        concats=tuple(concats),
        pads=tuple((group_of[a], group_of[b], name) for a, b, name in pads),
    )


def channel_groups(network: Network) -> tuple[ChannelGroup, ...]:
    """The channel groups of ``network``, numbered in order of first appearance.

    A dense Conv or Linear starts a new group on its output; depthwise convs,
    elementwise ops (residual adds, SE gates), norms, pools, resizes and
    non-channel softmaxes join their output to their same-width inputs.
    """
    return _analyse(network).groups


def _new_widths(a: _Analysis, widths: Mapping[int, int], unfix: Collection[int] = ()) -> dict[int, int]:
    new = {g.id: g.width for g in a.groups}
    for gid, width in widths.items():
        if gid not in new:
            raise ValueError(f"unknown channel group {gid} (the network has {len(new)})")
        group = a.groups[gid]
        if width < 1:
            raise ValueError(f"group {gid}: width must be >= 1, got {width}")
        if group.fixed and width != group.width and gid not in unfix:
            raise ValueError(f"group {gid} is fixed ({group.reason}): cannot resize {group.width} -> {width}")
        new[gid] = width
    for check in (False, True):  # the second pass only confirms: a group may hold several concats
        for i in a.concats:
            ins, out = a.slots[i]
            gid, total = a.group_of[out], sum(new[a.group_of[n]] for n in ins if n is not None)
            if (check and new[gid] != total) or (gid in a.hard and total != a.groups[gid].width):
                raise ValueError(
                    f"{a.groups[gid].reason}: inputs now sum to {total}, group {gid} cannot follow"
                )
            new[gid] = total
    for gin, gout, name in a.pads:
        if new[gout] < new[gin]:
            raise ValueError(f"pad {name} would shrink {new[gin]} channels to {new[gout]} (group {gout})")
    return new


def resize(network: Network, widths: Mapping[int, int], unfix: Collection[int] = ()) -> Network:
    """``network`` with channel group ``id`` set to ``widths[id]`` (others unchanged).

    Every tensor's channel dim follows its group; Norm.channels, a depthwise
    conv's ``groups``, per-channel Elementwise weights ((C,) or (C, 1, 1)) and
    concat outputs (the sum of their inputs) are recomputed; spatial dims never
    change. Raises ValueError for an unknown group, a width < 1, a new width on
    a fixed group not listed in ``unfix``, or a pad that would drop channels.
    """
    a = _analyse(network)
    new = _new_widths(a, widths, unfix)

    def width(node: str | None, old: int) -> int:
        # Unchanged groups keep each tensor's own width (a fixed view may differ from its source).
        if node is None or new[a.group_of[node]] == a.groups[a.group_of[node]].width:
            return old
        return new[a.group_of[node]]

    layers = []
    for layer, (ins, out) in zip(network.layers, a.slots, strict=True):
        in_shapes = tuple(
            s if n is None else (s[0], width(n, s[1]), *s[2:])
            for n, s in zip(ins, layer.input_shapes, strict=True)
        )
        old_c = layer.output_shape[1] if out is not None else 0
        c = width(out, old_c)
        if in_shapes == layer.input_shapes and c == old_c:
            layers.append(layer)
            continue
        changes: dict[str, object] = {"input_shapes": in_shapes}
        if out is not None:
            changes["output_shape"] = (layer.output_shape[0], c, *layer.output_shape[2:])
        if isinstance(layer, Norm) and layer.channels == old_c:
            changes["channels"] = c
        if isinstance(layer, Conv) and layer.groups > 1 and layer.groups == layer.in_channels == old_c:
            changes["groups"] = c
        if isinstance(layer, Elementwise) and out is not None:
            changes["weights"] = tuple(
                (c, *w[1:]) if w in ((old_c,), (old_c, 1, 1)) else w for w in layer.weights
            )
        layers.append(dataclasses.replace(layer, **changes))
    return dataclasses.replace(network, layers=tuple(layers))


def scale_widths(
    network: Network, factor: float, multiple: int = 8, fixed_widths: Mapping[int, int] | None = None
) -> Network:
    """Scale every free group that has a producer by ``factor`` (DESIGN.md, "Folding").

    Widths round to the nearest multiple of ``multiple``, at least ``multiple``.
    A pad's output group is scaled too and rounded up to stay >= its input.
    ``fixed_widths`` sets fixed groups explicitly (folding's input and output).
    """
    a = _analyse(network)
    pad_outs = {gout for _, gout, _ in a.pads}
    new = {
        g.id: max(multiple, multiple * math.floor(g.width * factor / multiple + 0.5))
        for g in a.groups
        if not g.fixed and (g.producers or g.id in pad_outs)
    }
    changed = True
    while changed:  # widths only grow, so this settles
        changed = False
        for gin, gout, _ in a.pads:
            need = new.get(gin, a.groups[gin].width)
            if gout in new and new[gout] < need:
                new[gout], changed = multiple * math.ceil(need / multiple), True
    fixed_widths = dict(fixed_widths or {})
    return resize(network, {**new, **fixed_widths}, unfix=fixed_widths)
