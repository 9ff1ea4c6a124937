"""Folding (FoldedCNNs): stack f images on the channel axis and widen every layer by sqrt(f).

Hoang, Hosseini, ... "FoldedCNNs" (DESIGN.md, "Folding"): a batch of N images
runs as N/f samples of C x f input channels; every layer's width is scaled by
sqrt(f) and the classifier emits f predictions. For a dense convolution with
C_in -> C_out channels on P output pixels, per sample

    FLOPs  = 2 P C_in C_out k^2   ->  2 P (s C_in)(s C_out) k^2 = f x FLOPs      (s = sqrt(f))
    act    = P (C_in + C_out)     ->  s x act

so over the N/f samples the FLOPs are unchanged and activation traffic drops by
sqrt(f): AI rises by sqrt(f) once weights (which grow by f) are negligible, i.e.
at large batch. The argument needs both channel counts to scale by s. It does
not hold, and ``fold`` lists each such layer with why, for

* depthwise convolutions: FLOPs are linear in the width, so per image they drop
  by sqrt(f) and their AI stays put;
* grouped convolutions and other fixed channel groups (``roofline.model.channels``):
  their widths are kept, so their FLOPs per image drop by f;
* the first layer (input channels x f, not x s) and the classifier (outputs x f),
  whose FLOPs per image grow by sqrt(f).

Widths round to the nearest multiple of 8: FP16 tensor-core kernels need
channel counts divisible by 8 (NVIDIA Deep Learning Performance Guide,
"Tensor Core Requirements"), and ``roofline.model.channels.scale_widths`` keeps
residual ties, SE gates and depthwise convs consistent.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from roofline.errors import RooflineError
from roofline.model.channels import channel_groups, scale_widths
from roofline.model.ir import Conv, Layer, Linear, Network

#: Channel multiple that FP16 tensor cores need (module doc).
WIDTH_MULTIPLE = 8


@dataclass(frozen=True)
class Deviation:
    """A FLOP-carrying layer where the folding argument does not hold."""

    layer: str
    reason: str
    flops_ratio: float  # FLOPs per image after / before

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "reason": self.reason, "flops_ratio": self.flops_ratio}


@dataclass(frozen=True)
class Folded:
    network: Network  # one sample = ``factor`` images
    factor: int
    width_scale: float
    width_multiple: int
    exceptions: tuple[Deviation, ...]


def _why(before: Layer, reads_input: bool, writes_output: bool) -> str:
    if reads_input:
        return "first layer: input channels grow by f, not sqrt(f)"
    if writes_output:
        return "classifier: emits f predictions, outputs grow by f"
    if isinstance(before, Conv) and before.depthwise:
        return "depthwise conv: FLOPs are linear in width, so they drop by sqrt(f) per image"
    if isinstance(before, Conv) and before.groups > 1:
        return "grouped conv: channels kept (groups would have to change)"
    return "channel width kept (a fixed channel group, see roofline.model.channels)"


def fold(network: Network, factor: int, multiple: int = WIDTH_MULTIPLE) -> Folded:
    """The folded IR of ``network`` (module doc); its batch-1 sample holds ``factor`` images."""
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise RooflineError(f"fold factor must be a positive integer, got {factor!r}")
    if network.images_per_sample != 1:
        raise RooflineError(f"{network.name} is already folded; fold the original network")
    net = network.with_batch(1)
    if len(net.inputs) != 1 or len(net.inputs[0][1]) < 2 or len(net.outputs) != 1:
        raise RooflineError(f"{net.name}: folding needs one image input and one output")
    groups = channel_groups(net)
    (in_name, in_shape), out_name = net.inputs[0], net.outputs[0]
    in_group = next(g for g in groups if in_name in g.tensors)
    out_group = next((g for g in groups if out_name in g.tensors), None)
    fixed = {in_group.id: in_shape[1] * factor}
    if out_group is not None:
        fixed[out_group.id] = out_group.width * factor
    scale = math.sqrt(factor)
    try:
        folded = scale_widths(net, scale, multiple, fixed_widths=fixed)
    except ValueError as exc:
        raise RooflineError(f"cannot fold {net.name}: {exc}") from None
    folded = dataclasses.replace(
        folded,
        name=f"{net.name}-fold{factor}",
        inputs=((in_name, (1, in_shape[1] * factor, *in_shape[2:])),),
        images_per_sample=factor,
    )
    exceptions = []
    for before, after in zip(net.layers, folded.layers, strict=True):
        if not isinstance(before, (Conv, Linear)) or not before.flops():
            continue
        ratio = after.flops() / factor / before.flops()
        # Rounding to a multiple of 8 alone moves a layer's FLOPs by a few percent.
        dense = not (isinstance(before, Conv) and before.groups > 1)
        if dense and in_name not in before.inputs and out_name != before.output and abs(ratio - 1) < 0.35:
            continue
        exceptions.append(
            Deviation(before.name, _why(before, in_name in before.inputs, out_name == before.output), ratio)
        )
    return Folded(folded, factor, scale, multiple, tuple(exceptions))


def largest_foldable(batch: int, factor: int) -> int:
    """The largest multiple of ``factor`` not above ``batch`` (``--batch max`` when folding)."""
    if batch < factor:
        raise RooflineError(
            f"the largest batch that fits is {batch}, below the fold factor {factor}; "
            "use a smaller --fold/--factor or a GPU with more memory"
        )
    return batch - batch % factor


def fold_batch(batch: int, factor: int) -> int:
    """Samples per batch once folded: N / f, which must be whole."""
    if batch % factor:
        raise RooflineError(
            f"batch {batch} is not a multiple of the fold factor {factor}; "
            f"pass --batch {max(factor, batch - batch % factor)}"
        )
    return batch // factor
