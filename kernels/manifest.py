"""The benchmark manifest (``perf_tests/manifest.toml``): which benchmarks exist and their ids.

Pure (no torch, no GPU): the suite, the fresh-process re-run
(``python -m kernels.benchmark``) and the unit tests all read benchmarks from
here, so one id means the same experiment everywhere.

A model's ``device`` is ``"cuda"`` (the default) or ``"cpu"``: the suite's CPU mode
(``--perf-device cpu``, ``perf_tests/manifest-cpu.toml``) measures with host timers
on the CPU, with the backends that run there (``CPU_BACKENDS``). A CPU benchmark's
id ends in ``-cpu``, so no CPU figure can be taken for a GPU one.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernels.backends.base import CPU_BACKENDS, REGISTRY
from roofline.dtypes import DTYPE_BYTES
from roofline.model import zoo

DEFAULT_MANIFEST = Path(__file__).resolve().parent.parent / "perf_tests" / "manifest.toml"
CPU_MANIFEST = DEFAULT_MANIFEST.with_name("manifest-cpu.toml")
FRONTENDS = ("timm", "torchvision")
DEVICES = ("cuda", "cpu")


class ManifestError(ValueError):
    """A one-line description of what is wrong with the manifest and where."""


@dataclass(frozen=True)
class BenchSpec:
    id: str
    kind: str  # "model", "gemm" or "copy"
    dtype: str = "fp16"
    model: str | None = None  # roofline name: zoo model or timm:/torchvision: spec
    resolution: int | None = None
    batch: int | None = None
    backend: str | None = None
    tolerance: float | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    device: str = "cuda"

    @property
    def source(self) -> str:
        """What the backends instantiate: the zoo model's timm/torchvision origin, or the name itself."""
        return zoo.ZOO_SOURCES.get(self.model, self.model)


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ManifestError(f"{where} must be a positive integer, got {value!r}")
    return value


def _model_specs(index: int, table: Mapping, defaults: Mapping) -> list[BenchSpec]:
    where = f"model #{index + 1}"
    name = table.get("name")
    known = isinstance(name, str) and (name in zoo.ZOO_SOURCES or name.partition(":")[0] in FRONTENDS)
    if not known:
        raise ManifestError(
            f"{where}: {name!r} is neither a zoo model (`roofline zoo`) nor timm:/torchvision:NAME"
        )
    backends = table.get("backends", defaults.get("backends", ["torch"]))
    unknown = [b for b in backends if b not in REGISTRY]
    if unknown:
        raise ManifestError(f"{where} ({name}): unknown backend {unknown[0]!r}; choose {', '.join(REGISTRY)}")
    batches = table.get("batches")
    if not isinstance(batches, list) or not batches:
        raise ManifestError(f"{where} ({name}): batches must be a non-empty list")
    dtype = table.get("dtype", defaults.get("dtype", "fp16"))
    if dtype not in DTYPE_BYTES:
        raise ManifestError(f"{where} ({name}): unknown dtype {dtype!r}; choose {', '.join(DTYPE_BYTES)}")
    tolerance = table.get("tolerance")
    if tolerance is not None and not (isinstance(tolerance, float) and 0 < tolerance < 1):
        raise ManifestError(f"{where} ({name}): tolerance must be a fraction in (0, 1), got {tolerance!r}")
    resolution = _positive_int(table.get("resolution", 224), f"{where} ({name}) resolution")
    device = table.get("device", defaults.get("device", "cuda"))
    if device not in DEVICES:
        raise ManifestError(f"{where} ({name}): unknown device {device!r}; choose {' or '.join(DEVICES)}")
    if device == "cpu" and any(b not in CPU_BACKENDS for b in backends):
        gpu_only = next(b for b in backends if b not in CPU_BACKENDS)
        raise ManifestError(
            f"{where} ({name}): backend {gpu_only!r} runs on a GPU only; "
            f"a cpu model takes {', '.join(CPU_BACKENDS)}"
        )
    stem = name.partition(":")[2] or name
    suffix = "-cpu" if device == "cpu" else ""
    return [
        BenchSpec(
            id=f"{stem}-b{batch}-{backend}{suffix}",
            kind="model",
            dtype=dtype,
            model=name,
            resolution=resolution,
            batch=_positive_int(batch, f"{where} ({name}) batch"),
            backend=backend,
            tolerance=tolerance,
            device=device,
        )  # fmt: skip
        for batch in batches
        for backend in backends
    ]


def _micro_specs(table: Mapping) -> list[BenchSpec]:
    dtypes = table.get("gemm_dtypes", [])
    bad = [d for d in dtypes if d not in DTYPE_BYTES]
    if bad:
        raise ManifestError(
            f"microbench: unknown gemm dtype {bad[0]!r}; choose from {', '.join(DTYPE_BYTES)}"
        )
    size = _positive_int(table.get("gemm_size", 8192), "microbench gemm_size")
    specs = [BenchSpec(id=f"gemm-{d}", kind="gemm", dtype=d, params={"size": size}) for d in dtypes]
    if "copy_bytes" in table:
        nbytes = _positive_int(table["copy_bytes"], "microbench copy_bytes")
        specs.append(BenchSpec(id="copy-d2d", kind="copy", dtype="fp16", params={"nbytes": nbytes}))
    return specs


def load_manifest(path: str | Path = DEFAULT_MANIFEST) -> dict[str, BenchSpec]:
    """Benchmark id -> spec, in manifest order; ManifestError (one line) on bad content."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestError(f"manifest {path} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ManifestError(f"manifest {path} is not valid TOML ({exc})") from None
    defaults = raw.get("defaults", {})
    specs = [s for i, t in enumerate(raw.get("model", [])) for s in _model_specs(i, t, defaults)]
    specs += _micro_specs(raw.get("microbench", {}))
    ids: dict[str, BenchSpec] = {}
    for spec in specs:
        if spec.id in ids:
            raise ManifestError(f"manifest {path}: benchmark {spec.id} is listed twice")
        ids[spec.id] = spec
    return ids
