"""Validation: the roofline's predicted throughput against public measurements, per model.

DESIGN.md ("Engines, accumulators and kernel classes": validate against
measurements nobody here made) asks for a per-model comparison with MdAPE,
the share within 15% and Spearman, split by family. For every measured row
(``roofline.perf.measured``: a model, a resolution, a batch and images/s) the
study resolves the network at that resolution, predicts it at that batch on
the table's GPU, engine and datatype (``Target``), and records

    ratio = predicted / measured          (> 1: the roofline is optimistic)

Per table, for all rows and for CNNs and transformers apart:

    median ratio        the bias: median(ratio)
    MdAPE               median(|ratio - 1|), the median absolute percentage error
    within 10% / 15%    share of rows with |ratio - 1| <= 0.10 / 0.15
    Spearman            rank correlation of predicted and measured throughput
                        (scipy.stats.spearmanr): does the model order networks right?

and the bias (median ratio, n) by architecture family and by the kernel class
where the prediction spends most time: a class whose rows all sit far from 1
is one whose efficiency the roofline gets wrong (DESIGN.md: "one uniform
efficiency over-predicts exactly the networks built from these").

A model that cannot be resolved (unknown to timm, a trace that fails, no
FLOPs) is listed with its reason, never fatal: a 1600-row table always holds
a few.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from roofline.analysis.predict import FusedNetwork, evaluate, fused_for
from roofline.analysis.target import Target
from roofline.analysis.waves import KERNEL_CLASSES, work_of
from roofline.errors import RooflineError
from roofline.model import zoo
from roofline.model.fusion import Kernel
from roofline.model.ir import MatMul, Network, Softmax
from roofline.model.resolve import resolve
from roofline.perf.measured import MeasuredTable, Measurement

KINDS = ("cnn", "transformer")
#: |ratio - 1| thresholds reported as "within"; the slack keeps exactly 10% (1.1 / 1.0) inside.
WITHIN = (0.10, 0.15)
_SLACK = 1e-9
#: A reason longer than this is cut: one line per unresolved model.
MAX_REASON = 200

#: (gpu, engine, dtype) as the measured file states them (None where it does not) -> the Target to
#: predict on; the caller applies the user's overrides and raises RooflineError for what is missing.
TargetFor = Callable[[str | None, str | None, str | None], Target]
#: (model name as measured, resolution) -> the network.
ResolveModel = Callable[[str, int], Network]
#: Wraps the (model, resolution) pairs to resolve, e.g. in a progress bar.
Progress = Callable[[Sequence[tuple[str, int]]], Iterable[tuple[str, int]]]


def kernel_class(kernel: Kernel) -> str:
    """The class of ``kernel``: gemm, grouped, depthwise, attention or pointwise.

    The wave model's classification (``roofline.analysis.waves.work_of``, which
    gives each class its own efficiency): dense convolutions, linear layers and
    matrix products are GEMMs; grouped and depthwise convolutions run other
    kernels (DESIGN.md, "Engines, accumulators and kernel classes"); a matrix
    product that fused its softmax is fused attention; the rest (elementwise
    chains, normalizations, pooling, softmax, copies) is pointwise work.
    """
    return work_of(kernel).kernel_class


def network_kind(network: Network) -> str:
    """ "transformer" if any layer is a softmax or a product of two activations (attention), else "cnn"."""
    attention = any(isinstance(layer, (Softmax, MatMul)) for layer in network.layers)
    return "transformer" if attention else "cnn"


#: Name prefixes of ported weights, not of other architectures (timm: tf_efficientnet_b0 is
#: efficientnet_b0 with TF "same" padding, legacy_seresnet50 and gluon_resnet50 are older ports,
#: dm_nfnet is DeepMind's NFNet).
PORT_PREFIXES = ("tf_", "legacy_", "gluon_", "dm_")


def architecture(model: str) -> str:
    """The architecture name of a model spec: ``timm:resnet50.a1_in1k`` -> ``resnet50``."""
    name = model.rpartition(":")[2]
    name = PurePosixPath(name.replace("\\", "/")).name
    return name.split(".")[0].lower()


def family(model: str) -> str:
    """The architecture name's stem: every ResNeXt together, every MobileNet version together.

    The leading run of letters of the architecture name, after dropping a port prefix
    (``PORT_PREFIXES``) and a version ``v`` before a digit: ``resnext101_32x8d`` -> ``resnext``,
    ``tf_efficientnetv2_s`` -> ``efficientnet``, ``mobilenetv3_large_100`` -> ``mobilenet``,
    ``swinv2_tiny_window8_256`` -> ``swin``. A name without a leading letter is its own family.
    Fits split by it (``tools/fit_efficiency.py``, the learned predictor), so no family leaks.
    """
    name = architecture(model)
    for prefix in PORT_PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            name = name[len(prefix) :]
            break
    match = re.match(r"[a-z]+", name)
    if match is None:
        return name
    stem = match.group(0)
    if stem.endswith("v") and len(stem) > 2 and name[len(stem) : len(stem) + 1].isdigit():
        stem = stem[:-1]
    return stem


def resolve_measured(model: str, resolution: int, *, cache: bool = True, reparam: bool = False) -> Network:
    """The network a measured row names, at ``resolution``: a zoo model, a prefixed spec, or timm's.

    A zoo name goes to the zoo (``roofline.model.resolve``), which needs neither
    torch nor a trace at its stored resolution and re-traces ``timm:NAME`` at
    any other; a name with a prefix (the suite's ``timm:``/``torchvision:``
    specs) is resolved as given; any other name is timm's, as in timm's
    benchmark CSVs. ``cache`` and ``reparam`` are ``resolve``'s.
    """
    spec = model if model in zoo.ZOO_SOURCES or ":" in model else f"timm:{model}"
    return resolve(spec, resolution, cache=cache, reparam=reparam)


def _reason(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    if not isinstance(exc, RooflineError):  # a trace that failed inside torch or timm
        text = f"tracing failed: {type(exc).__name__}: {text}"
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


@dataclass(frozen=True)
class Row:
    """One measured row and its prediction."""

    model: str
    resolution: int
    batch: int
    family: str
    kind: str  # "cnn" or "transformer"
    kernel_class: str  # where the prediction spends most time
    predicted_img_s: float
    measured_img_s: float
    source: str

    @property
    def ratio(self) -> float:
        return self.predicted_img_s / self.measured_img_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "resolution": self.resolution, "batch": self.batch, "family": self.family,
            "kind": self.kind, "kernel_class": self.kernel_class, "predicted_img_s": self.predicted_img_s,
            "measured_img_s": self.measured_img_s, "ratio": self.ratio, "source": self.source,
        }  # fmt: skip


@dataclass(frozen=True)
class Unresolved:
    """A model (at one resolution) that could not be predicted, why, and the rows that name it."""

    model: str
    resolution: int
    reason: str
    sources: tuple[str, ...]

    @property
    def reason_template(self) -> str:
        """The reason with the model's name taken out, so that one cause groups many models."""
        name = self.model.rpartition(":")[2]
        return self.reason.replace(name, "<model>") if name else self.reason

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "resolution": self.resolution, "reason": self.reason,
                "sources": list(self.sources)}  # fmt: skip


@dataclass(frozen=True)
class Stats:
    """Agreement of predicted and measured throughput over n rows (module doc); None where n is 0."""

    n: int
    median_ratio: float | None
    mdape: float | None
    within_10: float | None
    within_15: float | None
    spearman: float | None  # also None below 3 rows or when either side is constant

    @classmethod
    def of(cls, predicted: Sequence[float], measured: Sequence[float]) -> Stats:
        pred, meas = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
        if pred.size == 0:
            return cls(0, None, None, None, None, None)
        ratio = pred / meas
        error = np.abs(ratio - 1)
        within = [float(np.mean(error <= w + _SLACK)) for w in WITHIN]
        spearman = None
        if pred.size >= 3 and np.ptp(pred) > 0 and np.ptp(meas) > 0:
            from scipy.stats import spearmanr  # imported here: scipy.stats takes a while to load

            rho = float(spearmanr(pred, meas).statistic)
            spearman = rho if math.isfinite(rho) else None
        return cls(
            int(pred.size), float(np.median(ratio)), float(np.median(error)), within[0], within[1], spearman
        )

    @classmethod
    def of_rows(cls, rows: Iterable[Row]) -> Stats:
        rows = list(rows)
        return cls.of([r.predicted_img_s for r in rows], [r.measured_img_s for r in rows])

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n, "median_ratio": self.median_ratio, "mdape": self.mdape,
            "within_10": self.within_10, "within_15": self.within_15, "spearman": self.spearman,
        }  # fmt: skip


@dataclass(frozen=True)
class Bias:
    """The median ratio of one group of rows (a family, a kernel class)."""

    group: str
    n: int
    median_ratio: float

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.group, "n": self.n, "median_ratio": self.median_ratio}


def _bias(rows: Sequence[Row], key: Callable[[Row], str], order: Sequence[str] = ()) -> tuple[Bias, ...]:
    groups: dict[str, list[float]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row.ratio)
    out = [Bias(g, len(r), float(np.median(r))) for g, r in groups.items()]
    rank = {g: i for i, g in enumerate(order)}
    return tuple(sorted(out, key=lambda b: (rank.get(b.group, len(rank)), -b.n, b.group)))


@dataclass(frozen=True)
class TableResult:
    """The rows of one measured file predicted on one target."""

    path: str
    gpu: str | None  # GPU database key; None (with engine and dtype) only for a table with no rows
    gpu_name: str | None
    engine: str | None  # engine key
    dtype: str | None
    rows: tuple[Row, ...]
    unresolved: tuple[Unresolved, ...]
    problems: tuple[str, ...]  # the file's rows that could not be read (``MeasuredTable.problems``)

    def stats(self) -> dict[str, Stats]:
        """ "all", and each kind apart."""
        return {
            "all": Stats.of_rows(self.rows),
            **{kind: Stats.of_rows(r for r in self.rows if r.kind == kind) for kind in KINDS},
        }

    def bias_by_family(self) -> tuple[Bias, ...]:
        return _bias(self.rows, lambda r: r.family)

    def bias_by_kernel_class(self) -> tuple[Bias, ...]:
        return _bias(self.rows, lambda r: r.kernel_class, KERNEL_CLASSES)

    def worst(self, count: int = 10) -> tuple[Row, ...]:
        """The ``count`` rows furthest from their measurement, over- or under-predicted alike (log ratio)."""
        return tuple(sorted(self.rows, key=lambda r: -abs(math.log(r.ratio)))[:count])

    def unresolved_by_reason(self) -> dict[str, list[Unresolved]]:
        """Unresolved models grouped by their reason, the commonest first."""
        groups: dict[str, list[Unresolved]] = {}
        for u in self.unresolved:
            groups.setdefault(u.reason_template, []).append(u)
        return dict(sorted(groups.items(), key=lambda kv: -len(kv[1])))

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "gpu": self.gpu, "gpu_name": self.gpu_name, "engine": self.engine,
            "dtype": self.dtype,
            "stats": {k: s.to_dict() for k, s in self.stats().items()},
            "bias": {
                "family": [b.to_dict() for b in self.bias_by_family()],
                "kernel_class": [b.to_dict() for b in self.bias_by_kernel_class()],
            },
            "rows": [r.to_dict() for r in self.rows],
            "unresolved": [u.to_dict() for u in self.unresolved],
            "problems": list(self.problems),
        }  # fmt: skip


@dataclass(frozen=True)
class Validation:
    """Every table's result; ``overall`` pools the rows of all of them."""

    tables: tuple[TableResult, ...]

    @property
    def rows(self) -> tuple[Row, ...]:
        return tuple(r for t in self.tables for r in t.rows)

    def overall(self) -> dict[str, Stats]:
        rows = self.rows
        return {
            "all": Stats.of_rows(rows),
            **{kind: Stats.of_rows(r for r in rows if r.kind == kind) for kind in KINDS},
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "tables": [t.to_dict() for t in self.tables],
            "overall": {k: s.to_dict() for k, s in self.overall().items()},
        }


def _target_key(target: Target) -> tuple[str, str, str]:
    return target.gpu.key, target.engine.key, target.dtype


def _dominant_class(estimate_time_s: np.ndarray, classes: Sequence[str]) -> str:
    totals = dict.fromkeys(KERNEL_CLASSES, 0.0)
    for cls, t in zip(classes, estimate_time_s, strict=True):
        totals[cls] += float(t)
    return max(KERNEL_CLASSES, key=lambda c: totals[c])  # a tie goes to the earlier class


def validate(
    tables: Sequence[MeasuredTable],
    target_for: TargetFor,
    resolve_model: ResolveModel = resolve_measured,
    progress: Progress | None = None,
) -> Validation:
    """Predict every row of ``tables`` and compare (module doc).

    Every target is built first, so a table whose GPU or engine is unknown
    fails (``target_for`` raises) before any model is traced. Each (model,
    resolution) is resolved once, however many tables and batches name it,
    and dropped once its rows are predicted.
    """
    targets: dict[tuple[str | None, str | None, str | None], Target] = {}
    placed: list[list[Target]] = []  # per table, per row
    for table in tables:
        per_row = []
        for row in table.rows:
            key = (table.gpu, row.engine or table.engine, row.dtype)
            if key not in targets:
                try:
                    targets[key] = target_for(*key)
                except RooflineError as exc:
                    raise RooflineError(f"{table.path}: {exc}") from None
            per_row.append(targets[key])
        placed.append(per_row)

    work: dict[tuple[str, int], list[tuple[int, int]]] = {}  # (model, resolution) -> (table, row) indices
    for t, table in enumerate(tables):
        for r, row in enumerate(table.rows):
            work.setdefault((row.model, row.resolution), []).append((t, r))
    predicted: dict[tuple[int, int], Row] = {}
    failed: dict[tuple[int, int], str] = {}
    keys = list(work)
    for model, resolution in progress(keys) if progress else keys:
        places = work[(model, resolution)]
        try:
            network = resolve_model(model, resolution)
        except Exception as exc:  # noqa: BLE001  (any failure to trace is one listed model, never fatal)
            for place in places:
                failed[place] = _reason(exc)
            continue
        kind, fam = network_kind(network), family(model)
        fused: dict[Any, tuple[FusedNetwork, list[str]]] = {}
        for t, r in places:
            row: Measurement = tables[t].rows[r]
            target = placed[t][r]
            policy = target.engine.fusion
            if policy not in fused:
                f = fused_for(network, target)
                fused[policy] = (f, [kernel_class(k) for k in f.kernels])
            f, classes = fused[policy]
            try:
                estimate = evaluate(f, target, row.batch)
            except RooflineError as exc:
                failed[(t, r)] = _reason(exc)
                continue
            predicted[(t, r)] = Row(
                model=row.model, resolution=row.resolution, batch=row.batch, family=fam, kind=kind,
                kernel_class=_dominant_class(estimate.time_s, classes),
                predicted_img_s=estimate.throughput_img_s, measured_img_s=row.throughput_img_s,
                source=row.source,
            )  # fmt: skip

    results = []
    for t, table in enumerate(tables):
        groups: dict[tuple[str | None, str | None, str | None], list[int]] = {}
        for r in range(len(table.rows)):
            groups.setdefault(_target_key(placed[t][r]), []).append(r)
        if not groups:  # a table with no usable rows still reports its problems
            groups[(table.gpu, table.engine, None)] = []
        for i, (key, indices) in enumerate(groups.items()):
            target = placed[t][indices[0]] if indices else None
            unresolved: dict[tuple[str, int, str], list[str]] = {}
            for r in indices:
                if (t, r) in failed:
                    row = table.rows[r]
                    unresolved.setdefault((row.model, row.resolution, failed[(t, r)]), []).append(row.source)
            results.append(
                TableResult(
                    path=table.path,
                    gpu=key[0],
                    gpu_name=target.gpu.name if target else None,
                    engine=key[1],
                    dtype=key[2],
                    rows=tuple(predicted[(t, r)] for r in indices if (t, r) in predicted),
                    unresolved=tuple(
                        Unresolved(m, res, why, tuple(s)) for (m, res, why), s in unresolved.items()
                    ),
                    problems=table.problems if i == 0 else (),
                )
            )
    return Validation(tuple(results))
