"""The survey's files: survey.csv, survey.json, the figures and summary.md in one directory.

This is where survey results (``roofline.studies.survey``) and the plots
(``roofline.cli.plots``) meet, so that neither imports the other.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from roofline import files
from roofline.errors import RooflineError
from roofline.studies.survey import FOLD_FLOPS_TOLERANCE, Survey


def markdown(s: Survey, figures: Sequence[str] = ()) -> str:
    """A short summary: setting, headline figures, the frontier and what folding moved."""
    est = [e.estimate for e in s.entries]
    util = np.array([e.utilization for e in est])
    memory = [e for e in est if e.bound == "memory"]
    first = est[0]
    lines = [
        f"# Utilization survey: {s.target.gpu.name}, {s.target.dtype}, {s.target.engine.name}",
        "",
        f"{len(est)} models at batch {s.batch}; peak {first.peak.flops_s / 1e12:.1f} TFLOP/s "
        f"({first.peak.kind}), CMR {first.peak.cmr:.1f} FLOP/byte. Predicted by the roofline "
        f"model of `roofline` for {s.target.engine.name}'s kernels with the wave model; no GPU was used.",
        "",
        f"- Median utilization {100 * np.median(util):.1f}% (range {100 * util.min():.1f}%"
        f"-{100 * util.max():.1f}%).",
        f"- {len(memory)} of {len(est)} models have an aggregate AI below the CMR (memory-bound).",
        f"- Throughput-utilization frontier ({len(s.frontier())}): "
        + ", ".join(s.entries[i].name for i in s.frontier()),
    ]
    if s.fold_factor:
        folded = [e for e in s.entries if e.folded is not None]
        gains = [e.folded.throughput_img_s / e.estimate.throughput_img_s for e in folded if e.fold_holds]
        broken = [e.name for e in folded if not e.fold_holds]
        lines.append(
            f"- Folding f={s.fold_factor} applied to the {len(folded)} memory-bound models. "
            f"Where the folding argument holds ({len(gains)} models, FLOPs within "
            f"{FOLD_FLOPS_TOLERANCE:.0%}), throughput x{min(gains, default=math.nan):.2f} "
            f"to x{max(gains, default=math.nan):.2f} "
            f"(median x{np.median(gains) if gains else math.nan:.2f}). Folded frontier "
            f"({len(s.frontier(folded=True))}): "
            + ", ".join(s.entries[i].best.network.name for i in s.frontier(folded=True))
        )
        if broken:
            lines.append(
                f"- The folding argument does not hold for {', '.join(broken)}: grouped or fixed-width "
                "layers keep their widths, so FLOPs per image change and throughput gains are not like for "
                "like (`roofline fold MODEL` lists the layers)."
            )
    if any(e.top1 is not None for e in s.entries):
        for key, idx in s.accuracy_frontiers().items():
            lines.append(f"- Accuracy-{key} frontier: " + ", ".join(s.entries[i].name for i in idx))
    lines += ["", "| model | batch | AI | bound | img/s | util % |", "|---|---:|---:|---|---:|---:|"]
    for e in sorted(est, key=lambda e: -e.utilization):
        lines.append(
            f"| {e.network.name} | {e.batch} | {e.arithmetic_intensity:.1f} | {e.bound} | "
            f"{e.throughput_img_s:.0f} | {100 * e.utilization:.1f} |"
        )
    if figures:
        lines += ["", *(f"![{Path(f).stem}]({f})" for f in figures if f.endswith(".png"))]
    return "\n".join(lines) + "\n"


def check_out_dir(out_dir: str | Path, *, replace: bool = False) -> Path:
    """Fail before any work if ``out_dir`` cannot become the output directory.

    An existing directory is replaced whole only with ``replace`` (the CLI's ``--force``).
    """
    out = Path(out_dir)
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise RooflineError(f"--out {out} exists and is not a directory; pick a directory path")
        if not replace:
            raise RooflineError(
                f"--out {out} already exists; pass --force to replace it whole, or pick a new directory"
            )
    files.check_dir_parent(out)
    return out


def write_outputs(s: Survey, out_dir: str | Path, *, replace: bool = False) -> list[Path]:
    """survey.csv, survey.json, the figures (PNG and SVG) and summary.md, as one directory.

    Everything is written into a hidden staging directory beside ``out_dir`` that is then renamed
    into place (``roofline.files.replacing_dir``): a failed or interrupted run leaves ``out_dir`` as
    it was, and a replaced directory holds this run's files only.
    """
    from roofline.cli import plots  # drawing code: loaded only when a survey writes figures

    out = check_out_dir(out_dir, replace=replace)
    names = []
    with files.replacing_dir(out, replace=replace) as stage:
        for stem, write in plots.survey_figures(s).items():
            stem_names = [f"{stem}{suffix}" for suffix in plots.FORMATS]
            write([stage / name for name in stem_names])
            names += stem_names
        files.write_text(stage / "survey.csv", s.csv_text())
        files.write_text(stage / "survey.json", json.dumps(s.to_dict(), indent=1) + "\n")
        files.write_text(stage / "summary.md", markdown(s, names))
    return [out / name for name in (*names, "survey.csv", "survey.json", "summary.md")]
