"""Predicted against measured throughput for the zoo models in timm's public benchmark tables.

    python tools/measured_accuracy.py [DIR]   (default ../shared/data/measured)

For every table (GPU x engine) and every row whose model is an embedded zoo model
at its stored resolution, predicts images/s at the row's batch on that GPU at
FP16 with the default Target (the TensorRT-style fusion the model assumes today)
and prints, per table, the rows matched, the median of predicted / measured,
MdAPE (median |pred / meas - 1|), the share within 15% and Spearman's rank
correlation. No torch needed: only zoo models at their committed size count.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from roofline import Target, evaluate
from roofline.model import zoo

#: file-name fragment -> GPU database key
GPUS = {"rtx3090": "rtx-3090", "4090": "rtx-4090"}


def table_rows(path: Path) -> list[tuple[str, int, float]]:
    out = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            name = row["model"]
            if name in zoo.ZOO_SOURCES and int(row["infer_img_size"]) == zoo.load(name).resolution:
                out.append((name, int(row["infer_batch_size"]), float(row["infer_samples_per_sec"])))
    return out


def main(directory: str = "../shared/data/measured") -> int:
    print(f"{'table':58s} {'rows':>4s} {'pred/meas':>9s} {'MdAPE':>6s} {'<=15%':>6s} {'Spearman':>8s}")
    for path in sorted(Path(directory).glob("benchmark-*.csv")):
        gpu = next(key for fragment, key in GPUS.items() if fragment in path.name)
        target = Target.of(gpu, "fp16")
        rows = table_rows(path)
        predicted = np.array([evaluate(zoo.load(n), target, b).throughput_img_s for n, b, _ in rows])
        measured = np.array([m for _, _, m in rows])
        ratio = predicted / measured
        error = np.abs(ratio - 1)
        rho = spearmanr(predicted, measured).statistic
        print(
            f"{path.name:58s} {len(rows):4d} {np.median(ratio):9.2f} {100 * np.median(error):5.1f}% "
            f"{100 * np.mean(error <= 0.15):5.1f}% {rho:8.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))
