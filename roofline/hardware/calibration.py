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
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from roofline.dtypes import DTYPE_BYTES
from roofline.errors import RooflineError
from roofline.files import read_document
from roofline.hardware import efficiency
from roofline.hardware.gpus import GPU, Roof, get_gpu
from roofline.schema import Fields

CALIBRATION_FORMAT = "roofline-calibration"


@dataclass(frozen=True)
class Calibration:
    """Rates measured on one GPU: the achievable roof that replaces the default efficiencies."""

    gpu: str  # the database key it was measured on
    source: str
    dram_bytes_s: float
    peak_flops_s: Mapping[str, float]  # per dtype; a dtype it lacks falls back to the defaults
    #: Kernel-class terms measured by the class microbenchmarks (``efficiency.CALIBRATED_TERMS``).
    kernel_efficiency: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))


#: How far a measured rate may exceed the datasheet figure before the file is refused. Datasheet peaks
#: are counted at the boost clock, and GPU Boost can run the SMs above it: not the datacenter parts,
#: which cap the clock at the datasheet boost (V100 SXM2 1530, A100 1410, H100 SXM 1980 MHz), but
#: GeForce and TITAN cards can sit some percent higher while power and temperature allow, and a
#: STREAM-like copy can gain a little from L2 hits. A dense GEMM also never runs at 100% of the peak
#: of its clock, so a rate more than 10% above the datasheet is not a fast GPU: it is a wrong FLOP
#: count, a sparse or lower-precision kernel, a timing bug, or another GPU's file, and using it would
#: report utilizations above 100% (a 9000 TFLOP/s file made ``analyze`` print 552%).
ABOVE_DATASHEET = 0.10

_FIX = "re-run python -m kernels.calibrate on the GPU"


def _rate(value: float, unit: str) -> str:
    scale = 1e12 if unit == "TFLOP/s" else 1e9
    return f"{value / scale:.4g} {unit}"


def _check_rate(fields: Fields, name: str, measured: float, datasheet: float, unit: str, gpu: GPU) -> None:
    """Refuse ``measured`` when it is more than ``ABOVE_DATASHEET`` over the datasheet figure."""
    if measured > datasheet * (1 + ABOVE_DATASHEET):
        raise fields.error(
            name,
            f"is {_rate(measured, unit)}, {measured / datasheet:.0%} of the datasheet's "
            f"{_rate(datasheet, unit)} for the {gpu.name}: more than {ABOVE_DATASHEET:.0%} above it, which "
            "no clock boost explains (a wrong FLOP count, timer or GPU)",
        )


def load_calibration(path: str | Path, gpu: GPU) -> Calibration:
    """Read a calibration file (JSON) and check it belongs to ``gpu`` and stays under its datasheet.

    Format, written by ``python -m kernels.calibrate``::

        {"format": "roofline-calibration", "version": 1, "gpu": "h100-sxm",
         "source": "kernels/calibrate.py on <host>, <date>",
         "dram_bytes_s": 3.0e12, "peak_flops_s": {"fp16": 7.9e14, ...}}

    Every rate must be positive and at most ``ABOVE_DATASHEET`` above the GPU's datasheet figure;
    each dtype must be one the GPU database has a datasheet peak for, so that it can be checked.
    """
    data = read_document(path, "calibration file", CALIBRATION_FORMAT)
    fields = Fields(data, str(path), _FIX)
    name = fields.string("gpu")
    try:
        owner = get_gpu(name).key
    except RooflineError:
        raise fields.error("gpu", f"{name!r} is not in the GPU database (see `roofline gpus`)") from None
    if owner != gpu.key:
        wrong = Fields(data, str(path), f"pass a calibration of {gpu.key}, or measure one on it with "
                                        "python -m kernels.calibrate")  # fmt: skip
        raise wrong.error("gpu", f"says the file was measured on {owner}, not {gpu.key}")
    source = fields.string("source")
    bandwidth = fields.number("dram_bytes_s", positive=True)
    _check_rate(fields, "dram_bytes_s", bandwidth, gpu.dram_bandwidth_bytes_s, "GB/s", gpu)
    rates = fields.object("peak_flops_s")
    peaks = {}
    for dtype in rates.data:
        if dtype not in DTYPE_BYTES:
            raise rates.error(str(dtype), f"is not a dtype: use one of {', '.join(DTYPE_BYTES)}")
        if dtype not in gpu.peak_flops_s:
            have = ", ".join(gpu.peak_flops_s)
            raise Fields(data, str(path), f"remove it (the {gpu.name} has: {have})", "peak_flops_s").error(
                dtype, f"has no datasheet figure for the {gpu.name} to check it against"
            )
        peaks[dtype] = rates.number(dtype, positive=True)
        _check_rate(rates, dtype, peaks[dtype], gpu.peak_flops_s[dtype], "TFLOP/s", gpu)
    terms = fields.object("kernel_efficiency", default={})
    measured = {}
    for name in terms.data:
        if name not in efficiency.CALIBRATED_TERMS:
            choices = ", ".join(efficiency.CALIBRATED_TERMS)
            raise terms.error(str(name), f"is not a calibrated term: use {choices}")
        measured[name] = terms.number(name, positive=True)
        if measured[name] > 1:
            raise terms.error(name, f"is {measured[name]:g}: an efficiency is a fraction in (0, 1]")
    return Calibration(owner, source, bandwidth, MappingProxyType(peaks), MappingProxyType(measured))


def achievable_roof(
    gpu: GPU,
    dtype: str,
    calibration: Calibration | None = None,
    accumulator: str = "fp16",
    kernel_efficiency: efficiency.KernelEfficiency | None = None,
) -> Roof:
    """The roof a well-optimized engine reaches (module doc; ``roofline.hardware.efficiency``).

    ``accumulator`` picks the tensor rate on parts where FP32 accumulation is slower
    (``GPU.peak``). A calibration's GEMM rate was measured with torch, which accumulates
    in FP32, so it replaces only an FP32-accumulate roof where the two rates differ.
    """
    datasheet = gpu.datasheet_roof(dtype, accumulator)
    if calibration is not None and accumulator != "fp32" and gpu.peak(dtype, "fp32") != gpu.peak(dtype):
        calibration = None
    if calibration is not None:
        flops = calibration.peak_flops_s.get(dtype)
        if flops is not None:
            return Roof("achievable", flops, calibration.dram_bytes_s, f"calibration: {calibration.source}")
    eff = kernel_efficiency or efficiency.efficiency_for(gpu)
    return Roof(
        kind="achievable",
        flops_s=datasheet.flops_s * eff.gemm_compute,
        dram_bytes_s=datasheet.dram_bytes_s * eff.bandwidth,
        source=(
            f"datasheet x {eff.generation} efficiencies (GEMM {eff.gemm_compute:g}, "
            f"bandwidth {eff.bandwidth:g}; see roofline.hardware.efficiency)"
        ),
    )
