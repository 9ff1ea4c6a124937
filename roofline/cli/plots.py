"""Figures (matplotlib), written atomically as PNG or SVG."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from roofline.analysis.staircase import Staircase
from roofline.errors import RooflineError
from roofline.files import check_parent, replacing

if TYPE_CHECKING:
    from roofline.studies.survey import Survey
    from roofline.studies.validate import Validation

FORMATS = (".png", ".svg")


def check_path(path: str | Path) -> Path:
    """Fail before any work if ``path`` cannot take a figure."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise RooflineError(f"plot file {path} must end in .png or .svg")
    return check_parent(path)  # not a directory, and its directory exists and is writable


def _pyplot() -> Any:
    import matplotlib  # imported here: `import roofline` stays fast for the CLI's other commands

    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt

    return plt


DPI = 150  # the figure's own: labels are placed for, and the tests measure at, the resolution saved


def figure(draw: Callable[[Any], None]) -> Any:
    """A new matplotlib figure drawn by ``draw(fig)``; the caller closes it (``plt.close(fig)``)."""
    plt = _pyplot()
    fig = plt.figure(figsize=(9, 5), dpi=DPI, layout="constrained")
    try:
        draw(fig)
    except BaseException:
        plt.close(fig)
        raise
    return fig


def _save(paths: Sequence[Path], draw: Callable[[Any], None]) -> None:
    """Draw once (label placement is most of the cost) and save to each path in its format."""
    fig = figure(draw)
    try:
        for path in paths:
            with replacing(path) as tmp:
                fig.savefig(tmp, format=path.suffix[1:].lower(), dpi=DPI)
    finally:
        _pyplot().close(fig)


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

    _save([path], draw)


LABEL_STYLE = {"fontsize": 6, "color": "0.25"}
LEADER = {"color": "0.55", "linewidth": 0.5}
_GAPS = (1.5, 4, 8, 13, 19, 26, 34, 44, 56, 70, 86, 104, 124)  # label-to-point distances tried, in points
_LINE_COST = 3.0  # points of distance that each crossed line sample (every 2 points) costs
_NEAR, _NEAR_COST = 4, 6.0  # a name within 4 points of another model's marker costs 6 points of distance
_CROSS_COST = 40.0  # a leader across a name, a marker or another leader
# Where a name's centre may go around its point, in half-sizes of the name's box: right and above first.
_DIRECTIONS = np.array([(1, 0.3), (1, -0.3), (0, 1), (0, -1), (-1, 0.3), (-1, -0.3), (1, 1), (1, -1),
                        (-1, 1), (-1, -1), (0.5, 1), (-0.5, 1), (0.5, -1), (-0.5, -1)])  # fmt: skip


def _segments(ax: Any) -> list[np.ndarray]:
    """Every drawn line and arrow in ``ax``, as (n, 2) arrays of display coordinates."""
    from matplotlib.cbook import STEP_LOOKUP_MAP
    from matplotlib.text import Annotation

    out = []
    for line in ax.get_lines():
        if line.get_visible() and line.get_linestyle() not in ("None", " ", ""):
            x, y = (np.asarray(v, dtype=float) for v in line.get_data())
            x, y = STEP_LOOKUP_MAP[line.get_drawstyle()](x, y)
            out.append(np.asarray(line.get_transform().transform(np.column_stack([x, y])), dtype=float))
    for ann in ax.texts:
        if isinstance(ann, Annotation) and ann.arrow_patch is not None and ann.xycoords == "data":
            ends = np.array([ann.xyann, ann.xy], dtype=float)
            out.append(ax.transData.transform(ends))
    return out


def _samples(paths: list[np.ndarray], step: float) -> np.ndarray:
    """Points every ``step`` along the polylines (display coordinates)."""
    out = [np.empty((0, 2))]
    for path in paths:
        path = path[np.isfinite(path).all(axis=1)]
        for a, b in zip(path[:-1], path[1:], strict=True):
            n = max(2, int(np.hypot(*(b - a)) / step) + 1)
            out.append(a + np.linspace(0, 1, n)[:, None] * (b - a))
    return np.concatenate(out)


def _markers(ax: Any, px: float) -> np.ndarray:
    """(x, y, radius) in display coordinates of every scatter point and line marker in ``ax``."""
    out = [np.empty((0, 3))]
    for coll in ax.collections:
        xy = coll.get_offset_transform().transform(np.asarray(coll.get_offsets(), dtype=float))
        sizes = np.resize(np.sqrt(coll.get_sizes()) / 2 * px, len(xy)) if len(coll.get_sizes()) else 3 * px
        out.append(np.column_stack([xy, np.broadcast_to(sizes, len(xy))]))
    for line in ax.get_lines():
        if line.get_visible() and line.get_marker() not in ("None", None, "", " "):
            xy = line.get_transform().transform(np.column_stack(line.get_data()).astype(float))
            out.append(np.column_stack([xy, np.full(len(xy), line.get_markersize() / 2 * px)]))
    markers = np.concatenate(out)
    return markers[np.isfinite(markers).all(axis=1)]


def _crossings(a: np.ndarray, b: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """How many of ``segments`` (m, 2, 2) each segment a[k]-b[k] properly crosses."""
    if not len(segments):
        return np.zeros(len(a), dtype=int)
    p, q = segments[None, :, 0], segments[None, :, 1]
    a, b = a[:, None], b[:, None]

    def side(o: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        d, e = u - o, v - o
        return np.sign(d[..., 0] * e[..., 1] - d[..., 1] * e[..., 0])

    return ((side(a, b, p) * side(a, b, q) < 0) & (side(p, q, a) * side(p, q, b) < 0)).sum(axis=1)


class _Room:
    """What a new name must keep clear of, in display coordinates, and what it costs to be near it."""

    def __init__(self, ax: Any, renderer: Any) -> None:
        self.px = ax.figure.dpi / 72  # display units per point
        self.frame = ax.get_window_extent(renderer)
        legend = ax.get_legend()
        legend_box = [legend.get_window_extent(renderer).extents] if legend is not None else []
        self.blocked = np.array(legend_box).reshape(-1, 4)
        self.markers = _markers(ax, self.px)
        self.lines = _samples(_segments(ax), 2 * self.px)
        self.leaders = np.empty((0, 2, 2))

    def own(self, anchor: np.ndarray) -> tuple[np.ndarray, float]:
        """Which markers sit at ``anchor`` (a point and its frontier ring), and the largest one's radius."""
        here = np.hypot(*(self.markers[:, :2] - anchor).T) < 0.5
        return here, float(self.markers[here, 2].max()) if here.any() else 0.0

    def cost(self, anchor: np.ndarray, centres: np.ndarray, half: np.ndarray) -> tuple[Any, ...]:
        """Each place's cost (inf where not free), the leader's end at the name, and whether it needs one."""
        px, frame = self.px, self.frame
        lo, hi = centres - half, centres + half
        ok = (lo[:, 0] >= frame.x0) & (lo[:, 1] >= frame.y0) & (hi[:, 0] <= frame.x1) & (hi[:, 1] <= frame.y1)
        for x0, y0, x1, y1 in self.blocked:
            ok &= (hi[:, 0] <= x0) | (lo[:, 0] >= x1) | (hi[:, 1] <= y0) | (lo[:, 1] >= y1)
        here, r0 = self.own(anchor)
        centre, radius = self.markers[None, :, :2], self.markers[None, :, 2]
        near = np.maximum(np.maximum(lo[:, None] - centre, centre - hi[:, None]), 0)
        near = np.hypot(near[..., 0], near[..., 1]) - radius
        ok &= ~(near < 0).any(axis=1)
        crowd = ((near < _NEAR * px) & ~here).sum(axis=1)  # another model's marker right by the name
        end = np.clip(anchor, lo + px, hi - px)  # the name's nearest point: where a leader would end
        dist = np.hypot(*(end - anchor).T)
        led = dist > r0 + 4 * px
        on_leader = anchor + np.linspace(0.1, 0.9, 9)[None, :, None] * (end - anchor)[:, None]
        through = np.zeros(len(centres), dtype=int)
        for x0, y0, x1, y1 in self.blocked:
            hit = (on_leader[..., 0] > x0) & (on_leader[..., 0] < x1) & (on_leader[..., 1] > y0)
            through += (hit & (on_leader[..., 1] < y1)).any(axis=1)
        others = self.markers[~here]
        gaps = np.hypot(*(on_leader[:, :, None] - others[None, None, :, :2]).transpose(3, 0, 1, 2))
        through += (gaps < others[None, None, :, 2]).any(axis=(1, 2))
        through += _crossings(np.broadcast_to(anchor, end.shape), end, self.leaders)
        lines = self.lines[((self.lines > lo.min(axis=0)) & (self.lines < hi.max(axis=0))).all(axis=1)]
        under = ((lines[None] > lo[:, None]) & (lines[None] < hi[:, None])).all(axis=2).sum(axis=1)
        cost = dist / px + _LINE_COST * under + _NEAR_COST * crowd + _CROSS_COST * (through * led)
        return np.where(ok, cost, np.inf), end, dist, led

    def take(self, box: np.ndarray, leader: np.ndarray | None) -> None:
        self.blocked = np.vstack([self.blocked, box])
        if leader is not None:
            self.leaders = np.concatenate([self.leaders, [leader]])
            self.lines = np.concatenate([self.lines, _samples([leader], 2 * self.px)])


def _name_points(ax: Any, x: Any, y: Any, names: list[str]) -> None:
    """Name points in ``ax`` so that no two names overlap; the first names get the best places.

    Each name takes the cheapest place around its point that stays inside the axes and clear of the
    legend, every marker and the names already placed. Cost is distance from the point, plus a little
    for each line or arrow under the name and for another model's marker right beside it, plus more
    for a leader (the thin line to a name set apart from its point) that crosses a name, a marker or
    another leader. A name with no free place within ~120 points is left out (survey.csv lists every
    model). Call it once the axes are otherwise complete: it settles the figure's layout and limits.
    """
    from matplotlib.lines import Line2D

    fig = ax.figure
    fig.draw_without_rendering()  # constrained layout places the axes and autoscaling sets the limits ...
    fig.set_layout_engine("none")  # ... and neither changes when the figure is saved
    ax.set_xlim(ax.get_xlim())
    ax.set_ylim(ax.get_ylim())
    renderer = fig.canvas.get_renderer()
    legend = ax.get_legend()
    if legend is not None:
        frame, box = ax.get_window_extent(renderer), legend.get_window_extent(renderer)
        if frame.contains(*box.p0) and frame.contains(*box.p1):  # loc="best" must not move onto the names
            legend.set_loc(tuple(ax.transAxes.inverted().transform(box.p0)))
    room = _Room(ax, renderer)
    px = room.px
    for xi, yi, name in zip(x, y, names, strict=True):
        text = ax.text(xi, yi, name, ha="center", va="center", in_layout=False, **LABEL_STYLE)
        extent = text.get_window_extent(renderer)
        half = np.array([extent.width, extent.height]) / 2 + px  # a point of space around each name
        anchor = ax.transData.transform((xi, yi))
        r0 = room.own(anchor)[1]
        best = None
        for n, gap in enumerate(_GAPS):  # nearest rings first; extra costs only ever add to the distance
            centres = anchor + _DIRECTIONS * (half + (r0 + gap * px))
            cost, end, dist, led = room.cost(anchor, centres, half)
            k = int(np.argmin(cost))
            if cost[k] < np.inf and (best is None or cost[k] < best[0]):
                best = (cost[k], centres[k], end[k], dist[k], led[k])
            if best is not None and (n + 1 == len(_GAPS) or best[0] <= (r0 / px + _GAPS[n + 1]) - 1):
                break
        if best is None:
            text.remove()
            continue
        _, centre, end, dist, led = best
        text.set_position(ax.transData.inverted().transform(centre))
        leader = np.array([anchor + (end - anchor) * r0 / dist, end]) if led else None  # from the ring
        room.take(np.concatenate([centre - half, centre + half]), leader)
        if leader is not None:
            ends = ax.transData.inverted().transform(leader)
            ax.add_line(Line2D(ends[:, 0], ends[:, 1], **LEADER))


def roofline_chart(survey: Survey, path: str | Path) -> None:
    """Every model at (aggregate AI, predicted FLOP/s) under the GPU's roofs and ridge point."""
    _save([check_path(path)], _roofline_chart_drawing(survey))


def _roofline_chart_drawing(survey: Survey) -> Callable[[Any], None]:
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
        # Forty names on one diagonal are unreadable: name the frontier and the extremes.
        named = [*survey.frontier(), int(np.argmin(ais[: len(est)])), int(np.argmax(ais[: len(est)]))]
        named = list(dict.fromkeys(named))
        ai = np.array([e.arithmetic_intensity for e in est])
        tflops = np.array([e.achieved_flops_s / 1e12 for e in est])
        _name_points(ax, ai[named], tflops[named], [est[i].network.name for i in named])

    return draw


def _no_labels() -> Any:
    """Minor log ticks without labels: over less than a decade they collide."""
    from matplotlib.ticker import NullFormatter

    return NullFormatter()


def _frontier_line(ax: Any, x: np.ndarray, y: np.ndarray, idx: list[int], **style: Any) -> None:
    """The staircase through the frontier's points, each ringed: a frontier of one model is a ring."""
    order = sorted(idx, key=lambda i: x[i])
    ax.step(x[order], y[order], where="pre", marker="o", markersize=6, markerfacecolor="none", **style)


def pareto_plot(survey: Survey, path: str | Path) -> None:
    """Throughput against utilization, the frontier, and folding's arrows (the study's figure 2b)."""
    _save([check_path(path)], _pareto_plot_drawing(survey))


def _pareto_plot_drawing(survey: Survey) -> Callable[[Any], None]:
    est = [e.estimate for e in survey.entries]
    thr = np.array([e.throughput_img_s for e in est])
    util = 100 * np.array([e.utilization for e in est])
    front = survey.frontier()

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        ax.scatter(thr, util, s=14, color="C0", zorder=3, label="models")
        _frontier_line(ax, thr, util, front, color="C1", linewidth=1.2, label=f"frontier ({len(front)})")
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
        order = [*front, *(i for i in range(len(est)) if i not in front)]  # the frontier's names first
        _name_points(ax, thr[order], util[order], [est[i].network.name for i in order])

    return draw


def accuracy_plot(survey: Survey, path: str | Path) -> None:
    """Top-1 against throughput and against utilization, each with its frontier."""
    _save([check_path(path)], _accuracy_plot_drawing(survey))


def _accuracy_plot_drawing(survey: Survey) -> Callable[[Any], None]:
    known = [e for e in survey.entries if e.top1 is not None]
    top1 = np.array([e.top1 for e in known])
    fronts = survey.accuracy_frontiers()
    index = {id(e): i for i, e in enumerate(known)}

    def draw(fig: Any) -> None:
        panels = []
        for n, (key, scale, unit) in enumerate(
            (("throughput", 1.0, "predicted throughput (images/s)"),
             ("utilization", 100.0, "predicted utilization (%)")), 1
        ):  # fmt: skip
            ax = fig.add_subplot(1, 2, n)
            x = scale * np.array([getattr(e.estimate, "throughput_img_s" if n == 1 else key) for e in known])
            ax.scatter(x, top1, s=14, color="C0", zorder=3)
            local = [index[id(survey.entries[i])] for i in fronts[key]]
            _frontier_line(ax, x, top1, local, color="C1", linewidth=1.2, label=f"frontier ({len(local)})")
            if n == 1:
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(_no_labels())
            ax.set_xlabel(unit)
            ax.set_ylabel("top-1 accuracy (%)")
            ax.legend(loc="best", fontsize="small")
            panels.append((ax, x, [*local, *(i for i in range(len(known)) if i not in local)]))
        fig.suptitle(
            f"Accuracy frontiers: {survey.target.gpu.name}, {survey.target.dtype}, batch {survey.batch}",
            fontsize="medium",
        )
        for ax, x, order in panels:
            _name_points(ax, x[order], top1[order], [known[i].name for i in order])

    return draw


def survey_drawings(survey: Survey) -> dict[str, Callable[[Any], None]]:
    """File stem -> what draws that figure (for ``figure``), for every figure the survey has data for."""
    drawings = {"roofline": _roofline_chart_drawing(survey), "pareto": _pareto_plot_drawing(survey)}
    if any(e.top1 is not None for e in survey.entries):
        drawings["accuracy"] = _accuracy_plot_drawing(survey)
    return drawings


def _save_checked(draw: Callable[[Any], None], paths: Sequence[str | Path]) -> None:
    _save([check_path(p) for p in paths], draw)


def survey_figures(survey: Survey) -> dict[str, Callable[[Sequence[Path]], None]]:
    """File stem -> function writing that figure to paths (one per format), for every figure the survey
    has data for."""
    return {stem: partial(_save_checked, draw) for stem, draw in survey_drawings(survey).items()}


#: validate's band: the "within 15%" of ``roofline.studies.validate``.
VALIDATION_BAND = 0.15
_TABLE_MARKERS = "os^Dvp*"


def validation_plot(validation: Validation, path: str | Path) -> None:
    """Predicted against measured throughput, log-log: y = x, the +/-15% band, CNNs and transformers apart."""
    _save([check_path(path)], _validation_drawing(validation))


def _validation_drawing(validation: Validation) -> Callable[[Any], None]:
    from roofline.studies.validate import KINDS

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        rows = validation.rows
        several = len(validation.tables) > 1
        for t, table in enumerate(validation.tables):
            marker = _TABLE_MARKERS[t % len(_TABLE_MARKERS)] if several else "o"
            for c, kind in enumerate(KINDS):
                mine = [r for r in table.rows if r.kind == kind]
                if not mine:
                    continue
                label = f"{kind} ({len(mine)})"
                if several:  # numbered in the order of the command line and the text report
                    label = f"{t + 1}: {table.gpu}, {table.engine}, {label}"
                measured, predicted = [r.measured_img_s for r in mine], [r.predicted_img_s for r in mine]
                ax.scatter(measured, predicted, s=10, marker=marker, color=f"C{c}", alpha=0.6, linewidths=0,
                           zorder=3, label=label)  # fmt: skip
        if rows:
            values = [v for r in rows for v in (r.measured_img_s, r.predicted_img_s)]
            x = np.geomspace(min(values) / 1.5, max(values) * 1.5, 50)
        else:
            x = np.geomspace(1, 1e5, 50)
            ax.text(0.5, 0.5, "no rows predicted", transform=ax.transAxes, ha="center", va="center")
        ax.fill_between(x, x * (1 - VALIDATION_BAND), x * (1 + VALIDATION_BAND), color="0.85", zorder=1,
                        label=f"within {VALIDATION_BAND:.0%}")  # fmt: skip
        ax.plot(x, x, color="0.3", linewidth=0.9, zorder=2, label="predicted = measured")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(x[0], x[-1])
        ax.set_ylim(x[0], x[-1])
        ax.set_aspect("equal", adjustable="box")
        ax.xaxis.set_minor_formatter(_no_labels())  # a narrow decade's minor labels run into each other
        ax.yaxis.set_minor_formatter(_no_labels())
        ax.set_xlabel("measured throughput (images/s)")
        ax.set_ylabel("predicted throughput (images/s)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
        overall = validation.overall()["all"]
        title = "Predicted vs measured"
        if len(validation.tables) == 1 and validation.tables[0].gpu:
            t = validation.tables[0]
            title += f": {t.gpu_name}, {t.engine}, {t.dtype}"
        if overall.n:
            title += f" (n = {overall.n}, MdAPE {overall.mdape:.1%}, within 15% {overall.within_15:.0%})"
        ax.set_title(title, fontsize="medium")

    return draw
