"""Figures (matplotlib), written atomically as PNG or SVG."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from roofline.analysis.staircase import Staircase
from roofline.errors import RooflineError
from roofline.files import replacing

if TYPE_CHECKING:
    from roofline.studies.survey import Survey

FORMATS = (".png", ".svg")


def check_path(path: str | Path) -> Path:
    """Fail before any work if ``path`` cannot take a figure."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise RooflineError(f"plot file {path} must end in .png or .svg")
    if not path.parent.is_dir():
        raise RooflineError(f"directory {path.parent} does not exist; create it or pick another plot path")
    return path


def _pyplot() -> Any:
    import matplotlib  # imported here: `import roofline` stays fast for the CLI's other commands

    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt

    return plt


def _save(path: Path, draw: Callable[[Any], None]) -> None:
    plt = _pyplot()
    fig = plt.figure(figsize=(9, 5), layout="constrained")
    try:
        draw(fig)
        with replacing(path) as tmp:
            fig.savefig(tmp, format=path.suffix[1:].lower(), dpi=150)
    finally:
        plt.close(fig)


def staircase_plot(stairs: Staircase, path: str | Path) -> None:
    """Latency (steps) and utilization against width; edges dotted, optimal widths marked."""
    path = check_path(path)

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        ax.step(stairs.widths, stairs.latency_s * 1e6, where="post", color="C0", label="latency")
        ax.set_xlabel("output width (channels)")
        ax.set_ylabel("predicted latency (us)", color="C0")
        for edge in stairs.edges():
            ax.axvline(edge, color="0.8", linestyle=":", linewidth=0.8)
        ax.axvline(stairs.width, color="C3", linestyle="--", linewidth=1, label=f"width now {stairs.width}")
        util = ax.twinx()
        util.plot(stairs.widths, 100 * stairs.utilization, color="C1", linewidth=0.9, label="utilization")
        best = [list(stairs.widths).index(w) for w in stairs.optimal_widths()]
        util.scatter(stairs.widths[best], 100 * stairs.utilization[best], color="C2", zorder=3, s=14,
                     label="optimal widths")  # fmt: skip
        util.set_ylabel("utilization (%)", color="C1")
        util.set_ylim(bottom=0)
        handles = ax.get_legend_handles_labels()[0] + util.get_legend_handles_labels()[0]
        ax.legend(handles=handles, loc="upper left", fontsize="small")
        ax.set_title(
            f"{stairs.layer} ({stairs.op}) on {stairs.target.gpu.name}, {stairs.target.dtype}, "
            f"batch {stairs.batch}",
            fontsize="medium",
        )

    _save(path, draw)


def _label(ax: Any, x: float, y: float, text: str) -> None:
    ax.annotate(text, (x, y), xytext=(3, 2), textcoords="offset points", fontsize=6, color="0.25")


def roofline_chart(survey: Survey, path: str | Path) -> None:
    """Every model at (aggregate AI, predicted FLOP/s) under the GPU's roofs and ridge point."""
    path = check_path(path)
    est = [e.estimate for e in survey.entries]
    folded = [(e.estimate, e.folded) for e in survey.entries if e.folded is not None]

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        ais = [e.arithmetic_intensity for e in est] + [f.arithmetic_intensity for _, f in folded]
        x = np.geomspace(min(ais) / 2, max(ais + [est[0].peak.cmr]) * 3, 200)
        for roof, style, name in ((est[0].peak, "-", "datasheet"), (est[0].model_roof, "--", "achievable")):
            if name == "achievable" and roof == est[0].peak:
                continue
            ax.plot(x, np.minimum(roof.flops_s, x * roof.dram_bytes_s) / 1e12, style, color="0.3",
                    linewidth=1, label=f"{name} roof ({roof.flops_s / 1e12:.0f} TFLOP/s, "
                    f"{roof.dram_bytes_s / 1e9:.0f} GB/s)")  # fmt: skip
        ax.axvline(est[0].peak.cmr, color="0.6", linestyle=":", linewidth=1,
                   label=f"ridge point (CMR {est[0].peak.cmr:.0f})")  # fmt: skip
        colors = ["C0" if e.bound == "compute" else "C3" for e in est]
        ax.scatter([e.arithmetic_intensity for e in est], [e.achieved_flops_s / 1e12 for e in est],
                   c=colors, s=16, zorder=3, label="models (blue: AI > CMR, red: below)")  # fmt: skip
        # Forty labels on one diagonal are unreadable: name the frontier and the extremes.
        named = set(survey.frontier()) | {int(np.argmin(ais[: len(est)])), int(np.argmax(ais[: len(est)]))}
        for i in sorted(named):
            _label(ax, est[i].arithmetic_intensity, est[i].achieved_flops_s / 1e12, est[i].network.name)
        for before, after in folded:
            ax.annotate("", (after.arithmetic_intensity, after.achieved_flops_s / 1e12),
                        (before.arithmetic_intensity, before.achieved_flops_s / 1e12),
                        arrowprops={"arrowstyle": "->", "color": "C2", "linewidth": 0.8})  # fmt: skip
        if folded:
            fx = [f.arithmetic_intensity for _, f in folded]
            fy = [f.achieved_flops_s / 1e12 for _, f in folded]
            ax.scatter(fx, fy, facecolors="none", edgecolors="C2", s=16, zorder=3,
                       label=f"folded f={survey.fold_factor}")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(bottom=min(e.achieved_flops_s for e in est) / 1e12 / 2)
        ax.set_xlabel("arithmetic intensity (FLOP/byte, fused)")
        ax.set_ylabel("predicted TFLOP/s")
        ax.legend(loc="lower right", fontsize="small")
        title = f"Roofline: {survey.target.gpu.name}, {survey.target.dtype}, batch {survey.batch}"
        ax.set_title(title, fontsize="medium")

    _save(path, draw)


def _no_labels() -> Any:
    """Minor log ticks without labels: over less than a decade they collide."""
    from matplotlib.ticker import NullFormatter

    return NullFormatter()


def _frontier_line(ax: Any, x: np.ndarray, y: np.ndarray, idx: list[int], **style: Any) -> None:
    order = sorted(idx, key=lambda i: x[i])
    ax.step(x[order], y[order], where="pre", **style)


def pareto_plot(survey: Survey, path: str | Path) -> None:
    """Throughput against utilization, the frontier, and folding's arrows (the study's figure 2b)."""
    path = check_path(path)
    est = [e.estimate for e in survey.entries]
    thr = np.array([e.throughput_img_s for e in est])
    util = 100 * np.array([e.utilization for e in est])
    front = survey.frontier()

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        ax.scatter(thr, util, s=14, color="C0", zorder=3, label="models")
        ax.scatter(thr[front], util[front], s=30, facecolors="none", edgecolors="C1", zorder=4)
        _frontier_line(ax, thr, util, front, color="C1", linewidth=1.2, label=f"frontier ({len(front)})")
        for i, e in enumerate(est):
            _label(ax, thr[i], util[i], e.network.name)
        if survey.fold_factor:
            best = [e.best for e in survey.entries]
            bthr = np.array([b.throughput_img_s for b in best])
            butil = 100 * np.array([b.utilization for b in best])
            arrow = {"arrowstyle": "->", "color": "C2", "linewidth": 0.8}
            broken = {"arrowstyle": "->", "color": "0.6", "linewidth": 0.8, "linestyle": ":"}
            for i, e in enumerate(survey.entries):
                if e.folded is not None:
                    tip = (e.folded.throughput_img_s, 100 * e.folded.utilization)
                    ax.annotate("", tip, (thr[i], util[i]), arrowprops=arrow if e.fold_holds else broken)
            if any(e.folded is not None and not e.fold_holds for e in survey.entries):
                ax.plot([], [], ":", color="0.6", label="folding argument fails (FLOPs change > 10%)")
            ftr = [e.folded for e in survey.entries if e.folded is not None]
            ax.scatter([f.throughput_img_s for f in ftr], [100 * f.utilization for f in ftr], s=14,
                       facecolors="none", edgecolors="C2", zorder=3,
                       label=f"folded f={survey.fold_factor}")  # fmt: skip
            bfront = survey.frontier(folded=True)
            _frontier_line(ax, bthr, butil, bfront, color="C2", linestyle="--", linewidth=1.2,
                           label=f"frontier with folding ({len(bfront)})")  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("predicted throughput (images/s)")
        ax.set_ylabel("predicted utilization (% of peak FLOP/s)")
        ax.set_ylim(bottom=0)
        ax.xaxis.set_minor_formatter(_no_labels())
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
        ax.set_title(f"Throughput-utilization frontier: {survey.target.gpu.name}, {survey.target.dtype}, "
                     f"batch {survey.batch}", fontsize="medium")  # fmt: skip

    _save(path, draw)


def accuracy_plot(survey: Survey, path: str | Path) -> None:
    """Top-1 against throughput and against utilization, each with its frontier."""
    path = check_path(path)
    known = [e for e in survey.entries if e.top1 is not None]
    top1 = np.array([e.top1 for e in known])
    fronts = survey.accuracy_frontiers()
    index = {id(e): i for i, e in enumerate(known)}

    def draw(fig: Any) -> None:
        for n, (key, scale, unit) in enumerate(
            (("throughput", 1.0, "predicted throughput (images/s)"),
             ("utilization", 100.0, "predicted utilization (%)")), 1
        ):  # fmt: skip
            ax = fig.add_subplot(1, 2, n)
            x = scale * np.array([getattr(e.estimate, "throughput_img_s" if n == 1 else key) for e in known])
            ax.scatter(x, top1, s=14, color="C0", zorder=3)
            local = [index[id(survey.entries[i])] for i in fronts[key]]
            _frontier_line(ax, x, top1, local, color="C1", linewidth=1.2, label=f"frontier ({len(local)})")
            for i, e in enumerate(known):
                _label(ax, x[i], top1[i], e.name)
            if n == 1:
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(_no_labels())
            ax.set_xlabel(unit)
            ax.set_ylabel("top-1 accuracy (%)")
            ax.legend(loc="lower left", fontsize="small")
        fig.suptitle(
            f"Accuracy frontiers: {survey.target.gpu.name}, {survey.target.dtype}, batch {survey.batch}",
            fontsize="medium",
        )

    _save(path, draw)


def survey_figures(survey: Survey) -> dict[str, Callable[[Path], None]]:
    """File stem -> drawing function, for every figure the survey has data for."""
    figures = {"roofline": partial(roofline_chart, survey), "pareto": partial(pareto_plot, survey)}
    if any(e.top1 is not None for e in survey.entries):
        figures["accuracy"] = partial(accuracy_plot, survey)
    return figures
