"""GPU-aware width adjustment: move layer widths to the right edges of wave steps.

The greedy algorithm of the tail-effect study (DESIGN.md, "GPU-aware width
adjustment"), over channel groups (``roofline.model.channels``) so that widths tied by
residual adds, depthwise convs or SE gates move together:

* Candidates of a free group g: the optimal widths (right step edges) of the
  sum of its producers' staircases (``roofline.analysis.staircase``), over multiples of
  ``multiple`` (8: FP16 tensor-core alignment) up to twice the width.
  down_g is the nearest candidate below the width w_g, up_g the nearest above.
* Latency gain LG_g = L(net) - L(net, g -> down_g); parameter gain
  PG_g(x) = params(net, g -> x) - params(net). L is the whole network's
  predicted latency, so a consumer's longer or shorter K dimension counts.
* Latency mode (target L_new <= delta x L_old): take groups by LG_g, largest
  first. A shrink whose PG would leave (-tau, tau) is compensated by widening
  other groups to up_h, cheapest latency per parameter first, as long as the
  total stays inside the bound and the widening costs less than the shrink
  gains; otherwise that shrink is skipped. The total PG is counted on the
  combined network (a producer's and its consumer's gains do not add). Evaluate the resulting network; if
  it misses the target, double tau and repeat, until every shrink is allowed.
* Accuracy mode: widen groups to up_g, largest PG first, keeping each widening
  whose network latency stays <= L_old: more parameters at no latency cost.

Gains are measured one group at a time against the original network, as in the
study; the final network is evaluated as a whole, and that figure is reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from roofline.analysis.predict import FusedNetwork, evaluate, fused_for
from roofline.analysis.staircase import staircase
from roofline.analysis.target import Target
from roofline.errors import RooflineError
from roofline.model.channels import ChannelGroup, channel_groups, resize
from roofline.model.ir import Network

MODES = ("latency", "accuracy")


@dataclass(frozen=True)
class Move:
    group: ChannelGroup
    width: int
    latency_gain_s: float  # L(net) - L(net with this move alone)
    param_gain: int


@dataclass(frozen=True)
class Adjustment:
    network: Network  # the adjusted network
    mode: str
    target: Target
    batch: int
    latency_before_s: float
    latency_after_s: float
    params_before: int
    params_after: int
    target_s: float | None  # latency mode only
    tau: float  # the parameter bound the result was found with
    moves: tuple[Move, ...]
    groups: tuple[ChannelGroup, ...] = field(repr=False)

    @property
    def met(self) -> bool:
        return self.target_s is None or self.latency_after_s <= self.target_s

    def to_dict(self) -> dict[str, Any]:
        moved = {m.group.id: m for m in self.moves}
        return {
            "model": self.network.name,
            "mode": self.mode,
            "gpu": self.target.gpu.key,
            "dtype": self.target.dtype,
            "batch": self.batch,
            "latency_before_s": self.latency_before_s,
            "latency_after_s": self.latency_after_s,
            "target_s": self.target_s,
            "target_met": self.met,
            "params_before": self.params_before,
            "params_after": self.params_after,
            "tau": self.tau,
            "groups": [
                {
                    "id": g.id,
                    "producers": list(g.producers),
                    "old_width": g.width,
                    "new_width": moved[g.id].width if g.id in moved else g.width,
                    "latency_gain_s": moved[g.id].latency_gain_s if g.id in moved else 0.0,
                    "param_gain": moved[g.id].param_gain if g.id in moved else 0,
                }
                for g in self.groups
                if g.producers and not g.fixed
            ],
        }


class _Model:
    """Latency and parameters of the network with some groups resized."""

    def __init__(self, network: Network, target: Target, batch: int):
        self.network, self.target, self.batch = network, target, batch

    def __call__(self, widths: Mapping[int, int]) -> tuple[float, int] | None:
        try:
            net = resize(self.network, widths)
        except ValueError:  # e.g. an option-A shortcut would have to drop channels
            return None
        est = evaluate(net, self.target, self.batch)
        return est.latency_s, net.params()


def candidates(
    fused: FusedNetwork, group: ChannelGroup, target: Target, batch: int, multiple: int = 8
) -> list[int]:
    """Right step edges of the group's summed producer staircases (multiples of ``multiple``)."""
    widths = np.arange(multiple, 2 * group.width + multiple, multiple)
    edges: set[int] = set()
    for producer in group.producers:
        stairs = staircase(fused, producer, target, batch, widths)
        edges.update(int(w) for w in stairs.edges())
    return sorted(edges)


def adjust_widths(
    network: Network,
    target: Target,
    batch: int = 1,
    *,
    mode: str = "latency",
    tau: float = 0.01,
    delta: float = 0.95,
    multiple: int = 8,
) -> Adjustment:
    """Run the greedy adjustment; ``tau`` is a fraction of the network's parameters."""
    if mode not in MODES:
        raise RooflineError(f"unknown mode {mode!r}: choose latency or accuracy")
    if not 0 < delta <= 1 or tau <= 0:
        raise RooflineError(f"need 0 < delta <= 1 and tau > 0, got delta={delta}, tau={tau}")
    model = _Model(network, target, batch)
    base_latency, base_params = model({})
    fused = fused_for(network, target)
    groups = channel_groups(network)
    free = [g for g in groups if g.producers and not g.fixed]
    if not free:
        raise RooflineError(f"{network.name}: no layer width may change (every channel group is fixed)")
    downs, ups = [], []
    for g in free:
        cands = candidates(fused, g, target, batch, multiple)
        for chosen, out in ((max((c for c in cands if c < g.width), default=None), downs),
                            (min((c for c in cands if c > g.width), default=None), ups)):  # fmt: skip
            result = model({g.id: chosen}) if chosen is not None else None
            if result is not None:
                out.append(Move(g, chosen, base_latency - result[0], result[1] - base_params))

    def finish(moves: list[Move], bound: float, target_s: float | None) -> Adjustment:
        latency, params = model({m.group.id: m.width for m in moves}) or (base_latency, base_params)
        adjusted = resize(network, {m.group.id: m.width for m in moves})
        return Adjustment(adjusted, mode, target, batch, base_latency, latency, base_params, params,
                          target_s, bound, tuple(moves), groups)  # fmt: skip

    if mode == "accuracy":
        kept: list[Move] = []
        for move in sorted((u for u in ups if u.latency_gain_s >= 0), key=lambda u: -u.param_gain):
            trial = [*kept, move]
            latency, _ = model({m.group.id: m.width for m in trial}) or (np.inf, 0)
            if latency <= base_latency:
                kept = trial
        return finish(kept, 0.0, None)

    target_s = delta * base_latency
    bound = tau * base_params
    shrinks = sorted((d for d in downs if d.latency_gain_s > 0), key=lambda d: -d.latency_gain_s)
    widen = sorted(ups, key=lambda u: -u.latency_gain_s / max(u.param_gain, 1))  # cheapest per parameter

    def param_gain(moves: list[Move]) -> float:
        # Measured on the combined network: gains of a producer and its consumer do not add.
        try:
            return resize(network, {m.group.id: m.width for m in moves}).params() - base_params
        except ValueError:
            return np.inf

    while True:
        chosen: list[Move] = []
        for shrink in shrinks:
            used = {m.group.id for m in chosen}
            if shrink.group.id in used:
                continue
            trial = [*chosen, shrink]
            total, cost = param_gain(trial), 0.0
            for up in widen:
                if -bound < total < bound:
                    break
                if up.group.id in used or up.group.id == shrink.group.id:
                    continue
                if cost - up.latency_gain_s >= shrink.latency_gain_s:
                    continue  # widening would eat the latency the shrink gains
                grown = param_gain([*trial, up])
                if grown < bound:
                    trial, total, cost = [*trial, up], grown, cost - up.latency_gain_s
            if -bound < total < bound:
                chosen = trial
        result = finish(chosen, bound / base_params, target_s)
        if result.met or bound > 2 * base_params:
            return result
        bound *= 2
