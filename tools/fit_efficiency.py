"""Fit the kernel-class efficiency terms to public measurements, with family-held-out cross-validation.

    python tools/fit_efficiency.py [--tables DIR] [--ir-dir DIR] [--folds 5]

For each GPU generation with measured tables (timm's AMP FP16 benchmarks, ``roofline/data/measured``:
Ampere = RTX 3090 eager, Ada = RTX 4090 eager and torch.compile), every table row whose model traces is
predicted with its table's engine, and the few terms of ``roofline/hardware/data/efficiency.toml`` marked
"fitted" are chosen to minimise a robust (soft-L1) loss of log(predicted / measured) over all rows of the
generation, CNNs and transformers together. Nothing is fitted per model. The error is cross-validated by
family: rows are split with scikit-learn's GroupKFold on the architecture name's letter stem (every ResNeXt
in one fold), the terms are fitted on the other folds, and the held-out family's rows are predicted.
Prints, per generation: the fitted terms, in-sample and held-out MdAPE, share within 15% and Spearman.

Networks come from the IR cache (``roofline.model.resolve``; torch and timm needed on a cold cache) or,
with ``--ir-dir``, from files ``{model}@{resolution}.json`` there.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares
from sklearn.model_selection import GroupKFold

from roofline.analysis.predict import FusedNetwork, fused_for, kernel_times
from roofline.analysis.target import Target
from roofline.analysis.waves import Grid, WaveStats
from roofline.errors import RooflineError
from roofline.hardware.efficiency import efficiency_for
from roofline.model.ir_file import read_network
from roofline.perf.measured import read_measured
from roofline.studies.validate import Stats, family, resolve_measured

#: The terms fitted, their bounds; the rest keep their published or derived values.
FITTED = {
    "gemm_compute": (0.3, 1.0),
    "cuda_core_compute": (0.01, 1.0),
    "depthwise_bandwidth": (0.05, 1.0),
    "attention_compute": (0.05, 1.0),
    "k_fill_elems": (0.0, 1024.0),
}


@dataclass
class Group:
    """Rows of one table at one batch, their kernels concatenated for one call of kernel_times."""

    target: Target
    batch: int
    rows: np.ndarray  # indices into the generation's rows
    flops: np.ndarray
    nbytes: np.ndarray
    grid: Grid
    row_of_kernel: np.ndarray
    images: np.ndarray
    stats: WaveStats | None = None  # the first call's wave decomposition, which no fitted term changes


@cache
def load_network(model: str, resolution: int, ir_dir: Path | None):
    try:
        if ir_dir is None:
            return resolve_measured(model, resolution)
        path = ir_dir / f"{model}@{resolution}.json"
        return read_network(json.loads(path.read_text()), source=str(path)) if path.exists() else None
    except (RooflineError, ValueError):  # untraceable or unreadable: validate lists these, the fit skips them
        return None


def collect(tables: list[Path], ir_dir: Path | None) -> dict[str, tuple[list, list[Group]]]:
    """Per generation: (rows as (model, measured img/s), kernel groups)."""
    out: dict[str, tuple[list, list[Group]]] = {}
    fused_by: dict[tuple, FusedNetwork] = {}  # tables of one engine share their networks' kernels
    for path in tables:
        table = read_measured(path)
        target = Target.of(table.gpu, "fp16", engine=table.engine)
        generation = efficiency_for(target.gpu).generation
        rows, groups = out.setdefault(generation, ([], []))
        by_batch: dict[int, list] = {}
        for m in table.rows:
            net = load_network(m.model, m.resolution, ir_dir)
            if net is None or net.flops() == 0:
                continue
            key = (m.model, m.resolution, target.engine.fusion)
            if key not in fused_by:
                fused_by[key] = fused_for(net, target)
            by_batch.setdefault(m.batch, []).append((len(rows), fused_by[key]))
            rows.append((m.model, m.throughput_img_s))
        for batch, members in by_batch.items():
            fused = [f for _, f in members]
            groups.append(
                Group(
                    target=target,
                    batch=batch,
                    rows=np.array([i for i, _ in members]),
                    flops=np.concatenate([f.flops * batch for f in fused]),
                    nbytes=np.concatenate([f.bytes(batch, target.dtype_bytes) for f in fused]),
                    grid=Grid.concat([f.grid for f in fused]),
                    row_of_kernel=np.repeat(np.arange(len(fused)), [len(f.kernels) for f in fused]),
                    images=np.array([batch * f.network.images_per_sample for f in fused], dtype=float),
                )
            )
    return out


def predict(groups: list[Group], n_rows: int, terms: dict[str, float]) -> np.ndarray:
    pred = np.zeros(n_rows)
    for g in groups:
        target = g.target.replace(efficiency=g.target.kernel_efficiency.replace(**terms))
        _, time_s, g.stats = kernel_times(g.flops, g.nbytes, g.grid, g.batch, target, g.stats)
        latency = np.bincount(g.row_of_kernel, weights=time_s, minlength=len(g.rows))
        pred[g.rows] = g.images / latency
    return pred


def fit(
    groups: list[Group], measured: np.ndarray, train: np.ndarray, start: dict[str, float]
) -> dict[str, float]:
    names = list(FITTED)
    lo, hi = np.array([FITTED[n][0] for n in names]), np.array([FITTED[n][1] for n in names])

    def residuals(x: np.ndarray) -> np.ndarray:
        pred = predict(groups, len(measured), dict(zip(names, x, strict=True)))
        return np.log(pred[train] / measured[train])

    x0 = np.clip([start[n] for n in names], lo, hi)
    result = least_squares(residuals, x0, bounds=(lo, hi), loss="soft_l1", f_scale=0.1, diff_step=1e-3)
    return dict(zip(names, (float(v) for v in result.x), strict=True))


def scores(pred: np.ndarray, measured: np.ndarray) -> str:
    s = Stats.of(pred, measured)
    return f"MdAPE {100 * s.mdape:5.1f}%  within 15% {100 * s.within_15:5.1f}%  Spearman {s.spearman:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tables", type=Path, default=Path(__file__).resolve().parents[1] / "roofline/data/measured"
    )
    parser.add_argument("--ir-dir", type=Path)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args(argv)
    tables = sorted(args.tables.glob("benchmark-*.csv"))
    for generation, (rows, groups) in collect(tables, args.ir_dir).items():
        measured = np.array([m for _, m in rows])
        families = np.array([family(name) for name, _ in rows])
        start = groups[0].target.kernel_efficiency.to_dict()
        every = np.ones(len(rows), dtype=bool)
        print(f"== {generation}: {len(rows)} rows, {len(set(families))} families")
        print(f"   defaults   {scores(predict(groups, len(rows), {}), measured)}")
        terms = fit(groups, measured, every, start)
        print("   fitted     " + "  ".join(f"{k} = {v:.3g}" for k, v in terms.items()))
        print(f"   in-sample  {scores(predict(groups, len(rows), terms), measured)}")
        held_out = np.empty(len(rows))
        for train_idx, test_idx in GroupKFold(n_splits=args.folds).split(rows, groups=families):
            train = np.zeros(len(rows), dtype=bool)
            train[train_idx] = True
            fold_terms = fit(groups, measured, train, terms)
            held_out[test_idx] = predict(groups, len(rows), fold_terms)[test_idx]
        print(f"   held-out families ({args.folds} folds)  {scores(held_out, measured)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
