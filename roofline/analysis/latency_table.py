"""Per-kernel latency lookup table: network latency = sum of per-kernel latencies.

The NAS-for-GPUs study (DESIGN.md, "Latency lookup table") estimates
latency(network) ~ sum_k latency(config_k, input shape_k). Its per-layer table
overestimated end-to-end latency by ~75 us on average because whole-network
engines fuse more, so the unit here is a fused kernel (``roofline.model.fusion.Kernel``,
what an engine launches) at a concrete batch. A table belongs to one (GPU,
dtype, backend); entries are predicted by the roofline model unless measured
ones (from microbenchmarks) override them, and a network estimate counts both.

Key (``kernel_key``): deterministic and free of layer/tensor names, so repeated
identical blocks share one entry::

    conv(dilation=1x1,kernel=3x3,padding=1x1,stride=1x1)+norm(channels=16,fn=batch)
    +elementwise(fn=relu)|in=8x16x32x32|out=8x16x32x32|w=2320      (one line)

i.e. each layer as ``op(field=value,...)`` (``Layer.to_dict()`` without names,
sorted; tuples as ``AxB``), joined by ``+``, then the shapes the kernel reads and
writes at the key's batch and its weight elements. A layer's own shapes follow
it as ``@in,in>out`` only where those do not already imply them.

File format (``save``/``load``), JSON with sorted keys; ``source`` is "predicted" or
"measured", ``samples`` (timed runs) null for predictions::

    {"format": "roofline-latency-table", "version": 1, "gpu": "v100-sxm2", "dtype": "fp16",
     "backend": "tensorrt", "entries": {"<key>": {"latency_s": 1.2e-05, "source": "measured",
     "samples": 200, "provenance": "kernels/... on <host>, <date>"}}}
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from roofline import files
from roofline.analysis.predict import Estimate
from roofline.analysis.target import Target
from roofline.dtypes import DTYPE_BYTES
from roofline.errors import RooflineError
from roofline.hardware.gpus import get_gpu
from roofline.model.fusion import Kernel
from roofline.model.ir import Shape, scale_batch
from roofline.schema import Fields

TABLE_FORMAT = "roofline-latency-table"
SOURCES = ("predicted", "measured")
_PLAIN = re.compile(r"[A-Za-z0-9_.:-]*")
_NAMES_AND_SHAPES = frozenset({"name", "inputs", "output", "input_shapes", "output_shape"})


def _shape(shape: Shape, batch: int) -> str:
    return "x".join(map(str, scale_batch(shape, batch, 1))) or "scalar"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return "x".join(map(str, value))
        return "[" + ",".join(_value(v) for v in value) + "]"
    if isinstance(value, str) and not _PLAIN.fullmatch(value):
        return json.dumps(value)  # quoted, so a stray "+" or "|" cannot forge another key
    return str(value)


def kernel_key(kernel: Kernel, batch: int) -> str:
    """The table key of ``kernel`` (at batch 1, as in ``FusedNetwork``) run at ``batch``."""
    in_shapes = tuple(s for _, s in kernel.inputs)
    tokens = []
    for layer in kernel.layers:
        fields = {k: v for k, v in layer.to_dict().items() if k not in _NAMES_AND_SHAPES}
        op = fields.pop("op")
        config = ",".join(f"{k}={_value(v)}" for k, v in sorted(fields.items()))
        token = f"{op}({config})" if config else op
        # Shapes the kernel's inputs and output already fix are left out to keep keys readable.
        implied = all(s == kernel.output_shape for s in (*layer.input_shapes, layer.output_shape)) or (
            layer is kernel.anchor
            and layer.output_shape == kernel.output_shape
            and tuple(layer.input_shapes) == in_shapes[: len(layer.input_shapes)]
        )
        if not implied:
            ins = ",".join(_shape(s, batch) for s in layer.input_shapes)
            token += f"@{ins}>{_shape(layer.output_shape, batch)}"
        tokens.append(token)
    ins, out = ",".join(_shape(s, batch) for s in in_shapes), _shape(kernel.output_shape, batch)
    return f"{'+'.join(tokens)}|in={ins}|out={out}|w={kernel.weight_elems}"


@dataclass(frozen=True)
class Entry:
    """One kernel's latency in seconds, and where the number came from."""

    latency_s: float
    source: str  # "predicted" or "measured"
    samples: int | None = None  # timed runs behind a measurement
    provenance: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.latency_s, (int, float)) or not 0 < self.latency_s < float("inf"):
            raise RooflineError(f"latency_s must be a positive number of seconds, got {self.latency_s!r}")
        if self.source not in SOURCES:
            raise RooflineError(f"unknown source {self.source!r}: choose predicted or measured")
        if self.samples is not None and (type(self.samples) is not int or self.samples < 0):
            raise RooflineError(f"samples must be a non-negative integer or null, got {self.samples!r}")


@dataclass(frozen=True)
class LatencyTable:
    """Kernel key -> latency, for one GPU (its key), dtype and backend."""

    gpu: str
    dtype: str
    backend: str  # "roofline" for predicted-only tables, or "pytorch", "tensorrt", "onnxruntime" ...
    entries: Mapping[str, Entry] = field(default_factory=dict)

    def __post_init__(self) -> None:  # a frozen table must not share a mutable dict with its caller
        object.__setattr__(self, "entries", MappingProxyType(dict(self.entries)))


def predicted_table(estimate: Estimate, backend: str = "roofline") -> LatencyTable:
    """One predicted entry per distinct kernel of ``estimate`` (identical kernels, identical times)."""
    provenance = f"roofline model, {estimate.model_roof.kind} roof: {estimate.model_roof.source}"
    entries: dict[str, Entry] = {}
    for kernel, time_s in zip(estimate.fused.kernels, estimate.time_s, strict=True):
        key = kernel_key(kernel, estimate.batch)
        entries.setdefault(key, Entry(float(time_s), "predicted", None, provenance))
    return LatencyTable(estimate.gpu.key, estimate.dtype, backend, entries)


def _wins(new: Entry, old: Entry) -> bool:
    if new.source != old.source:
        return new.source == "measured"
    if new.source == "measured" and (new.samples or 0) != (old.samples or 0):
        return (new.samples or 0) > (old.samples or 0)
    return True  # same standing: the later table is the newer run


def merge(*tables: LatencyTable, names: Sequence[str] | None = None) -> LatencyTable:
    """Union of ``tables``, which must share one gpu, dtype and backend (``names`` label them in the
    error, e.g. their files). Per key: measured beats predicted; of two measured, more samples wins;
    otherwise the later table wins."""
    if not tables:
        raise RooflineError("merge needs at least one latency table")
    if names is None:
        names = [f"table {i}" for i in range(1, len(tables) + 1)]
    if len(names) != len(tables):
        raise ValueError(f"merge takes one name per table: {len(tables)} tables, {len(names)} names")
    first = tables[0]
    for attribute in ("gpu", "dtype", "backend"):
        ours = getattr(first, attribute)
        for table, name in zip(tables[1:], names[1:], strict=True):
            theirs = getattr(table, attribute)
            if theirs != ours:
                raise RooflineError(
                    f"cannot merge latency tables with different {attribute}: {names[0]} has {ours!r}, "
                    f"{name} has {theirs!r}; merge only tables of one GPU, dtype and backend"
                )
    entries: dict[str, Entry] = {}
    for table in tables:
        for key, entry in table.entries.items():
            if key not in entries or _wins(entry, entries[key]):
                entries[key] = entry
    return LatencyTable(first.gpu, first.dtype, first.backend, entries)


def save(table: LatencyTable, path: str | Path) -> None:
    """Write ``table`` as JSON; readers never see a half-written file."""
    path = Path(path)
    head = {
        "format": TABLE_FORMAT,
        "version": 1,
        "gpu": table.gpu,
        "dtype": table.dtype,
        "backend": table.backend,
    }
    data = {**head, "entries": {key: asdict(e) for key, e in table.entries.items()}}
    files.write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def load(path: str | Path) -> LatencyTable:
    """Read a table written by ``save`` (or by hand, in the documented format); one-line errors."""
    data = files.read_document(path, "latency table", TABLE_FORMAT)
    fields = Fields(data, str(path), "fix the file, or write it again with `roofline latency-table`")
    name = fields.string("gpu")
    try:
        gpu = get_gpu(name).key
    except RooflineError:
        raise fields.error("gpu", f"{name!r} is not in the GPU database (see `roofline gpus`)") from None
    dtype = fields.string("dtype", tuple(DTYPE_BYTES))
    backend = fields.string("backend")
    table = fields.object("entries")
    entries = {}
    for key in table.data:
        entry = table.object(key)
        samples = entry.raw("samples", None)
        provenance = entry.raw("provenance", "")
        if not isinstance(provenance, str):
            raise entry.error("provenance", f"must be a string, got {provenance!r}")
        entries[str(key)] = Entry(
            entry.number("latency_s", positive=True),
            entry.string("source", SOURCES),
            None if samples is None else entry.integer("samples", 0),
            provenance,
        )
    return LatencyTable(gpu, dtype, backend, entries)


@dataclass(frozen=True)
class TableEstimate:
    """A network's latency from a table: measured entries where present, else the model."""

    latency_s: float
    per_kernel_s: np.ndarray
    sources: tuple[str, ...]  # "measured" or "model", per kernel
    measured: int
    modelled: int
    throughput_img_s: float  # batch / latency_s
    backend: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "latency_s": self.latency_s,
            "throughput_img_s": self.throughput_img_s,
            "measured_layers": self.measured,
            "modelled_layers": self.modelled,
            "backend": self.backend,
        }


def check_comparable(table: LatencyTable, target: Target) -> None:
    """A table's latencies hold for one GPU and dtype only."""
    for name, ours, theirs in (("gpu", table.gpu, target.gpu.key), ("dtype", table.dtype, target.dtype)):
        if ours != theirs:
            why = f"it is for {name} {ours!r}, the estimate for {theirs!r}"
            raise RooflineError(f"latency table not comparable: {why}; use a table built for {theirs!r}")


def network_latency(estimate: Estimate, table: LatencyTable) -> TableEstimate:
    """Sum per-kernel latencies of ``estimate``'s kernels, measured entries overriding the model."""
    check_comparable(table, estimate.target)
    # Predicted entries are ignored: the live model, which may have improved since the table was written,
    # predicts the same kernel at least as well.
    found = [table.entries.get(kernel_key(k, estimate.batch)) for k in estimate.fused.kernels]
    hit = [e is not None and e.source == "measured" for e in found]
    times = np.where(hit, [getattr(e, "latency_s", 0.0) for e in found], estimate.time_s)
    sources = tuple("measured" if h else "model" for h in hit)
    latency, n = float(times.sum()), sum(hit)
    return TableEstimate(latency, times, sources, n, len(hit) - n, estimate.images / latency, table.backend)
