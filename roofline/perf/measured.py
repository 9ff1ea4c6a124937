"""Measured throughput tables: what a GPU really did, read for ``roofline validate``.

Two formats are read:

* timm's ``benchmark.py`` CSVs (``huggingface/pytorch-image-models``,
  ``results/benchmark-infer-*.csv``; copies in ``roofline/data/measured/``,
  whose README gives their provenance): one row per model and resolution with
  the columns ``model``, ``infer_img_size``, ``infer_batch_size`` and
  ``infer_samples_per_sec`` (images/s); other columns are ignored. The file
  says where it was measured only in its name (timm's naming,
  ``benchmark-infer-amp-<layout>-pt<torch>-cu<cuda>-<gpu>[-dynamo].csv``):
  ``rtx4090``/``4090`` is a GeForce RTX 4090, ``-dynamo`` is ``torch.compile``
  and its absence eager PyTorch.
* this project's own results files (``roofline.perf.results``): every model
  benchmark (``kind`` "model") with its ``model``, ``resolution``, ``batch``,
  ``backend`` and median throughput; the GPU is the environment's ``gpu_key``.

A row that cannot be used (a field that is not a positive number, a measurement
the suite marked invalid) is skipped and named in ``MeasuredTable.problems`` as
``file:line: ...``: one bad row of a 1600-row table should not hide the rest. A
file that is not a measured table at all is a ``RooflineError``.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from roofline.errors import RooflineError
from roofline.perf.results import RESULTS_FORMAT, load_results

#: The columns of timm's benchmark.py CSV that validation reads (timm ``benchmark.py``, ``_results``).
CSV_COLUMNS = ("model", "infer_img_size", "infer_batch_size", "infer_samples_per_sec")

#: GPU named by a token of a timm results file name -> key in the GPU database (``roofline gpus``).
#: timm's files name GeForce cards by number, with or without ``rtx`` (``...-cu124-rtx3090.csv``,
#: ``...-cu128-4090.csv``).
GPU_TOKENS = {
    "rtx3090": "rtx-3090", "3090": "rtx-3090",
    "rtx4090": "rtx-4090", "4090": "rtx-4090",
    "rtx5090": "rtx-5090", "5090": "rtx-5090",
}  # fmt: skip

#: timm's ``-dynamo`` suffix: benchmark.py ``--torchcompile`` (inductor, default mode).
COMPILED_TOKEN = "dynamo"

#: The CLI's bounds on --resolution and --batch (``roofline/cli/options.py``: they keep batch x the
#: largest activation inside int64); a measured row beyond them is a bad row.
MAX_RESOLUTION = 8192
MAX_BATCH = 1 << 24

#: The suite's backend names (``kernels/backends``) -> engine keys (``roofline engines``).
BACKEND_ENGINES = {"tensorrt": "tensorrt", "onnxruntime": "onnxruntime", "torch": "torch"}

_FIX = (
    "pass a timm benchmark.py CSV (columns " + ", ".join(CSV_COLUMNS) + ") "
    f"or a {RESULTS_FORMAT} JSON file from `nox -s perf`"
)


@dataclass(frozen=True)
class Measurement:
    """One measured throughput: ``model`` at ``resolution`` x ``resolution`` and ``batch``.

    ``model`` is timm's name (timm CSVs) or the suite's model spec (a zoo name,
    ``timm:NAME``, ``torchvision:NAME``). ``engine`` and ``dtype`` are set where
    the row itself says (the suite's results); None means the table's.
    """

    model: str
    resolution: int
    batch: int
    throughput_img_s: float
    source: str  # "file:line" (CSV) or "file:benchmarks.ID" (results JSON)
    engine: str | None = None
    dtype: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "resolution": self.resolution, "batch": self.batch,
            "throughput_img_s": self.throughput_img_s, "source": self.source,
            "engine": self.engine, "dtype": self.dtype,
        }  # fmt: skip


@dataclass(frozen=True)
class MeasuredTable:
    """A file's usable rows, where it was measured (None: the file does not say), and its bad rows."""

    path: str
    gpu: str | None  # GPU database key or alias
    engine: str | None  # engine key (``roofline engines``)
    rows: tuple[Measurement, ...]
    problems: tuple[str, ...] = ()

    def select(self, models: re.Pattern[str] | None = None, limit: int | None = None) -> MeasuredTable:
        """The rows whose model ``models`` matches (``re.search``), the first ``limit`` of them."""
        rows = [r for r in self.rows if models is None or models.search(r.model)]
        return replace(self, rows=tuple(rows[:limit] if limit is not None else rows))


def packaged_tables() -> dict[str, Path]:
    """The public tables shipped in ``roofline/data/measured/``, by file name."""
    folder = resources.files("roofline.data.measured")
    return {
        p.name: Path(str(p))
        for p in sorted(folder.iterdir(), key=lambda p: p.name)
        if p.name.endswith(".csv")
    }


def locate(name: str | Path) -> Path:
    """``name`` as a path: a shipped table's bare file name is its packaged copy, unless that file is here."""
    shipped = packaged_tables()
    return shipped[str(name)] if str(name) in shipped and not Path(name).exists() else Path(name)


def read_measured(path: str | Path) -> MeasuredTable:
    """The measured table in ``path``: a timm benchmark CSV or a results JSON (module doc)."""
    path = Path(path)
    text = _read_text(path)
    if text.lstrip().startswith("{"):
        return _from_results(path)
    return _from_csv(path, text)


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RooflineError(f"measured table {path} does not exist; check the path") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RooflineError(f"cannot read measured table {path} ({reason}); {_FIX}") from None
    try:
        text = raw.decode("utf-8-sig")  # -sig: a spreadsheet's byte order mark is not part of "model"
    except UnicodeDecodeError as exc:
        raise RooflineError(
            f"{path} is not a text file (byte {exc.start} is {raw[exc.start : exc.start + 1]!r}); {_FIX}"
        ) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise RooflineError(f"{path}:{line} holds a NUL byte, so it is not a text table; {_FIX}")
    if not text.strip():
        raise RooflineError(f"measured table {path} is empty; {_FIX}")
    return text


def names_from_file_name(path: str | Path) -> tuple[str | None, str]:
    """(GPU key or None, engine key) that a timm results file's name states (module doc)."""
    tokens = Path(path).stem.lower().replace("_", "-").split("-")
    gpus = {GPU_TOKENS[t] for t in tokens if t in GPU_TOKENS}
    gpu = gpus.pop() if len(gpus) == 1 else None  # none, or a name that contradicts itself
    return gpu, "torch-compile" if COMPILED_TOKEN in tokens else "torch"


def _positive_int(text: str | None, column: str, high: int) -> int:
    try:
        value = int((text or "").strip())
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{column} {text!r} is not a positive integer")
    if value > high:
        raise ValueError(f"{column} {value} is above {high}, the most the roofline predicts")
    return value


def _positive_float(text: str | None, column: str) -> float:
    try:
        value = float((text or "").strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{column} {text!r} is not a positive finite number")
    return value


def _from_csv(path: Path, text: str) -> MeasuredTable:
    reader = csv.DictReader(io.StringIO(text))
    try:
        header = [(f or "").strip() for f in reader.fieldnames or ()]
        missing = [c for c in CSV_COLUMNS if c not in header]
        if missing:
            raise RooflineError(
                f"{path} is not a measured throughput table: no column {', '.join(missing)} "
                f"in its header line; {_FIX}"
            )
        records = [(row, reader.line_num) for row in reader]
    except csv.Error as exc:
        raise RooflineError(f"{path}:{reader.line_num}: not CSV ({exc}); {_FIX}") from None
    rows: list[Measurement] = []
    problems: list[str] = []
    seen: dict[tuple[str, int, int], int] = {}
    for record, line in records:
        where = f"{path}:{line}"
        # DictReader puts a long row's surplus under the key None and fills a short row with None.
        if None in record or None in record.values():
            problems.append(f"{where}: {len(header)} columns expected; the row is cut short or too long")
            continue
        record = {(k or "").strip(): v for k, v in record.items()}
        try:
            model = (record["model"] or "").strip()
            if not model:
                raise ValueError("model name is empty")
            resolution = _positive_int(record["infer_img_size"], "infer_img_size", MAX_RESOLUTION)
            batch = _positive_int(record["infer_batch_size"], "infer_batch_size", MAX_BATCH)
            throughput = _positive_float(record["infer_samples_per_sec"], "infer_samples_per_sec")
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        key = (model, resolution, batch)
        if key in seen:
            problems.append(f"{where}: {model} at {resolution} px, batch {batch} repeats line {seen[key]}")
            continue
        seen[key] = line
        rows.append(Measurement(model, resolution, batch, throughput, where))
    gpu, engine = names_from_file_name(path)
    return MeasuredTable(str(path), gpu, engine, tuple(rows), tuple(problems))


def _engine_of(extra: Mapping[str, Any]) -> str:
    backend = extra.get("backend")
    if not isinstance(backend, str) or not backend:
        raise ValueError("no backend")
    described = extra.get("backend_description")
    # kernels/backends/torch_backend.py records torch.compile in its description.
    if backend == "torch" and isinstance(described, Mapping) and described.get("compile"):
        return "torch-compile"
    return BACKEND_ENGINES.get(backend, backend)


def _from_results(path: Path) -> MeasuredTable:
    results = load_results(path, "measured table")  # one-line errors for a corrupt or foreign file
    rows: list[Measurement] = []
    problems: list[str] = []
    for key in sorted(results.benchmarks):
        bench = results.benchmarks[key]
        extra = bench.extra
        if extra.get("kind", "model") != "model":  # GEMM and copy microbenchmarks measure no network
            continue
        where = f"{path}:benchmarks.{key}"
        try:
            model = extra.get("model")
            if not isinstance(model, str) or not model.strip():
                raise ValueError("no model name")
            resolution, batch = extra.get("resolution"), extra.get("batch")
            for name, value, high in (
                ("resolution", resolution, MAX_RESOLUTION),
                ("batch", batch, MAX_BATCH),
            ):
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ValueError(f"{name} {value!r} is not a positive integer")
                if value > high:
                    raise ValueError(f"{name} {value} is above {high}, the most the roofline predicts")
            if bench.unit != "img/s":
                raise ValueError(f"unit {bench.unit!r} is not img/s")
            if extra.get("invalid_reason"):
                raise ValueError(f"the suite marked the measurement invalid ({extra['invalid_reason']})")
            engine = _engine_of(extra)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        dtype = extra.get("dtype") if isinstance(extra.get("dtype"), str) else None
        rows.append(Measurement(model.strip(), resolution, batch, bench.median, where, engine, dtype))
    engines = {r.engine for r in rows}
    gpu = results.environment.get("gpu_key")
    return MeasuredTable(
        str(path),
        gpu if isinstance(gpu, str) and gpu else None,
        engines.pop() if len(engines) == 1 else None,
        tuple(rows),
        tuple(problems),
    )
