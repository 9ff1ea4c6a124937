"""GPU database: datasheet figures from ``data/gpus.toml``, looked up by name or by device.

Each GPU's datasheet roof (dense peak FLOP/s per dtype, DRAM bandwidth) is
what NVIDIA publishes, with the source of every figure in the data file. The
achievable roof, what kernels actually reach, is ``roofline.hardware.calibration``'s.
Every report names the roof it used and where the figure came from.

A tensor-core peak also depends on the accumulator: GeForce parts run FP16 and
FP8 tensor math with FP32 accumulation at half the FP16-accumulate rate, which
is the one their datasheets headline (DESIGN.md, "Engines, accumulators and
kernel classes"). ``GPU.peak`` takes the accumulator and picks the rate.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from types import MappingProxyType

from roofline.dtypes import DTYPE_BYTES
from roofline.errors import RooflineError

#: Tensor-core accumulator precisions a peak can be asked for. "fp16" is what the
#: datasheet headline assumes for fp16/fp8; cuBLAS/cuDNN (and so torch autocast)
#: accumulate FP16 GEMMs in FP32. GeForce parts run FP32 accumulation at half rate
#: (NVIDIA Ampere GA102 whitepaper, Ada and RTX Blackwell whitepapers, Appendix A);
#: datacenter and workstation parts run both at one rate.
ACCUMULATORS = ("fp16", "fp32")


@dataclass(frozen=True)
class SMLimits:
    """Per-SM occupancy limits of a compute capability (CUDA Programming Guide)."""

    max_threads_per_sm: int
    max_blocks_per_sm: int
    registers_per_sm: int
    max_shared_memory_per_sm_bytes: int


@dataclass(frozen=True)
class GPU:
    key: str
    name: str
    aliases: tuple[str, ...]
    compute_capability: str
    sms: int
    boost_clock_mhz: float | None
    dram_bandwidth_bytes_s: float
    memory_bytes: int
    l2_bytes: int
    peak_flops_s: Mapping[str, float]
    sm_limits: SMLimits
    sources: Mapping[str, str]
    #: Dense FLOP/s with FP32 accumulation, only for the dtypes where it is slower than
    #: ``peak_flops_s`` (GeForce fp16/fp8); empty on parts that run both at one rate.
    peak_flops_s_fp32_accumulate: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    #: "geforce" or "datacenter" (workstation and embedded parts included): GeForce boards sustain clocks
    #: above their rated boost and have their own efficiency terms (``data/efficiency.toml``).
    segment: str = "datacenter"

    def datasheet_roof(self, dtype: str, accumulator: str = "fp16") -> Roof:
        flops_s = self.peak(dtype, accumulator)
        source = self.sources["peak_flops_s"]
        if dtype in self.peak_flops_s_fp32_accumulate:
            # The two rates differ on this part, so the roof must say which one it is.
            if accumulator == "fp32":
                source = self.sources.get("peak_flops_s_fp32_accumulate", source)
            source = f"{source}; {dtype} with {accumulator.upper()} accumulate"
        return Roof(
            kind="datasheet",
            flops_s=flops_s,
            dram_bytes_s=self.dram_bandwidth_bytes_s,
            source=f"{source}; {self.sources['dram_bandwidth_bytes_s']}",
        )

    def peak(self, dtype: str, accumulator: str = "fp16") -> float:
        """Dense datasheet FLOP/s for ``dtype`` with tensor-core accumulation in ``accumulator``.

        The headline ``peak_flops_s`` is the FP16-accumulate rate for fp16/fp8; where the part
        runs FP32 accumulation slower, ``peak_flops_s_fp32_accumulate`` has that rate. bf16,
        tf32, fp32 and int8 always accumulate in FP32/INT32, so their headline is the only rate.
        """
        if accumulator not in ACCUMULATORS:
            raise RooflineError(
                f"unknown accumulator {accumulator!r}: choose one of {', '.join(ACCUMULATORS)}"
            )
        if dtype not in DTYPE_BYTES:
            raise RooflineError(f"unknown dtype {dtype!r}: choose one of {', '.join(DTYPE_BYTES)}")
        if dtype not in self.peak_flops_s:
            have = ", ".join(self.peak_flops_s)
            raise RooflineError(
                f"{self.name} has no datasheet {dtype} peak (it has: {have}); pick one of those dtypes"
            )
        if accumulator == "fp32" and dtype in self.peak_flops_s_fp32_accumulate:
            return self.peak_flops_s_fp32_accumulate[dtype]
        return self.peak_flops_s[dtype]


@dataclass(frozen=True)
class Roof:
    """The two numbers a roofline needs, and where they came from.

    attainable FLOP/s = min(flops_s, AI x dram_bytes_s) (Williams et al.,
    "Roofline", CACM 2009); CMR = flops_s / dram_bytes_s (DESIGN.md).
    """

    kind: str  # "datasheet" or "achievable"
    flops_s: float
    dram_bytes_s: float
    source: str

    @property
    def cmr(self) -> float:
        return self.flops_s / self.dram_bytes_s

    def attainable_flops_s(self, arithmetic_intensity: float) -> float:
        return min(self.flops_s, arithmetic_intensity * self.dram_bytes_s)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "flops_s": self.flops_s,
            "dram_bytes_s": self.dram_bytes_s,
            "cmr": self.cmr,
            "source": self.source,
        }


def _normalize(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(" ", "-")


def _fp32_accumulate_peaks(key: str, spec: Mapping) -> MappingProxyType:
    """The FP32-accumulate table of one ``gpus.toml`` entry, checked against its headline.

    FP32 accumulation is never faster than FP16 accumulation, and a rate for a dtype
    the part has no headline for cannot be looked up (``GPU.peak`` checks the headline first).
    """
    headline = spec["peak_flops_s"]
    table = {k: float(v) for k, v in spec.get("peak_flops_s_fp32_accumulate", {}).items()}
    where = f"gpus.toml [gpu.{key}] peak_flops_s_fp32_accumulate"
    for dtype, flops_s in table.items():
        if dtype not in headline:
            raise RooflineError(
                f"{where} has {dtype}, which peak_flops_s lacks: add its headline rate or drop the entry"
            )
        if flops_s > headline[dtype]:
            raise RooflineError(
                f"{where}.{dtype} = {flops_s:g} exceeds peak_flops_s.{dtype} = {headline[dtype]:g}: "
                "FP32 accumulation is never faster; fix the figure"
            )
    return MappingProxyType(table)


def _parse_database(raw: Mapping) -> tuple[dict[str, GPU], dict[str, str]]:
    """GPUs by key and keys by normalized alias, from the parsed ``gpus.toml``."""
    limits = {
        cc: SMLimits(**{k: v for k, v in spec.items() if k != "source"})
        for cc, spec in raw["compute_capability"].items()
    }
    gpus: dict[str, GPU] = {}
    aliases: dict[str, str] = {}
    for key, spec in raw["gpu"].items():
        gpu = GPU(
            key=key,
            name=spec["name"],
            aliases=tuple(spec.get("aliases", ())),
            compute_capability=spec["compute_capability"],
            sms=spec["sms"],
            boost_clock_mhz=spec.get("boost_clock_mhz"),
            dram_bandwidth_bytes_s=float(spec["dram_bandwidth_bytes_s"]),
            memory_bytes=int(spec["memory_bytes"]),
            l2_bytes=int(spec["l2_bytes"]),
            peak_flops_s=MappingProxyType({k: float(v) for k, v in spec["peak_flops_s"].items()}),
            sm_limits=limits[spec["compute_capability"]],
            sources=MappingProxyType(dict(spec["sources"])),
            peak_flops_s_fp32_accumulate=_fp32_accumulate_peaks(key, spec),
            segment=spec.get("segment", "datacenter"),
        )
        gpus[key] = gpu
        for alias in (key, *gpu.aliases):
            aliases[_normalize(alias)] = key
    return gpus, aliases


@cache
def _database() -> tuple[dict[str, GPU], dict[str, str]]:
    return _parse_database(
        tomllib.loads(resources.files("roofline.hardware.data").joinpath("gpus.toml").read_text())
    )


def all_gpus() -> list[GPU]:
    return list(_database()[0].values())


def get_gpu(name: str) -> GPU:
    """Look a GPU up by key or alias, case-insensitively."""
    gpus, aliases = _database()
    key = aliases.get(_normalize(name))
    if key is None:
        close = difflib.get_close_matches(_normalize(name), aliases, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise RooflineError(f"unknown GPU {name!r}: {hint}run `roofline gpus` for the list")
    return gpus[key]


def match_device(name: str, compute_capability: str, sm_count: int, memory_bytes: int) -> GPU:
    """The database entry for a device as the driver reports it (NVML/torch name, CC, SMs, memory).

    Compute capability and SM count must match exactly. They do not separate
    SKUs of one die (H100 SXM, H100 NVL and H200 all have 132 SMs at CC 9.0),
    so the entry sharing most name tokens with the reported name wins
    ("A100-PCIE-40GB" -> a100-pcie-40gb), then the one with fewest tokens the
    reported name lacks, then the closest memory size. The second rule parts
    SKUs whose names nest: "RTX PRO 6000 Blackwell Workstation Edition" shares
    every token of its own entry and of the Max-Q one's, and only the Max-Q
    entry has tokens ("max", "q") the name lacks; both have 188 SMs and 96 GB.
    """
    candidates = [g for g in all_gpus() if g.compute_capability == compute_capability and g.sms == sm_count]
    if not candidates:
        raise RooflineError(
            f"{name} (CC {compute_capability}, {sm_count} SMs) is not in the GPU database: "
            "add it to roofline/hardware/data/gpus.toml"
        )
    reported = set(re.split(r"[^a-z0-9]+", name.lower()))

    def rank(gpu: GPU) -> tuple[int, int, float]:
        tokens = set(re.split(r"[^a-z0-9]+", f"{gpu.key} {gpu.name}".lower())) - {""}
        return -len(tokens & reported), len(tokens - reported), abs(gpu.memory_bytes - memory_bytes)

    return min(candidates, key=rank)
