"""Execution engines: the kernels a network becomes, the accumulator they use, what each launch costs.

The same network runs as different kernels on different engines (DESIGN.md,
"Engines, accumulators and kernel classes"): TensorRT folds batch norm and
runs activations and a residual add in the conv epilogue, eager PyTorch
launches one kernel per op, torch.compile fuses pointwise chains around
cuDNN/cuBLAS calls, ONNX Runtime's CUDA EP does its documented subset. Bytes,
arithmetic intensity and time all follow from the kernels, so the engine is
part of the ``Target``. Each engine is data (``data/engines.toml``, with the
source of every rule and figure): a ``FusionPolicy``, the tensor-core
accumulator, and two per-kernel costs, so that per kernel

    time_k = max(roofline time_k + kernel_overhead_s, host_issue_s)

(the host issues kernels ahead of the GPU, so it is the limit only for
kernels shorter than its issue time; DESIGN.md, "Measuring on a GPU").
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from roofline.errors import RooflineError
from roofline.model.fusion import ACTIVATIONS, FusionPolicy

DEFAULT_ENGINE = "tensorrt"


@dataclass(frozen=True)
class Engine:
    key: str
    name: str
    aliases: tuple[str, ...]
    fusion: FusionPolicy
    accumulator: str  # "fp16" or "fp32": what FP16/FP8 tensor-core math accumulates in
    kernel_overhead_s: float
    host_issue_s: float
    sources: MappingProxyType

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "accumulator": self.accumulator,
            "kernel_overhead_s": self.kernel_overhead_s,
            "host_issue_s": self.host_issue_s,
        }


def _policy(key: str, raw: dict[str, Any]) -> FusionPolicy:
    acts = raw.pop("epilogue_activations")
    acts = ACTIVATIONS if acts == "all" else frozenset(acts)
    if not acts <= ACTIVATIONS:
        raise ValueError(f"engines.toml: {key}: unknown activations {sorted(acts - ACTIVATIONS)}")
    return FusionPolicy(epilogue_activations=acts, **raw)


@cache
def _database() -> tuple[dict[str, Engine], dict[str, str]]:
    raw = tomllib.loads(resources.files("roofline.analysis.data").joinpath("engines.toml").read_text())
    engines, aliases = {}, {}
    for key, spec in raw["engine"].items():
        engine = Engine(
            key=key,
            name=spec["name"],
            aliases=tuple(spec.get("aliases", ())),
            fusion=_policy(key, dict(spec["fusion"])),
            accumulator=spec["accumulator"],
            kernel_overhead_s=float(spec["kernel_overhead_s"]),
            host_issue_s=float(spec["host_issue_s"]),
            sources=MappingProxyType(dict(spec["sources"])),
        )
        engines[key] = engine
        for alias in (key, *engine.aliases):
            aliases[alias.lower().replace("_", "-")] = key
    return engines, aliases


def engine_keys() -> list[str]:
    return list(_database()[0])


def get_engine(name: str) -> Engine:
    """An engine by key or alias (``engines.toml``)."""
    engines, aliases = _database()
    key = aliases.get(name.strip().lower().replace("_", "-"))
    if key is None:
        close = difflib.get_close_matches(name.lower(), aliases, n=2)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise RooflineError(f"unknown engine {name!r}: {hint}choose one of {', '.join(engines)}")
    return engines[key]
