"""Predicted against measured throughput on timm's public benchmark tables, for any version of the model.

    python tools/measured_accuracy.py [--ir-dir DIR] [--code DIR] [--tables DIR]

For every table (GPU x engine) in ``roofline/data/measured`` and every row whose network is available --
an embedded zoo model at its stored resolution, or ``{model}@{resolution}.json`` in ``--ir-dir`` (IR files
as ``roofline analyze --json`` / the IR cache write them) -- predicts images/s at the row's batch at FP16
with the table's engine and prints, for CNNs and transformers (networks with a softmax) separately: rows,
median predicted / measured, MdAPE, share within 15% and Spearman.

``--code DIR`` runs the ``roofline`` package found in DIR instead of the installed one, e.g. a checkout of
an older commit (``git worktree add /tmp/before f8a6d10``), so that the figures before and after a change
come from one command on the same rows. Code from before execution engines existed ignores the engine:
it predicts what it predicted then, TensorRT's fusions and the FP16-accumulate rate.
``roofline validate`` is the command for users; this tool exists to compare model versions.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
GPUS = {"rtx3090": "rtx-3090", "4090": "rtx-4090"}


def use_code(directory: Path) -> None:
    """Import ``roofline`` from ``directory``: drop the editable install's finder, put DIR first."""
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path.insert(0, str(directory.resolve()))
    for name in [m for m in sys.modules if m == "roofline" or m.startswith("roofline.")]:
        del sys.modules[name]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=Path, default=ROOT / "roofline/data/measured")
    parser.add_argument("--ir-dir", type=Path)
    parser.add_argument("--code", type=Path)
    args = parser.parse_args(argv)
    if args.code:
        use_code(args.code)
    from roofline import Target, evaluate
    from roofline.model import zoo
    from roofline.model.ir import Softmax
    from roofline.model.ir_file import read_network

    def network(model: str, resolution: int):
        if model in zoo.ZOO_SOURCES:
            net = zoo.load(model)
            if net.resolution == resolution:
                return net
        path = args.ir_dir / f"{model}@{resolution}.json" if args.ir_dir else None
        if path is None or not path.exists():
            return None
        try:
            return read_network(json.loads(path.read_text()), source=str(path))
        except Exception:  # an IR this version cannot read counts as missing for it
            return None

    engines = "engine" in Target.__dataclass_fields__
    header = ("table", "kind", "rows", "pred/meas", "MdAPE", "<=15%", "Spearman")
    print(f"{header[0]:56s} {header[1]:4s} " + " ".join(f"{h:>9s}" for h in header[2:]))
    for path in sorted(args.tables.glob("benchmark-*.csv")):
        gpu = next(key for fragment, key in GPUS.items() if fragment in path.name)
        engine = "torch-compile" if "dynamo" in path.name else "torch"
        target = Target.of(gpu, "fp16", engine=engine) if engines else Target.of(gpu, "fp16")
        rows = []
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                net = network(row["model"], int(row["infer_img_size"]))
                if net is None or net.flops() == 0:
                    continue
                pred = evaluate(net, target, int(row["infer_batch_size"])).throughput_img_s
                kind = "tf" if any(isinstance(layer, Softmax) for layer in net.layers) else "cnn"
                rows.append((kind, pred, float(row["infer_samples_per_sec"])))
        for kind in ("cnn", "tf"):
            pred = np.array([p for k, p, _ in rows if k == kind])
            meas = np.array([m for k, _, m in rows if k == kind])
            if len(pred) < 3:
                continue
            ratio = pred / meas
            error = np.abs(ratio - 1)
            median, mdape, within = np.median(ratio), 100 * np.median(error), 100 * np.mean(error <= 0.15)
            rho = spearmanr(pred, meas).statistic
            figures = f"{len(pred):9d} {median:9.2f} {mdape:8.1f}% {within:8.1f}% {rho:9.3f}"
            print(f"{path.name:56s} {kind:4s} {figures}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
