"""Features of a (network, target, batch) for the learned predictor, and the features table.

Three groups, so that one model can serve GPUs and engines it saw little of:

* **The study's seven** (utilization-prediction study; DESIGN.md, "Graph-feature
  utilization predictor"): conv layers, linear layers, activations, other
  layers, model size in MB, GFLOPs per image, batch size. Counts are of the
  IR's layers before fusion, as the study counted a framework's modules:
  ``Conv`` and ``Linear`` layers; activations are the elementwise functions an
  engine treats as activations (``roofline.model.fusion.ACTIVATIONS``) and
  softmax (listed among torch.nn's non-linear activations); everything else
  (norms, pools, adds, muls, matmuls, concats, copies, unsupported ops) is
  "other". Model size = parameters x 4 bytes (FP32 weights, a saved state
  dict) / 1e6.
* **The analytic model's own** (``roofline.analysis.predict.evaluate`` on the
  same target and batch): predicted utilization, aggregate arithmetic
  intensity over the CMR, the share of predicted time in memory-bound
  kernels, the share of FLOPs in grouped (not depthwise) and in depthwise
  convolutions (the kernel classes that miss the GEMM rate; DESIGN.md,
  "Engines, accumulators and kernel classes"), and the kernel count.
* **The GPU's and the engine's**: the datasheet peak for the dtype and the
  engine's accumulator, DRAM bandwidth, SMs and L2 (``gpus.toml``); the
  engine's accumulator, whether it folds BN and fuses pointwise chains, its
  host issue time (``engines.toml``), and the memory layout (channels-last).

Utilization here always refers to the datasheet peak for the dtype and the
engine's accumulator (``GPU.peak``), whatever ``--peak`` a report uses, so
that the target and the analytic feature mean one thing across rows:

    flop_utilization = throughput_img_s x FLOPs per image / peak   (DESIGN.md, "Core definitions")

The features table is a CSV with one row per measurement: the identifying
columns, every feature, and the targets (measured throughput, FLOP
utilization, and nvidia-smi's time utilization where the data has it).
``roofline learn`` writes it; training reads it.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from roofline.analysis.predict import Estimate, evaluate, fused_for
from roofline.analysis.target import Target
from roofline.errors import RooflineError
from roofline.model.fusion import ACTIVATIONS
from roofline.model.ir import Conv, Elementwise, Linear, Network, Softmax
from roofline.studies.validate import family

#: The utilization-prediction study's seven features, in its order.
STUDY_FEATURES = (
    "conv_layers", "linear_layers", "activation_layers", "other_layers", "model_size_mb", "gflops", "batch",
)  # fmt: skip
ANALYTIC_FEATURES = (
    "analytic_utilization", "ai_over_cmr", "memory_time_share", "grouped_flops_share",
    "depthwise_flops_share", "kernels",
)  # fmt: skip
GPU_FEATURES = ("peak_flops_s", "dram_bytes_s", "sms", "l2_bytes")
ENGINE_FEATURES = (
    "engine_fp32_accumulate", "engine_folds_bn", "engine_fuses_pointwise", "engine_host_issue_s",
    "channels_last",
)  # fmt: skip
FEATURES = STUDY_FEATURES + ANALYTIC_FEATURES + GPU_FEATURES + ENGINE_FEATURES

#: Columns that say what a row is; ``model`` is the spec the CLI resolves (``timm:NAME``, a zoo name ...).
ID_COLUMNS = ("model", "family", "resolution", "dtype", "gpu", "engine", "source")
#: What was measured. ``time_utilization`` (nvidia-smi's busy fraction) may be empty.
TARGET_COLUMNS = ("throughput_img_s", "flop_utilization", "time_utilization")
COLUMNS = ID_COLUMNS + FEATURES + TARGET_COLUMNS
TEXT_COLUMNS = frozenset(ID_COLUMNS) - {"resolution"}
#: Numbers that cannot be 0 (every other number may be: counts, shares, flags, the host issue time).
POSITIVE_COLUMNS = frozenset(
    {"resolution", "batch", "gflops", "analytic_utilization", "ai_over_cmr", "kernels", "peak_flops_s",
     "dram_bytes_s", "sms", "l2_bytes", "throughput_img_s", "flop_utilization", "time_utilization"}
)  # fmt: skip
OPTIONAL_COLUMNS = frozenset({"time_utilization", "resolution"})

_FIX = "rebuild it with `roofline learn DATA... --out FILE` (README, 'Learned utilization predictor')"


def graph_counts(network: Network) -> dict[str, float]:
    """The study's six network features (all but batch), from the IR before fusion (module doc)."""
    conv = linear = act = other = 0
    for layer in network.layers:
        if isinstance(layer, Conv):
            conv += 1
        elif isinstance(layer, Linear):
            linear += 1
        elif isinstance(layer, Softmax) or (isinstance(layer, Elementwise) and layer.fn in ACTIVATIONS):
            act += 1
        else:
            other += 1
    ips = network.images_per_sample
    return {
        "conv_layers": conv,
        "linear_layers": linear,
        "activation_layers": act,
        "other_layers": other,
        "model_size_mb": network.params() * 4 / 1e6,
        "gflops": network.with_batch(1).flops() / ips / 1e9,
    }


def conv_flops_shares(network: Network) -> tuple[float, float]:
    """(grouped, depthwise) shares of the network's FLOPs; grouped excludes depthwise."""
    total = network.flops()
    grouped = depthwise = 0
    for layer in network.layers:
        if isinstance(layer, Conv) and layer.groups > 1:
            if layer.depthwise:
                depthwise += layer.flops()
            else:
                grouped += layer.flops()
    return (grouped / total, depthwise / total) if total else (0.0, 0.0)


def reference_peak_flops_s(target: Target) -> float:
    """The peak every utilization of this package refers to: datasheet, dtype, engine accumulator."""
    return target.gpu.peak(target.dtype, target.engine.accumulator)


def estimate_features(estimate: Estimate, channels_last: bool = False) -> dict[str, float]:
    """Every feature (``FEATURES``) of the network, target and batch of ``estimate``."""
    target = estimate.target
    gpu, engine = target.gpu, target.engine
    peak = reference_peak_flops_s(target)
    memory = np.array([b == "memory" for b in estimate.kernel_bound()], dtype=bool)
    grouped, depthwise = conv_flops_shares(estimate.network)
    return {
        **graph_counts(estimate.network),
        "batch": estimate.batch,
        "analytic_utilization": estimate.achieved_flops_s / peak,
        "ai_over_cmr": estimate.arithmetic_intensity / (peak / gpu.dram_bandwidth_bytes_s),
        "memory_time_share": float(estimate.time_s[memory].sum() / estimate.latency_s),
        "grouped_flops_share": grouped,
        "depthwise_flops_share": depthwise,
        "kernels": len(estimate.fused.kernels),
        "peak_flops_s": peak,
        "dram_bytes_s": gpu.dram_bandwidth_bytes_s,
        "sms": gpu.sms,
        "l2_bytes": gpu.l2_bytes,
        "engine_fp32_accumulate": float(engine.accumulator == "fp32"),
        "engine_folds_bn": float(engine.fusion.fold_bn),
        "engine_fuses_pointwise": float(engine.fusion.pointwise_chains),
        "engine_host_issue_s": engine.host_issue_s,
        "channels_last": float(channels_last),
    }


@dataclass(frozen=True)
class Sample:
    """One measurement to learn from: a model on a GPU and engine at a batch, and what it ran at."""

    model: str  # a spec ``roofline.model.resolve.resolve`` takes
    resolution: int | None
    batch: int
    gpu: str  # GPU database key
    engine: str  # engine key
    throughput_img_s: float
    dtype: str = "fp16"
    channels_last: bool = False
    #: nvidia-smi's busy fraction during the run (0-1), where it was recorded.
    time_utilization: float | None = None
    source: str = ""


#: timm's file names state the memory layout as a token (``benchmark-infer-amp-nhwc-...``:
#: benchmark.py ``--channels-last``; roofline/data/measured/README.md).
CHANNELS_LAST_TOKEN = "nhwc"


def samples_of(table: Any, gpu: str | None = None, engine: str | None = None) -> list[Sample]:
    """The samples of a measured table (``roofline.perf.measured.MeasuredTable``: ``path``, ``gpu``,
    ``engine``, ``rows``); ``gpu``/``engine`` override what the file says. A results file's rows carry
    their own engine and dtype. The layout is channels-last when the file name says ``nhwc``."""
    gpu = gpu or table.gpu
    if gpu is None:
        raise RooflineError(f"{table.path} does not name its GPU; pass --gpu")
    name = PurePosixPath(str(table.path).replace("\\", "/")).stem.lower()
    channels_last = CHANNELS_LAST_TOKEN in name.replace("_", "-").split("-")
    out = []
    for row in table.rows:
        row_engine = engine or row.engine or table.engine
        if row_engine is None:
            raise RooflineError(f"{table.path} does not name its engine; pass --engine")
        out.append(
            Sample(
                model=row.model, resolution=row.resolution, batch=row.batch, gpu=gpu, engine=row_engine,
                throughput_img_s=row.throughput_img_s, dtype=row.dtype or "fp16",
                channels_last=channels_last, time_utilization=getattr(row, "time_utilization", None),
                source=PurePosixPath(str(table.path).replace("\\", "/")).name,
            )
        )  # fmt: skip
    return out


@dataclass(frozen=True)
class FeatureTable:
    """Column arrays: float for features and targets (NaN for an empty optional cell), str for ids."""

    columns: Mapping[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.columns["model"])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def matrix(self, names: Sequence[str]) -> np.ndarray:
        return np.column_stack([self.columns[n].astype(float) for n in names])

    def subset(self, index: np.ndarray) -> FeatureTable:
        return FeatureTable({k: v[index] for k, v in self.columns.items()})

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, object]]) -> FeatureTable:
        columns = {}
        for name in COLUMNS:
            values = [row.get(name) for row in rows]
            if name in TEXT_COLUMNS:
                columns[name] = np.array([str(v) for v in values], dtype=object)
            else:
                columns[name] = np.array([math.nan if v is None else float(v) for v in values], dtype=float)
        return cls(columns)

    @classmethod
    def concat(cls, tables: Iterable[FeatureTable]) -> FeatureTable:
        tables = list(tables)
        return cls({n: np.concatenate([t.columns[n] for t in tables]) for n in COLUMNS})

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(COLUMNS)
        for i in range(len(self)):
            writer.writerow([_cell(self.columns[n][i], n) for n in COLUMNS])
        return buf.getvalue()


def _cell(value: object, name: str) -> str:
    if name in TEXT_COLUMNS:
        return str(value)
    value = float(value)
    if math.isnan(value):
        return ""
    # Seven significant digits keep the file small and every feature far above its own noise.
    return f"{value:.7g}"


def read_table(path: str | Path) -> FeatureTable:
    """A features table written by ``FeatureTable.to_csv``; every cell checked, one-line errors."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RooflineError(f"features table {path} does not exist; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise RooflineError(f"cannot read features table {path} ({reason}); {_FIX}") from None
    return parse_table(text, str(path))


def is_features_header(line: str) -> bool:
    """Whether a CSV's first line is a features table's header (``roofline learn`` tells inputs apart)."""
    return [c.strip() for c in line.split(",")][: len(ID_COLUMNS)] == list(ID_COLUMNS)


def parse_table(text: str, name: str = "features table") -> FeatureTable:
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != list(COLUMNS):
            raise RooflineError(
                f"{name} is not a features table (its header must be the {len(COLUMNS)} columns "
                f"{','.join(COLUMNS[:3])},...); {_FIX}"
            )
        rows = []
        for cells in reader:
            if not cells:
                continue
            line = reader.line_num
            if len(cells) != len(COLUMNS):
                raise RooflineError(f"{name}:{line}: {len(cells)} cells, expected {len(COLUMNS)}; {_FIX}")
            rows.append({n: _parse_cell(c, n, name, line) for c, n in zip(cells, COLUMNS, strict=True)})
    except csv.Error as exc:
        raise RooflineError(f"{name}:{reader.line_num}: not CSV ({exc}); {_FIX}") from None
    if not rows:
        raise RooflineError(f"{name} has no rows; {_FIX}")
    return FeatureTable.from_rows(rows)


def _parse_cell(cell: str, column: str, name: str, line: int) -> object:
    cell = cell.strip()
    if column in TEXT_COLUMNS:
        if not cell and column != "source":
            raise RooflineError(f"{name}:{line}: {column} is empty; {_FIX}")
        return cell
    if not cell and column in OPTIONAL_COLUMNS:
        return None
    try:
        value = float(cell)
    except ValueError:
        raise RooflineError(f"{name}:{line}: {column} {cell!r} is not a number; {_FIX}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and column in POSITIVE_COLUMNS):
        raise RooflineError(f"{name}:{line}: {column} {cell!r} is out of range; {_FIX}")
    return value


def build_table(
    samples: Sequence[Sample],
    network_of: Callable[[str, int | None], Network],
    progress: Callable[[str], None] | None = None,
) -> tuple[FeatureTable, list[tuple[Sample, str]]]:
    """The features table of ``samples``, and the samples left out with the reason.

    ``network_of(model, resolution)`` resolves a model once per (model, resolution); a
    model it cannot load (a ``RooflineError``, or a frontend that fails on it) leaves out
    its samples, named with the reason, instead of stopping the whole table.
    """
    by_network: dict[tuple[str, int | None], list[Sample]] = {}
    for sample in samples:
        by_network.setdefault((sample.model, sample.resolution), []).append(sample)
    rows: list[dict[str, object]] = []
    skipped: list[tuple[Sample, str]] = []
    for (model, resolution), group in by_network.items():
        if progress is not None:
            progress(model)
        try:
            network = network_of(model, resolution)
        except RooflineError as exc:
            skipped += [(s, str(exc)) for s in group]
            continue
        except Exception as exc:  # a frontend failing on one model must not lose the others
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            skipped += [(s, f"cannot load {model}: {reason}") for s in group]
            continue
        fused: dict[tuple[str, str, str], object] = {}
        for s in group:
            try:
                target = Target.of(s.gpu, s.dtype, engine=s.engine)
            except RooflineError as exc:
                skipped.append((s, str(exc)))
                continue
            key = (s.gpu, s.dtype, s.engine)
            if key not in fused:
                fused[key] = fused_for(network, target)
            rows.append(sample_row(s, evaluate(fused[key], target, s.batch)))
    return FeatureTable.from_rows(rows), skipped


def sample_row(sample: Sample, estimate: Estimate) -> dict[str, object]:
    """One table row: ids, features and targets of ``sample``, given its network's estimate."""
    peak = reference_peak_flops_s(estimate.target)
    return {
        "model": sample.model,
        "family": family(sample.model),
        "resolution": estimate.network.resolution,
        "dtype": sample.dtype,
        "gpu": estimate.target.gpu.key,
        "engine": estimate.target.engine.key,
        "source": sample.source,
        **estimate_features(estimate, sample.channels_last),
        "throughput_img_s": sample.throughput_img_s,
        "flop_utilization": sample.throughput_img_s * estimate.flops_per_image / peak,
        "time_utilization": sample.time_utilization,
    }
