"""The utilization survey: every model of a set on one GPU, its frontier, and what folding buys.

The GPU-utilization study's survey (DESIGN.md, "Core definitions", "Folding")
places each network at its predicted throughput and utilization, draws the
throughput-utilization Pareto frontier (``roofline.studies.pareto``), and folds
(``roofline.analysis.fold``) every network whose aggregate AI is below the GPU's CMR,
showing the frontier moving out (the study's figure 2b). Given top-1
accuracies it adds the accuracy-throughput and accuracy-utilization frontiers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from roofline.analysis.batch import resolve_batch
from roofline.analysis.fold import fold, fold_batch, largest_foldable
from roofline.analysis.predict import Estimate, evaluate, fused_for
from roofline.analysis.target import Target
from roofline.errors import RooflineError
from roofline.model.ir import Network
from roofline.studies.pareto import pareto_front

#: Columns of survey.csv, in order.
CSV_COLUMNS = (
    "model", "batch", "gflops_per_image", "params", "arithmetic_intensity", "cmr", "bound",
    "latency_s", "throughput_img_s", "utilization", "on_frontier", "top1",
    "folded_batch", "folded_arithmetic_intensity", "folded_throughput_img_s", "folded_utilization",
    "folded_flops_ratio",
)  # fmt: skip

#: Folding "holds" for a network when its FLOPs per image move less than this
#: (rounding widths to multiples of 8 alone moves them a few percent).
FOLD_FLOPS_TOLERANCE = 0.10


@dataclass(frozen=True)
class Entry:
    """One model: its estimate, and its folded estimate when it was folded."""

    estimate: Estimate
    folded: Estimate | None = None
    top1: float | None = None

    @property
    def name(self) -> str:
        return self.estimate.network.name

    @property
    def folded_flops_ratio(self) -> float | None:
        """FLOPs per image after / before folding; far from 1 where the folding argument fails."""
        if self.folded is None:
            return None
        return self.folded.flops_per_image / self.estimate.flops_per_image

    @property
    def fold_holds(self) -> bool:
        ratio = self.folded_flops_ratio
        return ratio is not None and abs(ratio - 1) <= FOLD_FLOPS_TOLERANCE

    @property
    def best(self) -> Estimate:
        """The version a designer would deploy: folded only if that is faster."""
        if self.folded is not None and self.folded.throughput_img_s > self.estimate.throughput_img_s:
            return self.folded
        return self.estimate


def _front(throughput: np.ndarray, other: np.ndarray) -> list[int]:
    return pareto_front(np.column_stack([throughput, other]), [True, True]).tolist() if len(other) else []


@dataclass(frozen=True)
class Survey:
    entries: tuple[Entry, ...]
    target: Target
    batch: int | str  # as asked: a number, or "max"
    fold_factor: int | None
    #: Models the accuracy file names that no surveyed network has, sorted: their accuracies go unused.
    unmatched_accuracies: tuple[str, ...] = ()

    def _column(self, f: Callable[[Entry], float], entries=None) -> np.ndarray:
        return np.array([f(e) for e in (self.entries if entries is None else entries)], dtype=float)

    def frontier(self, folded: bool = False) -> list[int]:
        """Indices on the throughput-utilization frontier, of the originals or of each best version."""
        pick = (lambda e: e.best) if folded else (lambda e: e.estimate)
        return _front(
            self._column(lambda e: pick(e).throughput_img_s), self._column(lambda e: pick(e).utilization)
        )

    def accuracy_frontiers(self) -> dict[str, list[int]]:
        """Accuracy-throughput and accuracy-utilization frontiers over models with a top-1."""
        known = [i for i, e in enumerate(self.entries) if e.top1 is not None]
        sub = [self.entries[i] for i in known]
        top1 = self._column(lambda e: e.top1, sub)
        out = {}
        for key, metric in (("throughput", "throughput_img_s"), ("utilization", "utilization")):
            values = self._column(lambda e, m=metric: getattr(e.estimate, m), sub)
            out[key] = [known[i] for i in _front(values, top1)]
        return out

    def rows(self) -> list[dict[str, Any]]:
        on_front = set(self.frontier())
        out = []
        for i, e in enumerate(self.entries):
            est, f = e.estimate, e.folded
            out.append(
                {
                    "model": e.name, "batch": est.batch, "gflops_per_image": est.flops_per_image / 1e9,
                    "params": est.network.params(), "arithmetic_intensity": est.arithmetic_intensity,
                    "cmr": est.peak.cmr, "bound": est.bound, "latency_s": est.latency_s,
                    "throughput_img_s": est.throughput_img_s, "utilization": est.utilization,
                    "on_frontier": i in on_front, "top1": e.top1,
                    "folded_batch": f.batch if f else None,
                    "folded_arithmetic_intensity": f.arithmetic_intensity if f else None,
                    "folded_throughput_img_s": f.throughput_img_s if f else None,
                    "folded_utilization": f.utilization if f else None,
                    "folded_flops_ratio": e.folded_flops_ratio,
                }
            )  # fmt: skip
        return out

    def to_dict(self) -> dict[str, Any]:
        first = self.entries[0].estimate
        out: dict[str, Any] = {
            "gpu": self.target.gpu.key,
            "gpu_name": self.target.gpu.name,
            "dtype": self.target.dtype,
            "batch": self.batch,
            "fold_factor": self.fold_factor,
            "peak": first.peak.to_dict(),
            "models": self.rows(),
            "frontier": [self.entries[i].name for i in self.frontier()],
        }
        if self.fold_factor:
            out["folded_frontier"] = [self.entries[i].best.network.name for i in self.frontier(folded=True)]
        if any(e.top1 is not None for e in self.entries):
            out["accuracy_frontiers"] = {
                k: [self.entries[i].name for i in v] for k, v in self.accuracy_frontiers().items()
            }
        return out

    def csv_text(self) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in self.rows():
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
        return buf.getvalue()


_ACCURACY_FIX = "save it as CSV (UTF-8) with columns model,top1"


def load_accuracies(path: str | Path) -> dict[str, float]:
    """``model,top1`` rows (a header line naming both columns; top-1 in percent), one row per model.

    Model names are matched exactly (after stripping spaces) against the surveyed networks' names;
    ``survey`` reports the names it has no network for (``Survey.unmatched_accuracies``).
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise RooflineError(f"cannot read accuracy file {path}: {exc.strerror}") from None
    binary = f"accuracy file {path} is not a UTF-8 CSV text file ({{}}); {_ACCURACY_FIX}"
    try:
        text = raw.decode("utf-8-sig")  # -sig: a spreadsheet's byte order mark is not part of "model"
    except UnicodeDecodeError as exc:
        where = f"byte {exc.start} is {raw[exc.start : exc.start + 1]!r}"
        raise RooflineError(binary.format(where)) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise RooflineError(binary.format(f"line {line} holds a NUL byte"))
    reader = csv.DictReader(io.StringIO(text))
    try:
        if not reader.fieldnames or not {"model", "top1"} <= {f.strip() for f in reader.fieldnames}:
            raise RooflineError(f"accuracy file {path} needs a header with columns model,top1")
        rows = [({(k or "").strip(): v for k, v in row.items()}, reader.line_num) for row in reader]
    except csv.Error as exc:
        raise RooflineError(f"{path}:{reader.line_num}: not CSV ({exc}); {_ACCURACY_FIX}") from None
    out: dict[str, float] = {}
    lines: dict[str, int] = {}
    for row, line in rows:
        try:
            top1 = float(row["top1"])
        except (TypeError, ValueError):
            raise RooflineError(f"{path}:{line}: top1 {row['top1']!r} is not a number") from None
        model = (row["model"] or "").strip()
        if not 0 <= top1 <= 100 or not model:
            raise RooflineError(f"{path}:{line}: need a model name and a top1 in percent (0-100)")
        if model in lines:
            raise RooflineError(
                f"{path}:{line}: model {model} is already on line {lines[model]}; keep one top1 per model"
            )
        out[model], lines[model] = top1, line
    return out


def survey(
    networks: Sequence[Network],
    target: Target,
    batch: int | str,
    *,
    fold_factor: int | None = None,
    accuracies: Mapping[str, float] | None = None,
    progress: Callable[[Network], None] | None = None,
) -> Survey:
    """Evaluate every network; fold those below the CMR when ``fold_factor`` is given (module doc)."""
    accuracies = accuracies or {}
    entries = []
    for network in networks:
        if progress is not None:
            progress(network)
        fused = fused_for(network, target)
        n = resolve_batch(batch, fused, target)
        estimate = evaluate(fused, target, n)
        folded = None
        if fold_factor and estimate.arithmetic_intensity < estimate.peak.cmr:
            if batch == "max":  # compare both at one image count that folds evenly and fits
                n = largest_foldable(n, fold_factor)
                estimate = evaluate(fused, target, n)
            samples = fold_batch(n, fold_factor)
            folded = evaluate(fold(network, fold_factor).network, target, samples)
        entries.append(Entry(estimate, folded, accuracies.get(network.name)))
    unmatched = tuple(sorted(set(accuracies) - {e.name for e in entries}))
    return Survey(tuple(entries), target, batch, fold_factor, unmatched)
