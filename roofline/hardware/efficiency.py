"""Kernel-class efficiencies: the gap between datasheet rates and what each class of kernel reaches.

One uniform efficiency over-predicts exactly the networks built from grouped,
depthwise and short-reduction layers (DESIGN.md, "Engines, accumulators and
kernel classes"), so each class of kernel has its own few terms, each with a
physical reason and a source in ``data/efficiency.toml`` (per GPU generation).
``roofline.analysis.predict`` applies them:

    dense GEMM / conv  FLOPs / (P x q x K / (K + k_fill) x C / ceil_a(C))
    attention          FLOPs / (P x q x attention_compute)
    grouped conv       min(the dense formula per group, FLOPs / (P_cc x cuda_core_compute))
    depthwise conv     max(FLOPs / (P_cc x cuda_core_compute), bytes / (B_ds x depthwise_bandwidth))
    everything         memory time bytes / B

with P = datasheet tensor peak x gemm_compute (for the engine's accumulator),
B = datasheet bandwidth x bandwidth, q the wave model's quantization, K the
reduction length, C the channels per group in it, ceil_a rounding up to the
tensor-core alignment, and P_cc the FP32 CUDA-core peak. A calibration file
measured on the GPU overrides the terms it measured
(``roofline.hardware.calibration``).
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from roofline.hardware.gpus import GPU

#: Terms a calibration file may measure (``python -m kernels.calibrate``'s class microbenchmarks).
CALIBRATED_TERMS = ("cuda_core_compute", "depthwise_bandwidth", "attention_compute")


@dataclass(frozen=True)
class KernelEfficiency:
    """The per-class terms of a GPU generation (module doc; fields as in ``data/efficiency.toml``)."""

    generation: str
    gemm_compute: float
    bandwidth: float
    k_fill_elems: float
    tensor_alignment_bytes: int
    cuda_core_compute: float
    depthwise_bandwidth: float
    attention_compute: float

    def __post_init__(self) -> None:
        for name in (
            "gemm_compute",
            "bandwidth",
            "cuda_core_compute",
            "depthwise_bandwidth",
            "attention_compute",
        ):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"efficiency {name} must be in (0, 1], got {getattr(self, name)}")
        if self.k_fill_elems < 0 or self.tensor_alignment_bytes < 1:
            raise ValueError("k_fill_elems must be >= 0 and tensor_alignment_bytes >= 1")

    def replace(self, **changes: Any) -> KernelEfficiency:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@cache
def _data() -> dict[str, Any]:
    return tomllib.loads(resources.files("roofline.hardware.data").joinpath("efficiency.toml").read_text())


def generation_of(gpu: GPU) -> str:
    for name, spec in _data()["generation"].items():
        if gpu.compute_capability in spec["compute_capabilities"]:
            return name
    return "default"


@cache
def default_efficiency(generation: str, segment: str = "datacenter") -> KernelEfficiency:
    """The terms of ``generation`` (``generation_of``) for ``segment``: ``[default]``, then
    ``[default.<segment>]``, then the generation's table, then its ``[generation.X.<segment>]``."""
    data = _data()
    spec: dict[str, Any] = {}
    for table in (data["default"], data["generation"].get(generation, {})):
        spec.update({k: v for k, v in table.items() if not isinstance(v, dict)})
        spec.update(table.get(segment, {}))
    spec.pop("compute_capabilities", None)
    label = f"{generation} {segment}" if segment != "datacenter" else generation
    return KernelEfficiency(generation=label, **spec)


def efficiency_for(gpu: GPU) -> KernelEfficiency:
    return default_efficiency(generation_of(gpu), gpu.segment)
