"""Performance results and baselines: one schema for both, one file per GPU SKU.

A results file is what one ``nox -s perf`` run measured; a baseline is a results
file committed under ``baselines/<gpu key>.json`` through the explicit update
flow (``--update-baselines``), never by hand. Both are JSON::

    {"format": "roofline-perf-results", "version": 1,
     "environment": {"gpu_name": "NVIDIA H100 80GB HBM3", "gpu_key": "h100-sxm",
                     "compute_capability": "9.0", "sm_count": 132, "driver_version": "550.54.15",
                     "cuda_driver_version": "12.4", "power_limit_w": 700.0,
                     "max_sm_clock_mhz": 1980, "max_mem_clock_mhz": 2619,
                     "backends": {"torch": "2.5.1", "tensorrt": "10.3.0"}, ...},
     "benchmarks": {"resnet50-b32-torch": {
         "samples": [5210.3, ...],        # window throughputs, in ``unit`` (img/s for models)
         "unit": "img/s", "median": 5204.1, "spread": 0.004,
         "flops_per_image": 8.2e9,        # null for microbenchmarks
         "peak_flops": 9.89e14,           # the datasheet peak utilization refers to
         "utilization": 0.043, "tolerance": null,
         "provenance": {"date": "...", "host": "...", "commit": "...", "command": "..."},
         ...}}}                           # other keys (telemetry, prediction) are kept as-is

``spread`` is the relative robust spread 1.4826 x MAD / median of the samples
(the normal-consistent MAD; Rousseeuw & Croux, JASA 1993), which the gate uses
as the benchmark's measured noise.

Two files are comparable only when every ``COMPARED_FIELDS`` entry of their
environments matches and the versions of the backends both files used match:
a different GPU, driver, CUDA, power limit, clock ceiling or runtime is a
different experiment (DESIGN.md, "Measuring on a GPU").

A CPU run (the suite's CPU mode) says ``"device": "cpu"`` in its environment
(its GPU fields are null) and is compared on ``CPU_COMPARED_FIELDS`` too; a file
without ``device`` is a GPU run's. A CPU file and a GPU file never compare.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from roofline import files
from roofline.errors import RooflineError

RESULTS_FORMAT = "roofline-perf-results"
COMPARED_FIELDS = (
    "gpu_name",
    "compute_capability",
    "sm_count",
    "memory_total_bytes",
    "driver_version",
    "cuda_driver_version",
    "power_limit_w",
    "max_sm_clock_mhz",
    "max_mem_clock_mhz",
)
#: Compared as well, where a file has them: the device kind ("cuda" when absent) and the CPU fingerprint.
CPU_COMPARED_FIELDS = ("device", "cpu_model", "cpu_count")
MAD_TO_SIGMA = 1.4826  # 1 / Phi^-1(3/4): MAD -> standard deviation for normal data


def relative_spread(samples: np.ndarray) -> float:
    """1.4826 x median(|x - median(x)|) / median(x) (Rousseeuw & Croux, JASA 1993)."""
    samples = np.asarray(samples, dtype=float)
    median = float(np.median(samples))
    return MAD_TO_SIGMA * float(np.median(np.abs(samples - median))) / median


@dataclass(frozen=True)
class Benchmark:
    """One benchmark's entry. ``extra`` holds everything the gate does not read."""

    id: str
    samples: tuple[float, ...]
    unit: str
    median: float
    spread: float
    flops_per_image: float | None
    peak_flops: float | None
    utilization: float | None
    tolerance: float | None = None
    provenance: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_samples(
        cls,
        id: str,
        samples,
        unit: str,
        *,
        flops_per_image: float | None = None,
        peak_flops: float | None = None,
        utilization: float | None = None,
        tolerance: float | None = None,
        provenance: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Benchmark:
        """An entry whose median and spread are computed from ``samples``.

        Utilization = median x flops_per_image / peak_flops (DESIGN.md, "Core
        definitions") when both are known; microbenchmarks pass their own.
        """
        samples = tuple(_positive(s, f"{id} sample") for s in samples)
        if not samples:
            raise ValueError(f"{id}: no samples")
        median = float(np.median(samples))
        if utilization is None and flops_per_image and peak_flops:
            utilization = median * flops_per_image / peak_flops
        return cls(
            id=id, samples=samples, unit=unit, median=median, spread=relative_spread(samples),
            flops_per_image=flops_per_image, peak_flops=peak_flops, utilization=utilization,
            tolerance=tolerance, provenance=MappingProxyType(dict(provenance or {})),
            extra=MappingProxyType(dict(extra or {})),
        )  # fmt: skip

    @property
    def utilization_samples(self) -> np.ndarray | None:
        """Per-window utilization: utilization scales with throughput at fixed work and peak."""
        if self.utilization is None:
            return None
        return np.asarray(self.samples) * (self.utilization / self.median)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            "samples": list(self.samples),
            "unit": self.unit,
            "median": self.median,
            "spread": self.spread,
            "flops_per_image": self.flops_per_image,
            "peak_flops": self.peak_flops,
            "utilization": self.utilization,
            "tolerance": self.tolerance,
            "provenance": dict(self.provenance),
        }


@dataclass(frozen=True)
class PerfResults:
    environment: Mapping[str, Any]
    benchmarks: Mapping[str, Benchmark]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": RESULTS_FORMAT,
            "version": 1,
            "environment": dict(self.environment),
            "benchmarks": {key: self.benchmarks[key].to_dict() for key in sorted(self.benchmarks)},
        }

    def backends_used(self) -> set[str]:
        return {str(b.extra["backend"]) for b in self.benchmarks.values() if "backend" in b.extra}


def _positive(value: Any, what: str) -> float:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a positive finite number, got {value!r}")
    return float(value)


def _optional_positive(entry: Mapping, key: str, what: str) -> float | None:
    value = entry.get(key)
    return None if value is None else _positive(value, what)


def _benchmark(key: str, entry: Any) -> Benchmark:
    if not isinstance(entry, dict):
        raise ValueError(f"benchmark {key!r} is not an object")
    samples = entry.get("samples")
    if not isinstance(samples, list) or not samples:
        raise ValueError(f"benchmark {key!r} has no samples")
    samples = tuple(_positive(s, f"{key} sample") for s in samples)
    median = _positive(entry.get("median"), f"{key} median")
    if not math.isclose(median, float(np.median(samples)), rel_tol=1e-6):
        raise ValueError(f"benchmark {key!r}: median {median} is not the median of its samples")
    tolerance = entry.get("tolerance")
    if tolerance is not None and not 0 < _positive(tolerance, f"{key} tolerance") < 1:
        raise ValueError(f"benchmark {key!r}: tolerance must be a fraction in (0, 1), got {tolerance}")
    unit = entry.get("unit")
    if not isinstance(unit, str) or not unit:
        raise ValueError(f"benchmark {key!r} has no unit")
    flops = _optional_positive(entry, "flops_per_image", f"{key} flops_per_image")
    peak = _optional_positive(entry, "peak_flops", f"{key} peak_flops")
    utilization = _optional_positive(entry, "utilization", f"{key} utilization")
    if flops and peak and utilization and not math.isclose(utilization, median * flops / peak, rel_tol=1e-6):
        raise ValueError(f"benchmark {key!r}: utilization is not median x flops_per_image / peak_flops")
    known = {"samples", "unit", "median", "spread", "flops_per_image", "peak_flops", "utilization",
             "tolerance", "provenance"}  # fmt: skip
    return Benchmark(
        id=key, samples=samples, unit=unit, median=median, spread=relative_spread(samples),
        flops_per_image=flops, peak_flops=peak, utilization=utilization,
        tolerance=tolerance, provenance=MappingProxyType(dict(entry.get("provenance") or {})),
        extra=MappingProxyType({k: v for k, v in entry.items() if k not in known}),
    )  # fmt: skip


def load_results(path: str | Path, what: str = "results file") -> PerfResults:
    """Read and check a results or baseline file; one-line RooflineError when it is bad."""
    data = files.read_document(path, what, RESULTS_FORMAT)
    try:
        environment = data["environment"]
        benchmarks = data["benchmarks"]
        if not isinstance(environment, dict) or not isinstance(benchmarks, dict):
            raise ValueError("environment and benchmarks must be objects")
        missing = [f for f in (*COMPARED_FIELDS, "backends") if f not in environment]
        if missing:
            raise ValueError(f"environment lacks {', '.join(missing)}")
        if not isinstance(environment["backends"], dict):
            raise ValueError("environment.backends must be an object of backend versions")
        parsed = {key: _benchmark(key, entry) for key, entry in benchmarks.items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise RooflineError(f"{what} {path} is corrupt ({exc}); re-measure it") from None
    return PerfResults(MappingProxyType(dict(environment)), MappingProxyType(parsed))


def write_results(path: str | Path, results: PerfResults) -> None:
    """Write atomically: a reader sees the old file or the new one (``roofline.files``)."""
    files.write_text(path, json.dumps(results.to_dict(), indent=1, sort_keys=True) + "\n")


def incomparable(baseline: PerfResults, results: PerfResults) -> list[str]:
    """The environment fields that differ, as "field: baseline X, results Y" (empty when comparable)."""

    def field(env: Mapping[str, Any], name: str) -> Any:
        return env.get(name, "cuda" if name == "device" else None)

    base_env, new_env = baseline.environment, results.environment
    diffs = [
        f"{name}: baseline {field(base_env, name)!r}, results {field(new_env, name)!r}"
        for name in (*CPU_COMPARED_FIELDS[:1], *COMPARED_FIELDS, *CPU_COMPARED_FIELDS[1:])
        if field(base_env, name) != field(new_env, name)
    ]
    base_versions = dict(baseline.environment.get("backends") or {})
    new_versions = dict(results.environment.get("backends") or {})
    for backend in sorted(baseline.backends_used() & results.backends_used()):
        if base_versions.get(backend) != new_versions.get(backend):
            diffs.append(
                f"backends.{backend}: baseline {base_versions.get(backend)!r}, "
                f"results {new_versions.get(backend)!r}"
            )
    return diffs
