"""Human-readable tables (tabulate) for estimates, GPUs, the zoo, sweeps and surveys."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

import numpy as np
from tabulate import tabulate

if TYPE_CHECKING:  # annotations only: every command imports just the analysis it runs
    from roofline.analysis.batch import BatchSweep
    from roofline.analysis.engines import Engine
    from roofline.analysis.fold import Folded
    from roofline.analysis.predict import Estimate
    from roofline.analysis.staircase import Staircase
    from roofline.analysis.widths import Adjustment
    from roofline.hardware.gpus import GPU
    from roofline.model.ir import Network
    from roofline.studies.learned.training import Comparison, Learned, LearnedModel
    from roofline.studies.survey import Survey
    from roofline.studies.validate import Stats, TableResult, Validation


def layer_table(estimate: Estimate) -> str:
    """One row per launched kernel, with what was fused into it and its waves."""
    ai, bound = estimate.kernel_ai(), estimate.kernel_bound()
    total = estimate.latency_s
    waves = estimate.waves
    rows = []
    for i, k in enumerate(estimate.fused.kernels):
        row = [k.name, k.describe(), estimate.flops[i] / 1e9, estimate.bytes[i] / 1e6, ai[i], bound[i]]
        if waves is not None:
            row += [waves.tile[i], waves.blocks[i], waves.waves[i],
                    100 * waves.tile_efficiency[i], 100 * waves.tail_efficiency[i]]  # fmt: skip
        rows.append((*row, estimate.time_s[i] * 1e6, 100 * estimate.time_s[i] / total))
    headers = ["layer", "op (fused)", "GFLOP", "MB", "AI", "bound"]
    floatfmt = ["", "", ".3f", ".2f", ".1f", ""]
    if waves is not None:
        headers += ["tile", "blocks", "waves", "tile eff %", "tail eff %"]
        floatfmt += ["", "", "", ".1f", ".1f"]
    headers += ["time us", "% time"]
    floatfmt += [".1f", ".1f"]
    return tabulate(rows, headers=headers, floatfmt=floatfmt)


def summary_rows(estimates: list[Estimate]) -> str:
    rows = [
        (
            e.network.name,
            e.network.resolution,
            e.batch,
            e.flops_per_image / 1e9,
            e.network.params() / 1e6,
            e.arithmetic_intensity,
            e.peak.cmr,
            e.bound,
            e.latency_s * 1e3,
            e.throughput_img_s,
            e.achieved_flops_s / 1e12,
            100 * e.utilization,
        )
        for e in estimates
    ]
    headers = (
        "model", "res", "batch", "GFLOPs/img", "params M", "AI", "CMR", "bound",
        "latency ms", "img/s", "TFLOP/s", "util %",
    )  # fmt: skip
    return tabulate(
        rows,
        headers=headers,
        floatfmt=("", "", "", ".3f", ".2f", ".1f", ".1f", "", ".3f", ".0f", ".1f", ".1f"),
    )


def context_line(estimate: Estimate, batch: str | None = None) -> str:
    """Which GPU, dtype, batch, roofs and wave model every figure refers to."""
    peak, roof = estimate.peak, estimate.model_roof
    waves = "with" if estimate.waves is not None else "without"
    batch = batch or f"batch {estimate.batch}"
    return (
        f"{estimate.gpu.name} ({estimate.gpu.sms} SMs), {estimate.dtype}, {batch}, "
        f"{estimate.target.engine.name} kernels ({estimate.target.engine.accumulator} accumulate), "
        f"{waves} the wave model. "
        f"Utilization and CMR use the {peak.kind} peak: {peak.flops_s / 1e12:.1f} TFLOP/s, "
        f"{peak.dram_bytes_s / 1e9:.0f} GB/s. Kernels are timed on the achievable roof: "
        f"{roof.flops_s / 1e12:.1f} TFLOP/s, {roof.dram_bytes_s / 1e9:.0f} GB/s ({roof.source})."
    )


def network_report(estimate: Estimate) -> str:
    net = estimate.network
    lines = [
        f"== {net.name} ({net.source or 'IR'}) at {net.resolution}, {len(net.layers)} layers "
        f"-> {len(estimate.fused.kernels)} kernels",
        layer_table(estimate),
        "",
        summary_rows([estimate]),
        context_line(estimate),
    ]
    if net.unsupported_ops:
        ops = ", ".join(f"{op} x{n}" for op, n in sorted(net.unsupported_ops.items()))
        lines.append(f"Unsupported ops (bytes counted, no FLOPs): {ops}")
    return "\n".join(lines)


def gpu_table(gpus: list[GPU]) -> str:
    dtypes = ("fp32", "tf32", "fp16", "bf16", "int8", "fp8")
    rows = []
    for g in gpus:
        # "330.3/165.2": FP16- and FP32-accumulate rates where they differ (GeForce).
        peaks = [
            None if d not in g.peak_flops_s
            else f"{g.peak(d) / 1e12:g}/{g.peak(d, 'fp32') / 1e12:g}" if g.peak(d, "fp32") != g.peak(d)
            else g.peak(d) / 1e12
            for d in dtypes
        ]  # fmt: skip
        cmr = g.peak_flops_s["fp16"] / g.dram_bandwidth_bytes_s if "fp16" in g.peak_flops_s else None
        rows.append(
            (g.key, g.name, g.compute_capability, g.sms, g.boost_clock_mhz,
             g.dram_bandwidth_bytes_s / 1e9, g.memory_bytes / 2**30, g.l2_bytes / 2**20, *peaks, cmr,
             ", ".join(g.aliases))
        )  # fmt: skip
    headers = ("key", "name", "CC", "SMs", "boost MHz", "GB/s", "mem GiB", "L2 MiB",
               *(f"{d} TF" for d in dtypes), "fp16 CMR", "aliases")  # fmt: skip
    # Compute capabilities stay text: "12.0" is not the number 12.
    return tabulate(rows, headers=headers, missingval="-", floatfmt="g", disable_numparse=[2])


def engine_table(engines: list[Engine]) -> str:
    from roofline.model.fusion import ACTIVATIONS

    def rules(e: Engine) -> str:
        f = e.fusion
        chains = "pointwise chains" + (" + reductions" if f.fuse_reductions else "")
        acts = (
            "all"
            if f.epilogue_activations == ACTIVATIONS
            else ",".join(sorted(f.epilogue_activations)) or "-"
        )
        parts = [f"fold BN: {'yes' if f.fold_bn else 'no'}", f"epilogue act: {acts}",
                 f"epilogue add: {'yes' if f.epilogue_add else 'no'}",
                 chains if f.pointwise_chains else "",
                 "concat eliminated" if f.eliminate_concat else "concat copied",
                 "fused attention" if f.fused_attention else ""]  # fmt: skip
        return "; ".join(p for p in parts if p)

    rows = [
        (e.key, e.name, e.accumulator, e.kernel_overhead_s * 1e6, e.host_issue_s * 1e6, rules(e))
        for e in engines
    ]
    headers = ("key", "name", "accumulator", "launch us", "host us", "fusion")
    return tabulate(rows, headers=headers, floatfmt="g")


def zoo_table(networks: list[Network]) -> str:
    rows = [
        (n.name, n.resolution, len(n.layers), n.flops() / 1e9, n.params() / 1e6, n.source) for n in networks
    ]
    headers = ("model", "res", "layers", "GFLOPs/img", "params M", "source")
    return tabulate(rows, headers=headers, floatfmt=("", "", "", ".3f", ".2f", ""))


def staircase_table(stairs: Staircase) -> str:
    """One row per step of the staircase; ``*`` marks the layer's current width."""
    rows = []
    for step in stairs.steps():
        here = step["first_width"] <= stairs.width <= step["last_width"]
        last = f"{step['last_width']}" + ("" if step["closed"] else "+")
        rows.append(
            ("*" if here else "", f"{step['first_width']}-{last}", step["tile"], step["waves"],
             step["wave_time"], step["min_latency_s"] * 1e6, step["max_latency_s"] * 1e6,
             step["optimal_width"], 100 * step["utilization"], step["throughput_img_s"])
        )  # fmt: skip
    headers = ("", "widths", "tile", "waves", "wave time", "min us", "max us", "optimal", "util % at opt",
               "img/s at opt")  # fmt: skip
    return tabulate(rows, headers=headers, floatfmt=("", "", "", "", ".3g", ".2f", ".2f", "", ".1f", ".0f"))


def widths_table(result: Adjustment) -> str:
    """Old and new width of every free channel group, then the before/after totals."""
    d = result.to_dict()
    rows = [
        (g["id"], g["producers"][0] + (f" +{len(g['producers']) - 1}" if len(g["producers"]) > 1 else ""),
         g["old_width"], g["new_width"], "moved" if g["new_width"] != g["old_width"] else "",
         g["latency_gain_s"] * 1e6, g["param_gain"])
        for g in d["groups"]
    ]  # fmt: skip
    table = tabulate(rows, headers=("group", "layers", "old", "new", "", "LG us (alone)", "PG (alone)"),
                     floatfmt=("", "", "", "", "", ".2f", ""))  # fmt: skip
    target = (
        ""
        if result.target_s is None
        else (
            f" (target {result.target_s * 1e6:.1f} us: {'met' if result.met else 'NOT met'}, "
            f"tau {result.tau:g})"
        )
    )
    return "\n".join([
        f"== {result.network.name}: {result.mode} mode, {result.target.gpu.name}, {result.target.dtype}, "
        f"batch {result.batch}",
        table,
        f"latency {result.latency_before_s * 1e6:.1f} -> {result.latency_after_s * 1e6:.1f} us{target}",
        f"params {result.params_before:,} -> {result.params_after:,} "
        f"({100 * (result.params_after / result.params_before - 1):+.2f}%)",
    ])  # fmt: skip


def batch_sweep_table(sweep: BatchSweep, layers: bool = False) -> str:
    """One row per batch, then the limits; with ``layers``, each kernel's AI per batch."""
    rows = [
        (e.batch, e.arithmetic_intensity, 100 * sweep.share_above_cmr(e), e.bound, e.latency_s * 1e3,
         e.throughput_img_s, 100 * e.utilization, sweep.fit.bytes_at(e.batch) / 2**30)
        for e in sweep.estimates
    ]  # fmt: skip
    headers = ("batch", "AI", "% layers > CMR", "bound", "latency ms", "img/s", "util %", "memory GiB")
    first = sweep.estimates[0]
    fit = sweep.fit
    crossing = sweep.cmr_crossing_batch
    if crossing is None:
        cross = f"never (AI limit {sweep.ai_limit:.1f} <= CMR {sweep.cmr:.1f})"
    else:
        cross = f"batch {crossing}" + ("" if crossing <= fit.max_batch else " (does not fit in memory)")
    lines = [
        f"== {sweep.fused.network.name} on {first.gpu.name}, {first.dtype}",
        tabulate(rows, headers=headers, floatfmt=("", ".1f", ".0f", "", ".3f", ".0f", ".1f", ".2f")),
        f"largest batch that fits: {fit.max_batch} ({fit.gpu_memory_bytes / 2**30:.0f} GiB = "
        f"{fit.weight_bytes / 2**20:.0f} MiB weights + {fit.live_bytes_per_image / 2**20:.2f} MiB live "
        f"activations per sample x batch + {(fit.workspace_bytes + fit.reserved_bytes) / 2**30:.0f} GiB "
        "workspace and context)",
        f"AI limit at large batch: {sweep.ai_limit:.1f} FLOP/byte; CMR {sweep.cmr:.1f} "
        f"({first.peak.kind} peak); AI crosses the CMR at: {cross}",
        "% layers > CMR counts kernels that carry FLOPs (convolutions and GEMMs).",
    ]
    if layers:
        ai = [e.kernel_ai() for e in sweep.estimates]
        rows = [
            (k.name, k.describe(), *(a[i] for a in ai), sweep.kernel_ai_limit[i])
            for i, k in enumerate(sweep.fused.kernels)
        ]
        headers = ("layer", "op", *(f"AI@{e.batch}" for e in sweep.estimates), "limit")
        lines += ["", tabulate(rows, headers=headers, floatfmt=".1f")]
    return "\n".join(lines)


FOLD_RATIOS = ("flops", "bytes", "arithmetic_intensity", "throughput_img_s", "utilization")


def fold_dict(folded: Folded, before: Estimate, after: Estimate) -> dict:
    """``roofline fold --json``: both summaries (as ``analyze``), their ratios and the exceptions."""
    b, a = before.to_dict(layers=False), after.to_dict(layers=False)
    values = {
        "flops": (before.total_flops, after.total_flops),
        "bytes": (before.total_bytes, after.total_bytes),
        "arithmetic_intensity": (before.arithmetic_intensity, after.arithmetic_intensity),
        "throughput_img_s": (before.throughput_img_s, after.throughput_img_s),
        "utilization": (before.utilization, after.utilization),
    }
    return {
        "model": before.network.name,
        "factor": folded.factor,
        "gpu": before.gpu.key,
        "dtype": before.dtype,
        "batch": before.batch,
        "folded_batch": after.batch,
        "width_scale": folded.width_scale,
        "width_multiple": folded.width_multiple,
        "before": b,
        "after": a,
        "ratios": {k: values[k][1] / values[k][0] for k in FOLD_RATIOS},
        "exceptions": [e.to_dict() for e in folded.exceptions],
    }


def fold_table(folded: Folded, before: Estimate, after: Estimate) -> str:
    d = fold_dict(folded, before, after)
    rows = [
        (label, x.total_flops / 1e9, x.total_bytes / 1e9, x.arithmetic_intensity, x.throughput_img_s,
         100 * x.utilization, x.batch, x.network.params() / 1e6)
        for label, x in (("before", before), (f"folded f={folded.factor}", after))
    ]  # fmt: skip
    r = d["ratios"]
    rows.append(("after / before", r["flops"], r["bytes"], r["arithmetic_intensity"],
                 r["throughput_img_s"], r["utilization"], None, None))  # fmt: skip
    headers = ("", "GFLOP/batch", "GB/batch", "AI", "img/s", "util %", "samples", "params M")
    lines = [
        f"== {before.network.name} folded by {folded.factor} on {before.gpu.name}, {before.dtype}, "
        f"{before.images} images per batch",
        tabulate(rows, headers=headers, floatfmt=("", ".2f", ".3f", ".2f", ".2f", ".2f", "", ".2f")),
        f"widths x{folded.width_scale:.3f} rounded to multiples of {folded.width_multiple}; "
        f"input channels x{folded.factor}; the classifier emits {folded.factor} predictions per sample.",
    ]
    if folded.exceptions:
        lines.append(f"The folding argument does not hold for {len(folded.exceptions)} layers:")
        by_reason: dict[str, list] = {}
        for e in folded.exceptions:
            by_reason.setdefault(e.reason, []).append(e)
        for reason, items in by_reason.items():
            names = ", ".join(e.layer for e in items[:4]) + (", ..." if len(items) > 4 else "")
            ratio = sum(e.flops_ratio for e in items) / len(items)
            lines.append(f"  {len(items)} x {reason} (mean FLOPs ratio {ratio:.2f}): {names}")
    return "\n".join(lines)


def survey_table(s: Survey) -> str:
    """Per model: batch, AI vs CMR, bound, throughput, utilization, frontier membership (and folding)."""
    front = set(s.frontier())
    rows = []
    for i, e in enumerate(s.entries):
        est = e.estimate
        row = [e.name, est.batch, est.flops_per_image / 1e9, est.arithmetic_intensity, est.peak.cmr,
               est.bound, est.throughput_img_s, 100 * est.utilization, "*" if i in front else ""]  # fmt: skip
        if s.fold_factor:
            f = e.folded
            row += [f.throughput_img_s if f else None, 100 * f.utilization if f else None]
        if e.top1 is not None or any(x.top1 is not None for x in s.entries):
            row.append(e.top1)
        rows.append(row)
    headers = ["model", "batch", "GFLOPs/img", "AI", "CMR", "bound", "img/s", "util %", "frontier"]
    if s.fold_factor:
        headers += [f"folded f={s.fold_factor} img/s", "folded util %"]
    if any(x.top1 is not None for x in s.entries):
        headers.append("top-1 %")
    first = s.entries[0].estimate
    return "\n".join(
        [
            tabulate(rows, headers=headers, floatfmt=".1f", missingval="-"),
            f"{len(s.entries)} models; {len(front)} on the throughput-utilization frontier (*). "
            + context_line(first, "batch per model (the largest that fits)" if s.batch == "max" else None),
        ]
    )


def nats_report(sweep: Any, top: int, frontiers: bool) -> str:
    """Frontier sizes, then the fastest and the best-utilized networks of a NATS-Bench sweep."""
    d = sweep.to_dict(top=top, frontiers=frontiers)
    headers = ("channels", "MFLOPs/img", "params K", "AI", "latency us", "img/s", "util %")

    def table(rows: list[dict]) -> str:
        return tabulate(
            [(r["channels"], r["flops_per_image"] / 1e6, r["params"] / 1e3, r["arithmetic_intensity"],
              r["latency_s"] * 1e6, r["throughput_img_s"], 100 * r["utilization"]) for r in rows],
            headers=headers, floatfmt=("", ".1f", ".1f", ".1f", ".1f", ".0f", ".1f"),
        )  # fmt: skip

    sizes = d["frontier_sizes"]
    lines = [
        f"== NATS-Bench size space: {d['networks']} networks on {d['gpu']}, {d['dtype']}, "
        f"batch {d['batch']}, {d['resolution']}x{d['resolution']} input",
        *(f"{kind} frontier: {n} networks" for kind, n in sizes.items()),
        "",
        f"fastest {top}:",
        table(d["best_throughput"]),
        "",
        f"highest utilization {top}:",
        table(d["best_utilization"]),
    ]
    for kind, rows in d.get("frontiers", {}).items():
        lines += ["", f"{kind} frontier:", table(rows)]
    return "\n".join(lines)


def space_csv(sweep: Any, kinds: tuple[str, ...]) -> str:
    """One row per network of a search-space sweep, with frontier membership."""
    member = {kind: np.zeros(sweep.networks, dtype=bool) for kind in kinds}
    for kind in kinds:
        member[kind][sweep.frontier(kind)] = True
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    flags = [f"on_{k.replace('-', '_')}_frontier" for k in kinds]
    writer.writerow(["channels", "flops_per_image", "params", "bytes", "arithmetic_intensity", "latency_s",
                     "throughput_img_s", "utilization", *flags])  # fmt: skip
    for i, name in enumerate(sweep.names()):
        writer.writerow([name, sweep.flops[i], int(sweep.params[i]), sweep.bytes[i],
                         sweep.arithmetic_intensity[i], sweep.latency_s[i], sweep.throughput_img_s[i],
                         sweep.utilization[i], *(int(member[k][i]) for k in kinds)])  # fmt: skip
    return buf.getvalue()


def gpunet_dict(samples: np.ndarray, est: Any, tiers: tuple, seed: int) -> dict:
    """``roofline gpunet --json``: the setting, then each tier with its most-FLOPs sample's encoding."""
    return {
        "space": "gpunet",
        "gpu": est.target.gpu.key,
        "dtype": est.target.dtype,
        "batch": est.batch,
        "samples": len(est),
        "seed": seed,
        "distinct_blocks": est.distinct_blocks,
        "measured_kernels": int(est.measured_kernels.sum()),
        "peak": est.peak.to_dict(),
        "tiers": [
            {
                "tier": t.tier, "count": t.count, "min_latency_s": t.min_latency_s,
                "max_latency_s": t.max_latency_s, "best_flops_per_image": t.max_flops_per_image,
                "best_encoding": samples[t.best_index].tolist() if t.best_index >= 0 else None,
                "best_utilization": float(est.utilization[t.best_index]) if t.best_index >= 0 else None,
            }
            for t in tiers
        ],
    }  # fmt: skip


def gpunet_report(samples: np.ndarray, est: Any, tiers: tuple) -> str:
    rows = [
        (t.tier, t.count, t.min_latency_s * 1e3, t.max_latency_s * 1e3, t.max_flops_per_image / 1e9,
         100 * est.utilization[t.best_index], " ".join(map(str, samples[t.best_index])))
        if t.count else (t.tier, 0)  # an empty tier: "-" in every other column
        for t in tiers
    ]  # fmt: skip
    headers = ("tier", "samples", "min ms", "max ms", "best GFLOPs", "its util %", "its 41-int encoding")
    fmt = ("", "", ".3f", ".3f", ".2f", ".1f", "")
    return "\n".join(
        [
            f"== GPUNet space: {len(est)} Sobol samples on {est.target.gpu.name}, {est.target.dtype}, "
            f"batch {est.batch} "
            f"({est.distinct_blocks} distinct blocks evaluated)",
            tabulate(rows, headers=headers, floatfmt=fmt, missingval="-"),
            "Best = most FLOPs within the tier's latency range. Encoding: resolution, stage-0 filters, "
            "stage-1 kernel/act/layers, then filters/kernel/E/SE/act/layers for stages 2-7 "
            "(act 0 = ReLU, 1 = Swish).",
        ]
    )


def gpunet_csv(samples: np.ndarray, est: Any, tiers: np.ndarray) -> str:
    """One row per sample: its 41 integers, then the estimates and its tier."""
    from roofline.studies.spaces.gpunet import POSITION_NAMES

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    estimates = ["latency_s", "throughput_img_s", "flops_per_image", "params", "utilization", "tier"]
    writer.writerow([*POSITION_NAMES, *estimates])
    for i in range(len(est)):
        figures = [est.latency_s[i], est.throughput_img_s[i], est.flops_per_image[i], int(est.params[i])]
        writer.writerow([*samples[i].tolist(), *figures, est.utilization[i], int(tiers[i])])
    return buf.getvalue()


#: validate's text report: rows, families and reasons shown before "... and N more".
VALIDATION_WORST = 10
VALIDATION_MIN_FAMILY = 3
VALIDATION_LISTED = 8
_RATIO = "median pred/meas"


def _percent(x: float | None) -> float | None:
    return None if x is None else 100 * x


def _stats_table(stats: dict[str, Stats]) -> str:
    rows = [
        (name, s.n, s.median_ratio, _percent(s.mdape), _percent(s.within_10), _percent(s.within_15),
         s.spearman)
        for name, s in stats.items()
    ]  # fmt: skip
    headers = ("rows", "n", _RATIO, "MdAPE %", "within 10 %", "within 15 %", "Spearman")
    fmt = ("", "", ".3f", ".1f", ".1f", ".1f", ".3f")
    return tabulate(rows, headers=headers, floatfmt=fmt, missingval="-")


def _more(items: list[str], listed: int = VALIDATION_LISTED) -> str:
    shown = ", ".join(items[:listed])
    return shown + (f" and {len(items) - listed} more" if len(items) > listed else "")


def _worst_table(t: TableResult) -> str:
    rows = [
        (r.model, r.resolution, r.batch, r.kind, r.kernel_class, r.predicted_img_s, r.measured_img_s,
         r.ratio)
        for r in t.worst(VALIDATION_WORST)
    ]  # fmt: skip
    headers = ("model", "px", "batch", "kind", "kernel class", "predicted img/s", "measured img/s",
               "pred/meas")  # fmt: skip
    return tabulate(rows, headers=headers, floatfmt=("", "", "", "", "", ".0f", ".0f", ".3f"))


def _validation_table(t: TableResult) -> str:
    unresolved_rows = sum(len(u.sources) for u in t.unresolved)
    where = f"{t.gpu_name} ({t.gpu}), {t.engine}, {t.dtype}" if t.gpu else "no rows to predict"
    lines = [
        f"== {t.path}: {where}",
        f"{len(t.rows)} rows predicted, {unresolved_rows} unresolved "
        f"({len(t.unresolved)} model{'' if len(t.unresolved) == 1 else 's'}), "
        f"{len(t.problems)} skipped as unreadable",
    ]
    if t.rows:
        lines += ["", _stats_table(t.stats()), "", "furthest from the measurement:", _worst_table(t), ""]
        families = [(b.group, b.n, b.median_ratio) for b in t.bias_by_family()]
        families = [f for f in families if f[1] >= VALIDATION_MIN_FAMILY]
        if families:
            lines += [
                f"bias by family (families with >= {VALIDATION_MIN_FAMILY} rows):",
                tabulate(families, headers=("family", "n", _RATIO), floatfmt=".3f"),
                "",
            ]
        classes = [(b.group, b.n, b.median_ratio) for b in t.bias_by_kernel_class()]
        lines += [
            "bias by dominant kernel class (where the prediction spends most time):",
            tabulate(classes, headers=("kernel class", "n", _RATIO), floatfmt=".3f"),
        ]
    if t.unresolved:
        lines += ["", f"unresolved (model@resolution), by reason: {len(t.unresolved)}"]
        for reason, group in t.unresolved_by_reason().items():
            names = [f"{u.model}@{u.resolution}" for u in group]
            lines.append(f"  {reason} ({len(group)}): {_more(names)}")
    if t.problems:
        lines += ["", f"skipped rows: {len(t.problems)}"]
        lines += [f"  {p}" for p in t.problems[:VALIDATION_LISTED]]
        if len(t.problems) > VALIDATION_LISTED:
            lines.append(f"  ... and {len(t.problems) - VALIDATION_LISTED} more (--json lists all)")
    return "\n".join(lines)


def validation_report(v: Validation) -> str:
    """Per measured table: agreement statistics, the worst rows, biases, and what could not be predicted."""
    parts = [_validation_table(t) for t in v.tables]
    if len(v.tables) > 1:
        parts.append(f"== all {len(v.tables)} tables pooled\n\n{_stats_table(v.overall())}")
    parts.append(
        "pred/meas > 1: the roofline predicts more images/s than were measured. "
        "MdAPE = median |pred/meas - 1|; Spearman: rank correlation of predicted and measured throughput."
    )
    return "\n\n".join(parts)


#: Skipped models listed by ``learn_report`` (``--json`` lists all).
LEARN_LISTED = 10


def _learned_notes(learned: list[Learned]) -> list[str]:
    """Which model made the learned figures, what their range means, and what it extrapolates."""
    model = learned[0].model
    lines = [
        f"Learned: {model.describe()}. Utilization refers to the same peak as the analytic figures; "
        "the range is +-1 standard deviation of the trees' log predictions (the model's own uncertainty, not "
        "measurement noise).",
    ]
    extrapolated = sorted({why for guess in learned for why in guess.extrapolated})
    if extrapolated:
        lines.append(
            f"Extrapolated (the spread does not cover this): {'; '.join(extrapolated)}. "
            "Retrain with measurements of it: `roofline learn`."
        )
    return lines


def learned_report(learned: list[Learned]) -> str:
    """The learned throughput and utilization beside the analytic ones, one row per model."""
    rows = [
        (g.estimate.network.name, g.estimate.batch, g.estimate.throughput_img_s, g.throughput_img_s,
         100 * g.estimate.utilization, 100 * g.utilization,
         f"{100 * g.to_dict()['uncertainty']['utilization_low']:.1f}-"
         f"{100 * g.to_dict()['uncertainty']['utilization_high']:.1f}")
        for g in learned
    ]  # fmt: skip
    headers = ("model", "batch", "analytic img/s", "learned img/s", "analytic util %", "learned util %",
               "learned util range")  # fmt: skip
    table = tabulate(rows, headers=headers, floatfmt=("", "", ".0f", ".0f", ".1f", ".1f", ""))
    return "\n".join([table, *_learned_notes(learned)])


def headroom_report(learned: list[Learned]) -> str:
    """The scheduler's view (utilization-prediction study, case study): which models leave most of the
    GPU idle, and the co-location headroom 1 - utilization, from the learned utilization."""
    ordered = sorted(learned, key=lambda g: g.utilization)
    rows = []
    for g in ordered:
        spread = g.to_dict()["uncertainty"]
        rows.append(
            (g.estimate.network.name, g.estimate.batch, 100 * g.estimate.utilization, 100 * g.utilization,
             f"{100 * spread['utilization_low']:.1f}-{100 * spread['utilization_high']:.1f}",
             g.throughput_img_s, 100 * g.headroom)
        )  # fmt: skip
    headers = ("model", "batch", "analytic util %", "learned util %", "range %", "learned img/s",
               "headroom %")  # fmt: skip
    idle = sum(g.headroom > 0.5 for g in learned)
    lines = [
        "Co-location headroom (1 - learned utilization), most idle first:",
        tabulate(rows, headers=headers, floatfmt=("", "", ".1f", ".1f", "", ".0f", ".1f")),
        f"{idle} of {len(learned)} models would leave more than half of the GPU's peak FLOP/s idle.",
        *_learned_notes(learned),
    ]
    return "\n".join(lines)


def comparison_table(c: Comparison) -> str:
    """The feature sets x regressors, scored on both splits (a GitHub-flavoured markdown table)."""
    splits = list(c.splits)
    keys = list(dict.fromkeys((s.features, s.regressor) for s in c.scores))
    score = {(s.split, s.features, s.regressor): s for s in c.scores}
    rows = []
    for features, regressor in keys:
        row = [features, regressor]
        for split in splits:
            s = score.get((split, features, regressor))
            row += [f"{s.rmsle:.3f}", f"{100 * s.mdape:.1f}%", f"{s.spearman:.3f}"] if s else ["", "", ""]
        rows.append(row)
    headers = ["features", "regressor"]
    for split in splits:
        headers += [f"{split}: RMSLE", f"{split}: MdAPE", f"{split}: Spearman"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def learn_report(summary: dict[str, Any], model: LearnedModel, comparison: Comparison | None) -> str:
    lines = []
    if summary["out"]:
        lines.append(f"wrote {summary['out']}: {summary['rows']} measurements")
    lines.append(
        f"trained {model.describe().replace(', this run', '')} in {summary['training_s']:.1f} s "
        f"(target {summary['target']})"
    )
    skipped = summary["skipped"]
    if skipped:
        lines.append(f"left out {len(skipped)} measurements whose model could not be resolved:")
        reasons: dict[str, list[str]] = {}
        for s in skipped:
            reasons.setdefault(s["reason"], []).append(f"{s['model']}@{s['resolution']}")
        for reason, names in list(reasons.items())[:LEARN_LISTED]:
            lines.append(f"  {reason} ({len(names)}): {_more(sorted(set(names)))}")
        if len(reasons) > LEARN_LISTED:
            lines.append(f"  ... and {len(reasons) - LEARN_LISTED} more reasons (--json lists all)")
    if summary["unreadable"]:
        lines.append(f"skipped {len(summary['unreadable'])} unreadable rows, e.g. {summary['unreadable'][0]}")
    if comparison is not None:
        lines += [
            "",
            f"{comparison.target}, {comparison.rows} measurements, {comparison.families} families; "
            + "; ".join(f"{k} split: {v}" for k, v in comparison.splits.items()),
            "",
            comparison_table(comparison),
            "",
            "RMSLE of utilization in percent (the study's scale), MdAPE = median |pred/meas - 1|, Spearman's "
            "rank correlation; 'analytic' is the analytic model's own prediction, no fit.",
        ]
        chosen = [s for s in comparison.scores if s.params and s.split == "family"]
        if chosen:
            lines.append(
                "grid choices (on the family split, used for every split): "
                + "; ".join(f"{s.features}/{s.regressor}: {dict(s.params)}" for s in chosen)
            )
    return "\n".join(lines)
