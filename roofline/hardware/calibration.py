"""The achievable roof: a calibration measured on the GPU, or the datasheet x default efficiencies.

Two roofs exist for every GPU and datatype (DESIGN.md, "Core definitions"):
the datasheet one (``GPU.datasheet_roof``) and the achievable one, what a
well-optimized kernel actually reaches. The achievable roof comes from a
calibration file that ``python -m kernels.calibrate`` writes from
microbenchmarks (best large GEMM, STREAM-like copy); without one, it is the
datasheet figure scaled by the documented default efficiencies in
``roofline.hardware.efficiency``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from roofline.errors import RooflineError
from roofline.files import read_document
from roofline.hardware import efficiency
from roofline.hardware.gpus import GPU, Roof, get_gpu

CALIBRATION_FORMAT = "roofline-calibration"


@dataclass(frozen=True)
class Calibration:
    """Rates measured on one GPU: the achievable roof that replaces the default efficiencies."""

    gpu: str  # the database key it was measured on
    source: str
    dram_bytes_s: float
    peak_flops_s: Mapping[str, float]  # per dtype; a dtype it lacks falls back to the defaults


def load_calibration(path: str | Path, gpu: GPU) -> Calibration:
    """Read a calibration file (JSON) and check it belongs to ``gpu``.

    Format, written by ``python -m kernels.calibrate``::

        {"format": "roofline-calibration", "version": 1, "gpu": "h100-sxm",
         "source": "kernels/calibrate.py on <host>, <date>",
         "dram_bytes_s": 3.0e12, "peak_flops_s": {"fp16": 7.9e14, ...}}
    """
    data = read_document(path, "calibration file", CALIBRATION_FORMAT)
    try:
        owner = get_gpu(str(data["gpu"])).key
        source = str(data["source"])
        bandwidth = float(data["dram_bytes_s"])
        peaks = {str(k): float(v) for k, v in dict(data["peak_flops_s"]).items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise RooflineError(f"calibration file {path} is malformed ({exc}); regenerate it") from None
    if owner != gpu.key:
        raise RooflineError(f"calibration file {path} was measured on {owner}, not {gpu.key}")
    if bandwidth <= 0 or any(v <= 0 for v in peaks.values()):
        raise RooflineError(f"calibration file {path} has a non-positive rate; regenerate it")
    return Calibration(owner, source, bandwidth, MappingProxyType(peaks))


def achievable_roof(gpu: GPU, dtype: str, calibration: Calibration | None = None) -> Roof:
    """The roof a well-optimized engine reaches (module doc; ``roofline.hardware.efficiency``)."""
    datasheet = gpu.datasheet_roof(dtype)
    if calibration is not None:
        flops = calibration.peak_flops_s.get(dtype)
        if flops is not None:
            return Roof("achievable", flops, calibration.dram_bytes_s, f"calibration: {calibration.source}")
    return Roof(
        kind="achievable",
        flops_s=datasheet.flops_s * efficiency.COMPUTE,
        dram_bytes_s=datasheet.dram_bytes_s * efficiency.BANDWIDTH,
        source=(
            f"datasheet x default efficiencies (compute {efficiency.COMPUTE}, "
            f"bandwidth {efficiency.BANDWIDTH}; see roofline.hardware.efficiency)"
        ),
    )
