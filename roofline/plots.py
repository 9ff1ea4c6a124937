"""Figures (matplotlib, optional extra ``roofline[plot]``), written atomically as PNG or SVG."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import RooflineError
from .files import replacing
from .staircase import Staircase

FORMATS = (".png", ".svg")


def check_path(path: str | Path) -> Path:
    """Fail before any work if ``path`` cannot take a figure."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise RooflineError(f"plot file {path} must end in .png or .svg")
    if not path.parent.is_dir():
        raise RooflineError(f"directory {path.parent} does not exist; create it or pick another plot path")
    _pyplot()
    return path


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise RooflineError("plotting needs matplotlib: pip install 'roofline[plot]'") from None
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
            f"{stairs.layer} ({stairs.op}) on {stairs.gpu.name}, {stairs.dtype}, batch {stairs.batch}",
            fontsize="medium",
        )

    _save(path, draw)
