"""Human-readable tables (tabulate) for estimates, GPUs and the zoo."""

from __future__ import annotations

from tabulate import tabulate

from .gpus import GPU
from .ir import Network
from .predict import Estimate
from .staircase import Staircase
from .widths import Adjustment


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
            e.network.flops() / 1e9,
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
        "model", "res", "GFLOPs/img", "params M", "AI", "CMR", "bound",
        "latency ms", "img/s", "TFLOP/s", "util %",
    )  # fmt: skip
    return tabulate(
        rows, headers=headers, floatfmt=("", "", ".3f", ".2f", ".1f", ".1f", "", ".3f", ".0f", ".1f", ".1f")
    )


def context_line(estimate: Estimate) -> str:
    """Which GPU, dtype, batch, roofs and wave model every figure refers to."""
    peak, roof = estimate.peak, estimate.model_roof
    waves = "with" if estimate.waves is not None else "without"
    return (
        f"{estimate.gpu.name} ({estimate.gpu.sms} SMs), {estimate.dtype}, batch {estimate.batch}, "
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
        peaks = [g.peak_flops_s[d] / 1e12 if d in g.peak_flops_s else None for d in dtypes]
        cmr = g.peak_flops_s["fp16"] / g.dram_bandwidth_bytes_s if "fp16" in g.peak_flops_s else None
        rows.append(
            (g.key, g.name, g.compute_capability, g.sms, g.boost_clock_mhz,
             g.dram_bandwidth_bytes_s / 1e9, g.memory_bytes / 2**30, g.l2_bytes / 2**20, *peaks, cmr,
             ", ".join(g.aliases))
        )  # fmt: skip
    headers = ("key", "name", "CC", "SMs", "boost MHz", "GB/s", "mem GiB", "L2 MiB",
               *(f"{d} TF" for d in dtypes), "fp16 CMR", "aliases")  # fmt: skip
    return tabulate(rows, headers=headers, missingval="-", floatfmt="g")


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
        f"== {result.network.name}: {result.mode} mode, {result.gpu.name}, {result.dtype}, "
        f"batch {result.batch}",
        table,
        f"latency {result.latency_before_s * 1e6:.1f} -> {result.latency_after_s * 1e6:.1f} us{target}",
        f"params {result.params_before:,} -> {result.params_after:,} "
        f"({100 * (result.params_after / result.params_before - 1):+.2f}%)",
    ])  # fmt: skip
