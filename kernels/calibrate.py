"""Measure this GPU's achievable roof and write the calibration file ``roofline`` reads.

    python -m kernels.calibrate [--out FILE] [--dtypes fp16,bf16,...] [--quick] [--device N] [--json]
                                [--skip-kernel-classes]

For each dtype (default: every ``kernels.microbench.gemm_dtypes`` entry of the
device's compute capability that the GPU database also lists a datasheet peak
for) it runs ``gemm_peak`` (best of several square GEMM sizes), then
``copy_bandwidth``, then the kernel-class benchmarks
(``kernels.microbench.kernel_classes``: depthwise conv, narrow grouped conv,
pointwise ops, fused attention; ``--skip-kernel-classes`` leaves them out for a
quick run). The file (default ``calibration-<gpu key>.json``) has the
format ``roofline.hardware.calibration.load_calibration`` reads, the measured
kernel-class terms included (``"kernel_efficiency": {"cuda_core_compute": ...,
"depthwise_bandwidth": ..., "attention_compute": ...}``, each in (0, 1], which
replace the GPU generation's defaults), plus, for the record, the
datasheet figures, measured/datasheet ratios, every measurement's samples,
median and stability, the winning GEMM size, each term's raw value and the
figures it came from, and the environment fingerprint.
It is written atomically and read back with ``load_calibration`` before the
command reports success; ``roofline analyze MODEL --calibration FILE`` then
uses it as the achievable roof.

The acceptance targets (GEMM >= 80% of the dense datasheet peak, copy >= 85%
of the datasheet bandwidth, each kernel-class term >= its default, the
pointwise ops' bandwidth >= 85%) are the efficiencies ``roofline.hardware.efficiency``
assumes without a calibration: a GPU below them is slower than the uncalibrated
model thinks. They are reported, never failed on. Progress goes to stderr; bad
input and a machine without a CUDA GPU exit with status 2 and one line.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from tabulate import tabulate

from kernels.benchmark import environment as fingerprint
from kernels.microbench import KernelClasses, Result, gemm_dtypes
from kernels.provenance import provenance
from kernels.timing import QUICK, TimingConfig
from roofline import files
from roofline.dtypes import DTYPE_BYTES
from roofline.errors import RooflineError
from roofline.hardware import efficiency
from roofline.hardware.calibration import CALIBRATION_FORMAT, load_calibration
from roofline.hardware.gpus import GPU

#: Acceptance targets (see module doc): the default efficiencies of ``roofline.hardware.efficiency``.
GEMM_TARGET = efficiency.default_efficiency("default").gemm_compute
COPY_TARGET = efficiency.default_efficiency("default").bandwidth
#: ``--quick``: the same shape of run with short warmup and windows (a smoke test, not a calibration).
QUICK_SIZES = (8192,)
QUICK_COPY_BYTES = 1 << 28
SIZES = (4096, 8192, 16384)
COPY_BYTES = 1 << 30
NO_GPU = "no CUDA GPU visible: calibration measures the GPU it runs on"


def _met(ratio: float | None, target: float) -> bool | None:
    return None if ratio is None else ratio >= target


def calibration_document(
    gpu: GPU,
    gemm_results: Sequence[Result],
    copy_result: Result,
    environment: Mapping[str, Any],
    kernel_classes: KernelClasses | None = None,
) -> dict[str, Any]:
    """The calibration file's JSON object (``roofline.hardware.calibration.load_calibration`` format,
    plus the record).

    ``peak_flops_s[dtype]`` is each GEMM result's median rate and ``dram_bytes_s`` the copy's (the
    achievable roof: DESIGN.md, "Core definitions"); ratio = measured / datasheet. ``environment`` is
    ``kernels.benchmark.environment()`` with its ``provenance()``; ``host`` and ``date`` name the source.
    ``kernel_classes`` (``kernels.microbench.kernel_classes``) adds ``kernel_efficiency``, the terms it
    measured (``KernelClasses.kernel_efficiency``), and its record under ``kernel_classes``.
    """
    if copy_result.unit != "B/s":
        raise RooflineError(f"the copy result is in {copy_result.unit}, not B/s; pass copy_bandwidth()'s")
    peaks: dict[str, float] = {}
    for result in gemm_results:
        if result.unit != "flop/s" or result.dtype not in DTYPE_BYTES:
            raise RooflineError(f"{result.name} is not a GEMM result (flop/s at a roofline dtype)")
        if result.dtype in peaks:
            raise RooflineError(f"two GEMM results for {result.dtype}; pass one per dtype (gemm_peak's)")
        peaks[result.dtype] = result.rate
    for name, rate in (("copy", copy_result.rate), *peaks.items()):
        if not rate > 0:
            raise RooflineError(f"the {name} rate is {rate!r}; a calibration needs positive rates, re-run it")
    datasheet_peaks = {dtype: gpu.peak_flops_s.get(dtype) for dtype in peaks}
    peak_ratios = {d: None if not datasheet_peaks[d] else peaks[d] / datasheet_peaks[d] for d in peaks}
    copy_ratio = copy_result.rate / gpu.dram_bandwidth_bytes_s
    host = environment.get("host", "unknown host")
    date = environment.get("date", "unknown date")
    document: dict[str, Any] = {
        "format": CALIBRATION_FORMAT,
        "version": 1,
        "gpu": gpu.key,
        "source": f"kernels.calibrate on {host}, {date}",
        "dram_bytes_s": copy_result.rate,
        "peak_flops_s": peaks,
    }
    if kernel_classes is not None:
        if kernel_classes.gpu != gpu.key:
            raise RooflineError(
                f"the kernel-class results were measured on {kernel_classes.gpu}, not {gpu.key}; "
                "pass the results of this GPU"
            )
        terms = kernel_classes.kernel_efficiency()
        if terms:  # only measured terms: the others keep the generation's defaults
            document["kernel_efficiency"] = terms
    document.update({
        "gpu_name": gpu.name,
        "datasheet": {
            "dram_bytes_s": gpu.dram_bandwidth_bytes_s,
            "peak_flops_s": datasheet_peaks,
            "sources": {k: gpu.sources.get(k) for k in ("peak_flops_s", "dram_bandwidth_bytes_s")},
        },
        "ratio_to_datasheet": {"dram_bytes_s": copy_ratio, "peak_flops_s": peak_ratios},
        "targets": {
            "peak_flops_s": GEMM_TARGET,
            "dram_bytes_s": COPY_TARGET,
            "met": {
                "dram_bytes_s": _met(copy_ratio, COPY_TARGET),
                "peak_flops_s": {d: _met(r, GEMM_TARGET) for d, r in peak_ratios.items()},
            },
        },
        "gemm_size": {r.dtype: r.details.get("size") for r in gemm_results},
        "measurements": {r.name: r.to_dict() for r in (*gemm_results, copy_result)},
        "environment": dict(environment),
    })  # fmt: skip
    if kernel_classes is not None:
        document["kernel_classes"] = _kernel_class_record(gpu, kernel_classes)
    return document


def _kernel_class_record(gpu: GPU, classes: KernelClasses) -> dict[str, Any]:
    """``KernelClasses.to_dict`` with the defaults each term replaces and the verdicts against them."""
    defaults = efficiency.efficiency_for(gpu)
    record = classes.to_dict()
    record["generation"] = defaults.generation
    record["defaults"] = {name: getattr(defaults, name) for name in efficiency.CALIBRATED_TERMS}
    record["met"] = {name: term.value >= record["defaults"][name] for name, term in classes.terms().items()}
    if classes.pointwise is not None:
        record["pointwise"]["target"] = COPY_TARGET
        record["pointwise"]["met"] = [b.value >= COPY_TARGET for b in classes.pointwise.bandwidth]
    return record


def _percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.1%}"


def _verdict(met: bool | None) -> str:
    return "-" if met is None else ("met" if met else "MISSED")


def summary(document: Mapping[str, Any]) -> str:
    """The human report of a calibration document: GEMM table, copy table, target verdicts."""
    ratios, met, sheet = document["ratio_to_datasheet"], document["targets"]["met"], document["datasheet"]
    measurements = document["measurements"]
    rows = []
    for dtype, rate in document["peak_flops_s"].items():
        datasheet = sheet["peak_flops_s"].get(dtype)
        stable = measurements[f"gemm-{dtype}"]["stable"]
        rows.append([
            dtype, rate / 1e12, None if datasheet is None else datasheet / 1e12,
            _percent(ratios["peak_flops_s"][dtype]), _verdict(met["peak_flops_s"][dtype]),
            document["gemm_size"].get(dtype), "yes" if stable else "NO",
        ])  # fmt: skip
    gemm = tabulate(
        rows,
        headers=[
            "dtype",
            "measured TFLOP/s",
            "datasheet TFLOP/s",
            "% of datasheet",
            f"target {GEMM_TARGET:.0%}",
            "GEMM size",
            "stable",
        ],  # fmt: skip
        floatfmt=".1f",
        missingval="-",
    )
    copy = measurements["copy"]
    copy_row = [[
        "copy", document["dram_bytes_s"] / 1e9, sheet["dram_bytes_s"] / 1e9, _percent(ratios["dram_bytes_s"]),
        _verdict(met["dram_bytes_s"]), f"{copy['details'].get('nbytes', 0) / 2**20:.0f} MiB",
        "yes" if copy["stable"] else "NO",
    ]]  # fmt: skip
    bandwidth = tabulate(
        copy_row,
        headers=[
            "",
            "measured GB/s",
            "datasheet GB/s",
            "% of datasheet",
            f"target {COPY_TARGET:.0%}",
            "buffer",
            "stable",
        ],  # fmt: skip
        floatfmt=".0f",
    )
    missed = [d for d, ok in met["peak_flops_s"].items() if ok is False]
    if met["dram_bytes_s"] is False:
        missed.append("copy")
    sections = [f"{document['gpu_name']} ({document['gpu']})\n{gemm}", bandwidth]
    if "kernel_classes" in document:
        text, class_missed = _kernel_class_summary(document["kernel_classes"])
        sections.append(text)
        missed += class_missed
    verdict = (
        "all acceptance targets met"
        if not missed
        else f"below target: {', '.join(missed)} (reported, not failed; check clocks, power, other processes)"
    )
    return "\n\n".join([*sections, verdict])


def _yes(stable: bool) -> str:
    return "yes" if stable else "NO"


def _kernel_class_summary(record: Mapping[str, Any]) -> tuple[str, list[str]]:
    """The kernel-class part of the report: each timing's figures, each term against its default (the
    target), the pointwise bandwidth check; and the names below target."""
    timings = []
    for part in ("depthwise", "grouped", "pointwise", "attention"):
        result = record.get(part)
        if result is not None:
            timings += [result["timing"]] if part == "depthwise" else result["timings"]
    rows = [
        [t["label"], t["time_s"] * 1e3, t["flops_s"] / 1e12, t["bytes_s"] / 1e9, _yes(t["stable"])]
        for t in timings
    ]
    measured = tabulate(
        rows,
        headers=["kernel (fp16, eager torch)", "ms", "TFLOP/s", "GB/s", "stable"],
        floatfmt=("", ".4g", ".1f", ".0f", ""),
    )
    missed, rows = [], []
    for name, term in record["terms"].items():
        ok = record["met"][name]
        if not ok:
            missed.append(name)
        value = f"{term['value']:.3f}" + (f" (raw {term['raw']:.3f}, clipped)" if term["clipped"] else "")
        rows.append([name, value, f"{record['defaults'][name]:g}", _verdict(ok), term["basis"]])
    for name in record["defaults"]:
        if name not in record["terms"]:
            rows.append([name, "not measured", f"{record['defaults'][name]:g}", "-", "the default stays"])
    terms = tabulate(
        rows,
        headers=["term", "measured", f"default ({record['generation']})", "target: default", "from"],
        disable_numparse=True,  # "0.600" as written, not re-read as a number
    )
    sections = [measured, terms]
    pointwise = record.get("pointwise")
    if pointwise is not None:
        rows = []
        for timing, check, ok in zip(
            pointwise["timings"], pointwise["bandwidth"], pointwise["met"], strict=True
        ):
            name = timing["label"].split(" ")[0]
            if not ok:
                missed.append(name)
            rows.append([timing["label"], timing["bytes_s"] / 1e9, _percent(check["raw"]), _verdict(ok)])
        sections.append(tabulate(
            rows, headers=["pointwise (checks bandwidth)", "measured GB/s", "% of datasheet",
                           f"target {pointwise['target']:.0%}"], floatfmt=".0f",
        ))  # fmt: skip
    return "\n\n".join(sections), missed


# ---------------------------------------------------------------------------------------------- command line
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints the whole usage block; the contract is one line.
        self.exit(2, f"calibrate: error: {message} (see --help)\n")


def _dtypes(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [n for n in names if n not in DTYPE_BYTES]
    if unknown or not names:
        bad = ", ".join(unknown) or repr(text)
        raise argparse.ArgumentTypeError(f"unknown dtype {bad}: choose from {', '.join(DTYPE_BYTES)}")
    return names


def _device(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a device index >= 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m kernels.calibrate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", metavar="FILE", help="calibration file (default calibration-<gpu key>.json)")
    parser.add_argument(
        "--dtypes", type=_dtypes, metavar="A,B,...",
        help="GEMM dtypes to measure (default: all this GPU runs that the database has a peak for)",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="short warmup and windows (a smoke test)")
    parser.add_argument("--device", type=_device, default=0, help="CUDA device index (default 0)")
    parser.add_argument("--json", action="store_true", help="print the calibration document as JSON")
    parser.add_argument(
        "--skip-kernel-classes", action="store_true",
        help="measure only the GEMM peak and copy bandwidth, not the kernel-class terms (a quick run)",
    )  # fmt: skip
    return parser


def _check_out(out: str | None) -> None:
    if out is None:
        return
    if Path(out).is_dir():
        raise RooflineError(f"--out {out} is a directory; name a file, e.g. {Path(out) / 'calibration.json'}")
    files.check_parent(out)


def _select_dtypes(requested: Sequence[str] | None, gpu: GPU, cc: str) -> tuple[str, ...]:
    runnable = gemm_dtypes(cc)
    if requested is None:
        chosen = tuple(d for d in runnable if d in gpu.peak_flops_s)
        if not chosen:
            raise RooflineError(f"{gpu.name} has no datasheet peak for any of {', '.join(runnable)}")
        return chosen
    slow = [d for d in requested if d not in runnable]
    if slow:
        raise RooflineError(
            f"{', '.join(slow)} has no fast GEMM on CC {cc}; this GPU runs: {', '.join(runnable)}"
        )
    return tuple(requested)


def _say(message: str) -> None:
    print(f"calibrate: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure, write and verify; returns the document written."""
    _check_out(args.out)
    try:
        import torch
    except ImportError:
        raise RooflineError("torch is not installed: pip install 'roofline[torch]'") from None
    if not torch.cuda.is_available():
        raise RooflineError(NO_GPU)
    if args.device >= torch.cuda.device_count():
        raise RooflineError(f"--device {args.device}: only {torch.cuda.device_count()} CUDA devices visible")
    torch.cuda.set_device(args.device)
    from kernels import microbench

    gpu = microbench.device_gpu(args.device)
    major, minor = torch.cuda.get_device_capability(args.device)
    dtypes = _select_dtypes(args.dtypes, gpu, f"{major}.{minor}")
    out = Path(args.out or f"calibration-{gpu.key}.json")
    files.check_parent(out)
    config, sizes = (QUICK, QUICK_SIZES) if args.quick else (TimingConfig(), SIZES)
    then = "copy" if args.skip_kernel_classes else "copy, then the kernel classes"
    _say(
        f"{gpu.name} ({gpu.key}): GEMM {', '.join(dtypes)} at sizes {', '.join(map(str, sizes))}, then {then}"
    )
    classes = None
    try:
        gemms = [microbench.gemm_peak(d, sizes, config, _say, gpu=gpu) for d in dtypes]
        nbytes = QUICK_COPY_BYTES if args.quick else COPY_BYTES
        copy = microbench.copy_bandwidth(nbytes, config, _say, gpu=gpu)
        if not args.skip_kernel_classes:
            # The grouped conv's tensor-core model and attention_compute refer to the roof this file sets:
            # its fp16 GEMM when measured (microbench.gemm_reference says what stands in otherwise).
            fp16 = next((g.rate for g in gemms if g.dtype == microbench.CLASS_DTYPE), None)
            with warnings.catch_warnings(record=True) as clipped:
                warnings.simplefilter("always", microbench.ClippedTermWarning)
                classes = microbench.kernel_classes(config, _say, gpu=gpu, gemm_flops_s=fp16)
            for warning in clipped:  # one progress line each, not a warning with a source location
                _say(f"warning: {warning.message}")
    except torch.cuda.OutOfMemoryError:
        raise RooflineError(
            "the GPU ran out of memory: another process may hold it (see nvidia-smi); free it or use --quick"
        ) from None
    # The suite's fingerprint (telemetry + torch version) and provenance (host, date, commit).
    environment = {**fingerprint(args.device, ["torch"]), **provenance(), "quick": args.quick}
    document = calibration_document(gpu, gemms, copy, environment, classes)
    files.write_text(out, json.dumps(document, indent=1) + "\n")
    load_calibration(out, gpu)  # proof that roofline accepts what was written
    if args.json:
        json.dump(document, sys.stdout, indent=1)
        print()
    else:
        print(summary(document))
        print(
            f"\nwrote {out}; `roofline analyze MODEL --gpu {gpu.key} --calibration {out}` uses it as the roof"
        )
    return document


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except RooflineError as exc:
        print(f"calibrate: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
