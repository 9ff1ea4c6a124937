"""The ``roofline`` command line.

    roofline analyze MODEL [MODEL ...] --gpu GPU --dtype DTYPE --batch N [--json]
    roofline staircase MODEL --layer NAME --gpu GPU [--batch N] [--widths A:B:STEP] [--plot FILE]
    roofline optimize-widths MODEL --gpu GPU --mode {latency,accuracy} [--tau T] [--delta D]
    roofline latency-table MODEL [MODEL ...] --gpu GPU --out FILE [--merge FILE]...
    roofline batch-sweep MODEL --gpu GPU --dtype DTYPE [--layers]
    roofline fold MODEL --factor F --gpu GPU --batch N [--out FILE.json]
    roofline survey [MODEL ...] --gpu GPU --dtype DTYPE --batch N|max [--fold F] [--accuracy CSV]
                    [--out DIR [--force]]
    roofline nats-sweep --gpu GPU --dtype DTYPE --batch N [--frontiers] [--out FILE.csv]
    roofline gpunet --samples N --seed S --gpu GPU --batch N [--tiers K | --tier-edges-ms A,B]
                    [--out FILE.csv]
    roofline gpus [--json]
    roofline zoo [--json]
    roofline perf-compare BASELINE.json RESULTS.json [--json] [--floor F] [--k K] [--alpha A]
    roofline validate MEASURED [MEASURED ...] [--gpu G] [--engine E] [--dtype D] [--models REGEX]
                      [--limit N] [--plot FILE] [--json]
    roofline learn DATA [DATA ...] [--out FILE.csv] [--compare] [--held-out-gpu G] [--json]

``analyze`` and ``survey`` take ``--learned`` (or ``--learned-model FILE``): the learned utilization
predictor's figures beside the analytic ones (``roofline.studies.learned``).

Every ``--batch`` also takes ``max``: the largest batch that fits in the GPU's
memory (``roofline.analysis.batch``). Bad input prints one line, ``roofline: error: ...``, and exits
with status 2.
``perf-compare`` exits 1 when a benchmark regressed, 3 when the two environments differ, and 4 when
the comparison is incomplete: a baseline benchmark missing from the results or without a valid verdict,
or nothing compared (a regression, 1, wins over 4).
Ctrl-C exits with status 130 and SIGTERM with 143; files being written are left as they were.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, NoReturn

from tqdm import tqdm

# Only what parsing needs is imported here; each command imports its own analysis, so starting the
# CLI costs what the chosen command uses (and `roofline gpus` does not load the survey or the plots).
from roofline import __version__, files
from roofline.analysis.target import PEAK_KINDS, Target
from roofline.cli import options, report
from roofline.dtypes import DTYPE_BYTES
from roofline.errors import RooflineError
from roofline.perf import gate

if TYPE_CHECKING:
    import os

    from roofline.analysis.latency_table import LatencyTable
    from roofline.model.ir import Network
    from roofline.perf.results import PerfResults

DEFAULT_BATCH = 256
#: roofline.analysis.widths.MODES, spelled out so that parsing does not import the width search.
WIDTH_MODES = ("latency", "accuracy")
#: roofline.studies.learned.training.TARGETS, spelled out so that parsing does not import scikit-learn.
LEARN_TARGETS = ("flop_utilization", "time_utilization")
#: More models than this get a progress bar (when stderr is a terminal).
PROGRESS_OVER = 3
#: validate --limit: more rows than any public table holds (timm's have about 1600).
MAX_VALIDATE_ROWS = 1 << 20


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints the whole usage block; the contract is one line.
        self.exit(2, f"roofline: error: {message} (see --help)\n")


def _add_gpu_dtype(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--gpu", default="v100", help="GPU key or alias (default v100; see `roofline gpus`)")
    cmd.add_argument("--dtype", default="fp16", choices=list(DTYPE_BYTES), help="datatype (default fp16)")
    cmd.add_argument(
        "--engine", default="tensorrt", metavar="E",
        help="execution engine whose kernels, accumulator and launch costs to model: tensorrt (default), "
        "torch, torch-compile or onnxruntime (see `roofline engines`)",
    )  # fmt: skip


def _add_target(cmd: argparse.ArgumentParser, batch: int | None) -> None:
    """The options every prediction takes: where, at what precision and batch, which block mapping.

    ``batch`` None: the command chooses its batches itself and takes no --batch.
    """
    _add_gpu_dtype(cmd)
    if batch is not None:
        cmd.add_argument(
            "--batch", type=options.batch, default=batch, metavar="N|max",
            help=f"batch size up to {options.MAX_BATCH}, or max: the largest that fits in GPU memory "
            f"(default {batch})",
        )  # fmt: skip
    cmd.add_argument(
        "--resolution", type=options.resolution,
        help=f"input height=width, up to {options.MAX_RESOLUTION} (default: the model's)",
    )  # fmt: skip
    cmd.add_argument(
        "--calibration", type=options.path, metavar="FILE", help="measured achievable peaks (JSON)"
    )
    cmd.add_argument(
        "--tile", type=options.tile, metavar="MxN",
        help="GEMM thread-block tile for every conv/GEMM (default: the heuristic in roofline.analysis.waves)",
    )  # fmt: skip
    cmd.add_argument(
        "--blocks-per-sm", type=options.integer(1, options.MAX_BLOCKS_PER_SM), metavar="B",
        help=f"GEMM blocks resident per SM, 1 to {options.MAX_BLOCKS_PER_SM} "
        "(default: from the tile's registers and shared memory)",
    )  # fmt: skip
    cmd.add_argument("--json", action="store_true", help="print JSON")


def _add_space_target(cmd: argparse.ArgumentParser, batch: int) -> None:
    """Search-space sweeps: one batch for every network, the heuristic tiles."""
    _add_gpu_dtype(cmd)
    cmd.add_argument(
        "--batch", type=options.space_batch, default=batch,
        help=f"one batch size for every network, up to {options.MAX_BATCH} (default {batch})",
    )  # fmt: skip
    cmd.add_argument(
        "--calibration", type=options.path, metavar="FILE", help="measured achievable peaks (JSON)"
    )
    cmd.add_argument(
        "--latency-table",
        type=options.path,
        metavar="FILE",
        help="per-layer latencies: measured entries override the model",
    )
    cmd.add_argument("--json", action="store_true", help="print JSON")


def _add_model_options(cmd: argparse.ArgumentParser) -> None:
    """How a command that resolves models gets them (``_resolve``)."""
    cmd.add_argument(
        "--no-cache", action="store_true",
        help="trace timm:/torchvision: models afresh, neither reading nor writing the IR cache "
        "($ROOFLINE_CACHE_DIR, else $XDG_CACHE_HOME/roofline/ir or ~/.cache/roofline/ir)",
    )  # fmt: skip
    cmd.add_argument(
        "--reparam", action="store_true",
        help="timm models in their deployed form: RepVGG, MobileOne, FastViT branches fused "
        "(timm.utils.model.reparameterize_model)",
    )  # fmt: skip


def _add_learned(cmd: argparse.ArgumentParser) -> None:
    """The learned predictor beside the analytic one (``roofline.studies.learned``)."""
    cmd.add_argument(
        "--learned", action="store_true",
        help="also predict utilization and throughput with the learned model (a random forest trained on "
        "public measurements at first use, cached), with its spread across trees",
    )  # fmt: skip
    cmd.add_argument(
        "--learned-model", type=options.path, metavar="FILE",
        help="the features table `roofline learn --out` wrote, instead of the shipped one "
        "(implies --learned)",
    )  # fmt: skip


def _add_file_overrides(cmd: argparse.ArgumentParser) -> None:
    """--gpu and --engine for commands that read measured files, which name their own."""
    cmd.add_argument(
        "--gpu",
        help="GPU key or alias for every measured file (default: the one each file names; `roofline gpus`)",
    )
    cmd.add_argument(
        "--engine", metavar="E",
        help="engine for every measured file (default: the one each file names; see `roofline engines`)",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="roofline", description="Analytic GPU roofline model for CNNs.")
    parser.add_argument("--version", action="version", version=f"roofline {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    analyze = sub.add_parser("analyze", help="per-layer roofline and predicted throughput of models")
    analyze.add_argument(
        "models", nargs="*", metavar="MODEL",
        help="zoo name (see `roofline zoo`), timm:NAME, torchvision:NAME, FILE.onnx or FILE.json",
    )  # fmt: skip
    analyze.add_argument("--zoo", action="store_true", help="analyze every embedded zoo model")
    _add_target(analyze, DEFAULT_BATCH)
    analyze.add_argument(
        "--peak", choices=PEAK_KINDS, default="datasheet",
        help="peak that utilization and CMR refer to (default datasheet)",
    )  # fmt: skip
    analyze.add_argument(
        "--no-waves", dest="waves", action="store_false",
        help="flat roofline: no wave or tile quantization in compute time",
    )  # fmt: skip
    analyze.add_argument("--summary", action="store_true", help="one summary table, no per-layer tables")
    analyze.add_argument(
        "--latency-table", type=options.path, metavar="FILE",
        help="sum per-layer latencies from FILE: measured entries override the model",
    )  # fmt: skip
    _add_learned(analyze)

    stairs = sub.add_parser("staircase", help="one layer's latency and utilization as its width varies")
    stairs.add_argument("model", metavar="MODEL", help="as for analyze")
    stairs.add_argument("--layer", required=True, help="the dense conv or linear layer to widen")
    _add_target(stairs, 1)
    stairs.add_argument(
        "--widths", type=options.widths, metavar="A:B[:STEP]",
        help=f"widths to predict, up to {options.MAX_WIDTH} and {options.MAX_WIDTH_COUNT} of them "
        "(default 1 to twice the current)",
    )  # fmt: skip
    stairs.add_argument(
        "--plot", type=options.path, metavar="FILE", help="draw the staircase to FILE (.png or .svg)"
    )

    opt = sub.add_parser("optimize-widths", help="move layer widths to wave-step edges (tail-effect study)")
    opt.add_argument("model", metavar="MODEL", help="as for analyze")
    _add_target(opt, 1)
    opt.add_argument(
        "--mode", choices=WIDTH_MODES, default="latency", help="cut latency, or add free parameters"
    )
    opt.add_argument(
        "--tau", type=options.number(0, 1, example="0.01"), default=0.01,
        help="bound on the total parameter gain, as a fraction of the parameters (default 0.01)",
    )  # fmt: skip
    opt.add_argument(
        "--delta", type=options.number(0, 1, example="0.95"), default=0.95,
        help="target: new latency <= delta x old, delta in (0, 1] (default 0.95)",
    )  # fmt: skip
    opt.add_argument(
        "--out", type=options.path, metavar="FILE", help="write the adjusted network as roofline-ir JSON"
    )

    table = sub.add_parser("latency-table", help="write a per-layer latency table (predicted entries)")
    table.add_argument("models", nargs="+", metavar="MODEL", help="as for analyze")
    _add_target(table, 1)
    table.add_argument(
        "--merge", type=options.path, action="append", default=[], metavar="FILE",
        help="a table to merge in (repeat for more); all must share one GPU, dtype and backend, "
        "which the new table takes (without --merge its backend is roofline)",
    )  # fmt: skip
    table.add_argument(
        "--out", type=options.path, required=True, metavar="FILE", help="the table to write (JSON)"
    )

    sweep = sub.add_parser(
        "batch-sweep", help="AI, throughput and utilization at each batch up to the largest"
    )
    sweep.add_argument("model", metavar="MODEL", help="as for analyze")
    _add_target(sweep, None)  # it sweeps powers of two up to the largest batch that fits
    sweep.add_argument("--layers", action="store_true", help="also print every layer's AI at each batch")

    fold_cmd = sub.add_parser("fold", help="fold f images onto the channel axis, widen layers by sqrt(f)")
    fold_cmd.add_argument("model", metavar="MODEL", help="as for analyze")
    fold_cmd.add_argument(
        "--factor",
        type=options.integer(1, options.MAX_FOLD, "4"),
        default=4,
        help=f"images per folded sample, 1 to {options.MAX_FOLD} (default 4)",
    )
    _add_target(fold_cmd, DEFAULT_BATCH)
    fold_cmd.add_argument(
        "--out", type=options.path, metavar="FILE", help="write the folded network as roofline-ir JSON"
    )

    surv = sub.add_parser("survey", help="utilization survey of many models: table, frontiers, figures")
    surv.add_argument("models", nargs="*", metavar="MODEL", help="as for analyze (default: the embedded zoo)")
    _add_target(surv, DEFAULT_BATCH)
    surv.add_argument(
        "--fold", type=options.integer(1, options.MAX_FOLD, "4"), metavar="F",
        help="also fold every model whose AI is below the CMR by F and show the frontier moving",
    )  # fmt: skip
    surv.add_argument(
        "--accuracy",
        type=options.path,
        metavar="CSV",
        help="top-1 accuracies (columns model,top1) for accuracy frontiers",
    )
    surv.add_argument(
        "--out",
        type=options.path,
        metavar="DIR",
        help="write survey.csv/json, figures (PNG+SVG) and summary.md here",
    )
    surv.add_argument("--force", action="store_true", help="replace an existing --out directory whole")
    _add_learned(surv)

    nats_cmd = sub.add_parser(
        "nats-sweep", help="all 32768 networks of the NATS-Bench size space, and frontiers"
    )
    _add_space_target(nats_cmd, DEFAULT_BATCH)
    nats_cmd.add_argument(
        "--top",
        type=options.integer(1, options.MAX_TOP, "5"),
        default=5,
        help=f"networks listed per ranking, up to {options.MAX_TOP} (default 5)",
    )
    nats_cmd.add_argument("--frontiers", action="store_true", help="list every frontier member")
    nats_cmd.add_argument("--out", type=options.path, metavar="FILE.csv", help="write one row per network")

    gpunet_cmd = sub.add_parser(
        "gpunet", help="Sobol samples of the GPUNet space, estimated and put in tiers"
    )
    _add_space_target(gpunet_cmd, 1)
    gpunet_cmd.add_argument(
        "--samples", type=options.integer(1, options.MAX_SAMPLES, "10000"), default=10_000,
        help=f"how many, up to {options.MAX_SAMPLES} (default 10000)",
    )  # fmt: skip
    gpunet_cmd.add_argument(
        "--seed", type=options.integer(0, options.MAX_SEED, "0"), default=0,
        help=f"Sobol scramble seed, 0 to {options.MAX_SEED} (default 0)",
    )  # fmt: skip
    tiers = gpunet_cmd.add_mutually_exclusive_group()
    tiers.add_argument(
        "--tiers", type=options.integer(1, options.MAX_TIERS, "5"), default=5,
        help=f"equal-count latency tiers, up to {options.MAX_TIERS} and --samples (default 5)",
    )  # fmt: skip
    tiers.add_argument(
        "--tier-edges-ms", type=options.edges_ms, metavar="A,B,...",
        help="fixed tier edges in ms: increasing, positive, finite",
    )  # fmt: skip
    gpunet_cmd.add_argument(
        "--out", type=options.path, metavar="FILE.csv", help="write one row per sample (41 ints + estimates)"
    )

    compare = sub.add_parser(
        "perf-compare",
        help="apply the regression gate (size + significance) to a baseline and a results file",
        epilog="Single run only: the re-run that confirms a regression is the pytest plugin's job, so a "
        "regression here is a candidate. Exit 0: no regression; 1: a regression; 2: bad input; "
        "3: the environments differ (not comparable); 4: incomplete: a baseline benchmark is missing "
        "from the results or its verdict is invalid or not comparable, or nothing was compared (each is "
        "named on stderr). 1 wins over 4: a regression is the stronger signal.",
    )  # fmt: skip
    compare.add_argument("baseline", metavar="BASELINE.json", help="the baseline (baselines/<gpu key>.json)")
    compare.add_argument("results", metavar="RESULTS.json", help="a results file from `nox -s perf`")
    compare.add_argument(
        "--floor", type=options.fraction, default=gate.Rule.floor,
        help=f"smallest drop that counts, as a fraction; a benchmark's tolerance replaces it "
        f"(default {gate.Rule.floor})",
    )  # fmt: skip
    compare.add_argument(
        "--k", type=options.number(0, 100, example="3"), default=gate.Rule.k,
        help=f"a drop must also exceed k x the measured noise (default {gate.Rule.k:g})",
    )  # fmt: skip
    compare.add_argument(
        "--alpha", type=options.fraction, default=gate.Rule.alpha,
        help=f"significance level of the one-sided Mann-Whitney U test (default {gate.Rule.alpha})",
    )  # fmt: skip
    compare.add_argument("--json", action="store_true", help="print JSON")

    val = sub.add_parser(
        "validate", help="compare predicted with measured throughput (timm benchmark CSVs, suite results)",
        epilog="Each file's GPU and engine come from the file (timm CSVs: from the name, e.g. "
        "...-4090-dynamo is an RTX 4090 under torch.compile) unless --gpu/--engine say otherwise. Rows "
        "that cannot be read and models that cannot be resolved are listed, not fatal.",
    )  # fmt: skip
    val.add_argument(
        "measured", nargs="+", metavar="MEASURED",
        help="a timm benchmark.py CSV, a results JSON from `nox -s perf`, or the file name of a table "
        "shipped in roofline/data/measured/",
    )  # fmt: skip
    _add_file_overrides(val)
    val.add_argument(
        "--dtype", choices=list(DTYPE_BYTES),
        help="datatype (default: the file's, else fp16: timm's tables are AMP float16)",
    )  # fmt: skip
    val.add_argument("--models", metavar="REGEX", help="only the models whose name REGEX matches (re.search)")
    val.add_argument(
        "--limit", type=options.integer(1, MAX_VALIDATE_ROWS, "50"), metavar="N",
        help="only the first N rows of each file (after --models)",
    )  # fmt: skip
    val.add_argument(
        "--plot", type=options.path, metavar="FILE",
        help="log-log scatter of predicted against measured throughput (.png or .svg)",
    )  # fmt: skip
    val.add_argument("--json", action="store_true", help="print JSON")
    _add_model_options(val)

    learn = sub.add_parser(
        "learn", help="train the learned utilization predictor on measurements (features table + forest)",
        epilog="Each measured file's GPU and engine come from the file, as for validate. The features table "
        "(one row per measurement) is the model file: the forest is retrained from it, in seconds, with a "
        "fixed random_state. Models that cannot be resolved are listed, not fatal.",
    )  # fmt: skip
    learn.add_argument(
        "data", nargs="+", metavar="DATA",
        help="a timm benchmark.py CSV, a results JSON from `nox -s perf`, a features table an earlier "
        "`roofline learn --out` wrote, or the file name of a table shipped in roofline/data/measured/",
    )  # fmt: skip
    learn.add_argument(
        "--out", type=options.path, metavar="FILE.csv",
        help="write the features table, which --learned-model reads",
    )  # fmt: skip
    _add_file_overrides(learn)
    learn.add_argument(
        "--target", choices=LEARN_TARGETS, default=LEARN_TARGETS[0],
        help="FLOP utilization (throughput x FLOPs / peak; default) or nvidia-smi's time utilization "
        "(results files whose telemetry recorded it)",
    )  # fmt: skip
    learn.add_argument(
        "--compare", action="store_true",
        help="also score the study's seven features, the analytic prediction and the hybrid on a family "
        "split and a held-out GPU (grid searches: minutes)",
    )  # fmt: skip
    learn.add_argument(
        "--held-out-gpu", metavar="GPU",
        help="the GPU --compare holds out (default: the one with fewest rows)",
    )  # fmt: skip
    learn.add_argument("--json", action="store_true", help="print JSON")
    _add_model_options(learn)

    for cmd in (analyze, stairs, opt, table, sweep, fold_cmd, surv):
        _add_model_options(cmd)
    listings = (
        ("gpus", "list the GPU database"),
        ("engines", "list the execution engines"),
        ("zoo", "list the embedded models"),
    )  # fmt: skip
    for name, text in listings:
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _print_json(value: object) -> None:
    # A NaN or infinity here is a bug upstream: raise (ValueError) rather than print invalid JSON.
    print(json.dumps(value, indent=1, allow_nan=False))


def _resolve(spec: str, args: argparse.Namespace) -> Network:
    """``spec`` at the command's --resolution, through the IR cache unless --no-cache, deployed with
    --reparam: every command resolves its models here."""
    from roofline.model.resolve import resolve

    return resolve(
        spec, getattr(args, "resolution", None), cache=not getattr(args, "no_cache", False),
        reparam=getattr(args, "reparam", False),
    )  # fmt: skip


def _networks(specs: list[str], args: argparse.Namespace) -> Iterator[Network]:
    """Resolve each spec in turn, once each, with a progress bar on stderr when there are more than a few."""
    specs = _unique(specs)
    bar = tqdm(
        specs, desc="models", unit="model", file=sys.stderr, disable=len(specs) <= PROGRESS_OVER or None
    )
    for spec in bar:
        bar.set_postfix_str(spec, refresh=False)
        yield _resolve(spec, args)


def _unique(specs: list[str]) -> list[str]:
    """``specs`` without repeats, in order; a repeat is named on stderr, not analysed twice."""
    unique = list(dict.fromkeys(specs))
    if len(unique) < len(specs):
        repeated = sorted({s for s in specs if specs.count(s) > 1})
        print(
            f"roofline: note: {', '.join(repeated)} named more than once; each is analysed once",
            file=sys.stderr,
        )
    return unique


#: Target fields that some commands take as options; a command without one gets the Target default.
TARGET_OPTIONS = ("engine", "peak", "waves", "tile", "blocks_per_sm")


def target_from_args(args: argparse.Namespace) -> Target:
    """The one place the CLI builds a Target, before any model is traced, so bad options fail first."""
    from roofline.hardware.calibration import load_calibration
    from roofline.hardware.gpus import get_gpu

    gpu = get_gpu(args.gpu)
    given = {name: getattr(args, name) for name in TARGET_OPTIONS if hasattr(args, name)}
    target = Target(gpu, args.dtype, **given)
    if args.calibration:
        target = target.replace(calibration=load_calibration(args.calibration, gpu))
    return target


def _staircase(args: argparse.Namespace) -> None:
    from roofline.analysis.batch import resolve_batch
    from roofline.analysis.predict import fused_for
    from roofline.analysis.staircase import staircase
    from roofline.cli import plots

    target = target_from_args(args)
    if args.plot:
        plots.check_path(args.plot)
    fused = fused_for(_resolve(args.model, args), target)
    batch = resolve_batch(args.batch, fused, target)
    stairs = staircase(fused, args.layer, target, batch, args.widths)
    if args.plot:
        plots.staircase_plot(stairs, args.plot)
    if args.json:
        _print_json(stairs.to_dict())
        return
    print(f"== {fused.network.name}: {stairs.layer} ({stairs.op}), width {stairs.width}")
    print(report.staircase_table(stairs))
    print(f"step edges (last width before a new wave): {', '.join(map(str, stairs.edges())) or 'none'}")
    # A step that runs past the last width has no known right edge, so it has no optimal width yet.
    optimal = ", ".join(map(str, stairs.optimal_widths())) or (
        f"none yet: no step ends by width {stairs.widths[-1]}; widen --widths to see where one does"
    )
    print(f"optimal widths (max utilization x throughput per step): {optimal}")
    gpu = target.gpu
    print(f"{gpu.name} ({gpu.sms} SMs), {args.dtype}, batch {batch}; latency of this layer alone.")
    if args.plot:
        print(f"wrote {args.plot}")


def _optimize_widths(args: argparse.Namespace) -> None:
    from roofline.analysis.batch import resolve_batch
    from roofline.analysis.predict import fused_for
    from roofline.analysis.widths import adjust_widths
    from roofline.model import zoo

    target = target_from_args(args)
    if args.out:
        files.check_parent(args.out)
    network = _resolve(args.model, args)
    batch = resolve_batch(args.batch, fused_for(network, target), target)
    result = adjust_widths(network, target, batch, mode=args.mode, tau=args.tau, delta=args.delta)
    if args.out:
        # Its own name, as fold's "-fold4": reports of the written file must not pass for the original.
        adjusted = dataclasses.replace(result.network, name=f"{result.network.name}-{args.mode}-widths")
        files.write_text(args.out, zoo.dumps(adjusted))
    if args.json:
        _print_json(result.to_dict())
        return
    print(report.widths_table(result))
    if args.out:
        print(f"wrote {args.out}")


def _latency_table(args: argparse.Namespace) -> None:
    from roofline.analysis import latency_table
    from roofline.analysis.batch import resolve_batch
    from roofline.analysis.predict import evaluate, fused_for

    target = target_from_args(args)
    files.check_parent(args.out)
    merged = [latency_table.load(path) for path in args.merge]
    # The predicted entries are the roofline model's and hold for any backend, so the new table takes the
    # backend of the --merge tables ("roofline" without any). Those must share one backend, GPU and
    # dtype, and match --gpu and --dtype: checked before any model is traced, each error naming both.
    backend = latency_table.merge(*merged, names=args.merge).backend if merged else "roofline"
    predicted = latency_table.LatencyTable(target.gpu.key, target.dtype, backend)
    names = [f"the predicted table (--gpu {target.gpu.key} --dtype {target.dtype})", *args.merge]
    latency_table.merge(predicted, *merged, names=names)
    tables = []
    for spec in _unique(args.models):
        fused = fused_for(_resolve(spec, args), target)
        estimate = evaluate(fused, target, resolve_batch(args.batch, fused, target))
        tables.append(latency_table.predicted_table(estimate, backend=backend))
    table = latency_table.merge(*tables, *merged)
    latency_table.save(table, args.out)
    measured = sum(e.source == "measured" for e in table.entries.values())
    summary = {"out": args.out, "entries": len(table.entries), "measured": measured, "backend": table.backend}
    if args.json:
        _print_json(summary)
    else:
        print(f"wrote {args.out}: {len(table.entries)} entries, {measured} measured, backend {table.backend}")


def _analyze(args: argparse.Namespace) -> None:
    from roofline.analysis import latency_table
    from roofline.analysis.batch import resolve_batch
    from roofline.analysis.predict import evaluate, fused_for
    from roofline.model import zoo

    specs = list(args.models) + (zoo.zoo_names() if args.zoo else [])
    if not specs:
        raise RooflineError("name at least one MODEL, or pass --zoo for the whole embedded zoo")
    target = target_from_args(args)
    table = latency_table.load(args.latency_table) if args.latency_table else None
    model = _learned_model(args)  # before any model is traced: a bad file fails first
    estimates = []
    for network in _networks(specs, args):
        fused = fused_for(network, target)
        estimates.append(evaluate(fused, target, resolve_batch(args.batch, fused, target)))
    from_table = [latency_table.network_latency(e, table) for e in estimates] if table else []
    learned = _learned(model, estimates)
    if args.json:
        out = [e.to_dict(layers=not args.summary) for e in estimates]
        for entry, t in zip(out, from_table, strict=False):
            entry["latency_table"] = t.to_dict()
        for entry, guess in zip(out, learned, strict=False):
            entry["learned"] = guess.to_dict()
        _print_json(out)
        return
    for e, t in zip(estimates, from_table, strict=False):
        print(
            f"{e.network.name}: latency table {args.latency_table}: {t.latency_s * 1e3:.3f} ms, "
            f"{t.throughput_img_s:.0f} img/s ({t.measured} layers measured, {t.modelled} from the model)"
        )
    if args.summary:
        print(report.summary_rows(estimates))
        per_model = "batch per model (the largest that fits)" if args.batch == "max" else None
        print(report.context_line(estimates[0], per_model))
        unsupported = {
            e.network.name: e.network.unsupported_ops for e in estimates if e.network.unsupported_ops
        }
        for name, ops in unsupported.items():
            print(f"{name}: unsupported ops (bytes counted, no FLOPs): {ops}")
        if learned:
            print(f"\n{report.learned_report(learned)}")
        return
    print("\n\n".join(report.network_report(e) for e in estimates))
    if learned:
        print(f"\n{report.learned_report(learned)}")


def _learned_model(args: argparse.Namespace):
    """The learned model ``--learned``/``--learned-model`` ask for, else None (trained at first use)."""
    if not (args.learned or args.learned_model):
        return None
    from roofline.studies.learned.training import load_model

    return load_model(args.learned_model)


def _learned(model, estimates: list) -> list:
    if model is None:
        return []
    from roofline.studies.learned.training import predict_estimates

    return predict_estimates(model, estimates)


def _batch_sweep(args: argparse.Namespace) -> None:
    from roofline.analysis.batch import batch_sweep
    from roofline.analysis.predict import fused_for

    target = target_from_args(args)
    result = batch_sweep(fused_for(_resolve(args.model, args), target), target)
    if args.json:
        _print_json(result.to_dict(layers=args.layers))
        return
    print(report.batch_sweep_table(result, layers=args.layers))


def _fold(args: argparse.Namespace) -> None:
    from roofline.analysis.batch import resolve_batch
    from roofline.analysis.fold import fold, fold_batch, largest_foldable
    from roofline.analysis.predict import evaluate, fused_for
    from roofline.model import zoo

    target = target_from_args(args)
    if args.out:
        files.check_parent(args.out)
    network = _resolve(args.model, args)
    fused = fused_for(network, target)
    batch = resolve_batch(args.batch, fused, target)
    if args.batch == "max":
        batch = largest_foldable(batch, args.factor)
    folded = fold(network, args.factor)
    before = evaluate(fused, target, batch)
    after = evaluate(folded.network, target, fold_batch(batch, args.factor))
    if args.out:
        files.write_text(args.out, zoo.dumps(folded.network))
    if args.json:
        _print_json(report.fold_dict(folded, before, after))
        return
    print(report.fold_table(folded, before, after))
    if args.out:
        print(f"wrote {args.out}")


def _survey(args: argparse.Namespace) -> None:
    from roofline.cli import survey_outputs  # the figures: only with --out
    from roofline.model import zoo
    from roofline.studies.survey import load_accuracies, survey

    target = target_from_args(args)
    if args.tile is not None or args.blocks_per_sm is not None:
        raise RooflineError("survey uses the tile heuristic for every model; drop --tile/--blocks-per-sm")
    accuracies = load_accuracies(args.accuracy) if args.accuracy else None
    if args.force and not args.out:
        raise RooflineError("--force replaces an --out directory; drop it or add --out DIR")
    if args.out:
        survey_outputs.check_out_dir(args.out, replace=args.force)
    model = _learned_model(args)
    specs = args.models or zoo.zoo_names()
    result = survey(_networks(specs, args), target, args.batch, fold_factor=args.fold, accuracies=accuracies)
    learned = _learned(model, [e.estimate for e in result.entries])
    if result.unmatched_accuracies:  # a CSV often covers more models than one survey: a warning, not an error
        unused = ", ".join(result.unmatched_accuracies)
        print(f"roofline: warning: {args.accuracy} has models this survey does not, their accuracies are "
              f"unused: {unused}", file=sys.stderr)  # fmt: skip
    written = survey_outputs.write_outputs(result, args.out, replace=args.force) if args.out else []
    if args.json:
        out = result.to_dict()
        for row, guess in zip(out["models"], learned, strict=False):
            row["learned"] = guess.to_dict()
        _print_json(out)
        return
    print(report.survey_table(result))
    if learned:
        print(f"\n{report.headroom_report(learned)}")
    for path in written:
        print(f"wrote {path}")


def _space_target(args: argparse.Namespace) -> tuple[Target, LatencyTable | None]:
    from roofline.analysis import latency_table

    target = target_from_args(args)
    return target, latency_table.load(args.latency_table) if args.latency_table else None


def _nats_sweep(args: argparse.Namespace) -> None:
    from roofline.studies.spaces import nats

    target, table = _space_target(args)
    if args.out:
        files.check_parent(args.out)
    result = nats.sweep(target, args.batch, table)
    if args.out:
        files.write_text(args.out, report.space_csv(result, nats.FRONTIER_KINDS))
    if args.json:
        _print_json(result.to_dict(top=args.top, frontiers=args.frontiers))
        return
    print(report.nats_report(result, args.top, args.frontiers))
    if args.out:
        print(f"wrote {args.out}")


def _gpunet(args: argparse.Namespace) -> None:
    from roofline.studies.spaces import gpunet

    target, table = _space_target(args)
    if args.tier_edges_ms is None and args.tiers > args.samples:
        raise RooflineError(f"--tiers {args.tiers} is more than --samples {args.samples}: lower --tiers")
    if args.out:
        files.check_parent(args.out)
    samples = gpunet.sobol_sample(args.samples, args.seed)
    result = gpunet.estimate(samples, target, args.batch, table)
    if args.tier_edges_ms:
        tiers = gpunet.latency_tiers(result.latency_s, edges_ms=args.tier_edges_ms)
        count = len(args.tier_edges_ms) + 1
    else:
        tiers, count = gpunet.latency_tiers(result.latency_s, n_tiers=args.tiers), args.tiers
    summary = gpunet.tier_summary(result.latency_s, result.flops_per_image, tiers, count)
    if args.out:
        files.write_text(args.out, report.gpunet_csv(samples, result, tiers))
    if args.json:
        _print_json(report.gpunet_dict(samples, result, summary, args.seed))
        return
    print(report.gpunet_report(samples, result, summary))
    if args.out:
        print(f"wrote {args.out}")


def _perf_compare(args: argparse.Namespace) -> int:
    from roofline.perf.results import incomparable, load_results

    rule = gate.Rule(floor=args.floor, k=args.k, alpha=args.alpha)
    baseline = load_results(args.baseline, "baseline")
    results = load_results(args.results, "results file")
    differences = incomparable(baseline, results)
    if differences:
        # A different GPU or stack is a different experiment: say so rather than compare.
        for line in differences:
            print(f"not comparable: {line}", file=sys.stderr)
        if args.json:
            reason = f"environments differ: {'; '.join(differences)}"
            medians = [{key: b.median for key, b in f.benchmarks.items()} for f in (baseline, results)]
            _print_json([
                {"id": key, "baseline_median": medians[0].get(key), "median": medians[1].get(key),
                 "change": None, "verdict": gate.NOT_COMPARABLE, "reason": reason}
                for key in sorted(medians[0].keys() | medians[1].keys())
            ])  # fmt: skip
        return gate.EXIT_NOT_COMPARABLE
    verdicts = gate.compare_files(baseline, results, rule)
    if args.json:
        _print_json([v.to_dict() for v in verdicts])
    else:
        print(gate.summary_table(verdicts))
    # A baseline benchmark without a valid verdict is a lost measurement: name each one (exit 4 unless 1).
    for line in gate.incomplete(verdicts):
        print(f"incomplete: {line}", file=sys.stderr)
    return gate.exit_code(verdicts)


def _validate(args: argparse.Namespace) -> None:
    import re

    from roofline.analysis.engines import get_engine
    from roofline.cli import plots
    from roofline.hardware.gpus import get_gpu
    from roofline.perf.measured import locate, read_measured
    from roofline.studies.validate import resolve_measured, validate

    if args.gpu is not None:
        get_gpu(args.gpu)  # a bad --gpu or --engine fails before any file is read
    if args.engine is not None:
        get_engine(args.engine)
    try:
        pattern = re.compile(args.models) if args.models is not None else None
    except re.error as exc:
        raise RooflineError(f"--models {args.models!r} is not a regular expression ({exc})") from None
    if args.plot:
        plots.check_path(args.plot)
    tables = [read_measured(locate(name)).select(pattern, args.limit) for name in _unique(args.measured)]

    def target_for(gpu: str | None, engine: str | None, dtype: str | None) -> Target:
        gpu, engine = args.gpu or gpu, args.engine or engine
        if gpu is None or engine is None:  # validate prefixes the file's name
            what = "GPU" if gpu is None else "engine"
            raise RooflineError(f"the file does not name its {what}; pass --{what.lower()}")
        return Target.of(gpu, args.dtype or dtype or "fp16", engine=engine)

    def progress(keys):
        bar = tqdm(keys, desc="models", unit="model", file=sys.stderr,
                   disable=args.json or len(keys) <= PROGRESS_OVER or None)  # fmt: skip
        for key in bar:
            bar.set_postfix_str(f"{key[0]}@{key[1]}", refresh=False)
            yield key

    def resolve_model(model: str, resolution: int) -> Network:
        return resolve_measured(model, resolution, cache=not args.no_cache, reparam=args.reparam)

    result = validate(tables, target_for, resolve_model, progress)
    if args.plot:
        plots.validation_plot(result, args.plot)
    if args.json:
        _print_json(result.to_dict())
        return
    print(report.validation_report(result))
    if args.plot:
        print(f"wrote {args.plot}")


def _learn(args: argparse.Namespace) -> None:
    import time

    from roofline.analysis.engines import get_engine
    from roofline.hardware.gpus import get_gpu
    from roofline.perf.measured import locate, read_measured
    from roofline.perf.results import load_results
    from roofline.studies.learned import features, training
    from roofline.studies.validate import resolve_measured

    gpu = get_gpu(args.gpu).key if args.gpu is not None else None  # bad options fail before any file is read
    engine = get_engine(args.engine).key if args.engine is not None else None
    if args.held_out_gpu is not None:
        args.held_out_gpu = get_gpu(args.held_out_gpu).key
    if args.out:
        files.check_parent(args.out)
    tables, samples, unreadable = [], [], []
    for name in _unique(args.data):
        path = locate(name)
        first = _first_line(path)
        if features.is_features_header(first):
            tables.append(features.read_table(path))
            continue
        measured = read_measured(path)
        unreadable += measured.problems
        found = features.samples_of(measured, gpu, engine)
        if first.lstrip().startswith("{"):  # a results file: nvidia-smi's busy share, where recorded
            busy = _busy_fractions(load_results(path, "results file"))
            found = [
                dataclasses.replace(s, time_utilization=busy.get(row.source.rpartition(":benchmarks.")[2]))
                for s, row in zip(found, measured.rows, strict=True)
            ]
        samples += found

    def network_of(model: str, resolution: int | None) -> Network:
        return resolve_measured(model, resolution, cache=not args.no_cache, reparam=args.reparam)

    bar = tqdm(total=len({(s.model, s.resolution) for s in samples}), desc="models", unit="model",
               file=sys.stderr, disable=args.json or None)  # fmt: skip
    built, skipped = features.build_table(samples, network_of, progress=lambda m: bar.update())
    bar.close()
    table = features.FeatureTable.concat([built, *tables]) if tables else built
    if len(table) == 0:
        why = f": {skipped[0][1]}" if skipped else ""
        raise RooflineError(f"no usable measurement in {', '.join(args.data)}: no model resolved{why}")
    start = time.perf_counter()
    model = training.train(table, args.target, source=str(args.out or "this run"))
    training_s = time.perf_counter() - start
    if args.out:  # written once it is known to train
        files.write_text(args.out, table.to_csv())
    comparison = None
    if args.compare:
        say = None if args.json else (lambda what: print(f"roofline: comparing: {what}", file=sys.stderr))
        comparison = training.compare(table, args.target, args.held_out_gpu, progress=say)
    summary = {
        "out": args.out, "rows": len(table), "families": model.families, "gpus": list(model.gpus),
        "engines": list(model.engines), "target": args.target, "training_s": training_s,
        "skipped": [{"model": s.model, "resolution": s.resolution, "source": s.source, "reason": why}
                    for s, why in skipped],
        "unreadable": list(unreadable),
    }  # fmt: skip
    if comparison is not None:
        summary["comparison"] = comparison.to_dict()
    if args.json:
        _print_json(summary)
        return
    print(report.learn_report(summary, model, comparison))


def _first_line(path: str | os.PathLike[str]) -> str:
    """The first line of ``path``, to tell a features table from a measured table or a results file."""
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            return f.readline()
    except FileNotFoundError:
        raise RooflineError(f"{path} does not exist; check the path") from None
    except OSError as exc:
        raise RooflineError(f"cannot read {path} ({exc.strerror}); check the path and permissions") from None


def _busy_fractions(results: PerfResults) -> dict[str, float]:
    """Benchmark id -> nvidia-smi's mean GPU busy share (0-1) where the suite's telemetry recorded it."""
    out = {}
    for key, bench in results.benchmarks.items():
        telemetry = bench.extra.get("telemetry")
        pct = telemetry.get("gpu_util_pct_mean") if isinstance(telemetry, dict) else None
        if isinstance(pct, (int, float)) and not isinstance(pct, bool) and 0 < pct <= 100:
            out[key] = pct / 100
    return out


def _gpus(args: argparse.Namespace) -> None:
    from roofline.hardware.gpus import all_gpus

    gpus = all_gpus()
    if args.json:
        out = [
            {
                "key": g.key, "name": g.name, "aliases": list(g.aliases),
                "compute_capability": g.compute_capability, "sms": g.sms,
                "boost_clock_mhz": g.boost_clock_mhz, "dram_bandwidth_bytes_s": g.dram_bandwidth_bytes_s,
                "memory_bytes": g.memory_bytes, "l2_bytes": g.l2_bytes,
                "peak_flops_s": dict(g.peak_flops_s),
                "peak_flops_s_fp32_accumulate": dict(g.peak_flops_s_fp32_accumulate),
                "sm_limits": dataclasses.asdict(g.sm_limits),
                "sources": dict(g.sources),
            }
            for g in gpus
        ]  # fmt: skip
        _print_json(out)
    else:
        print(report.gpu_table(gpus))


def _engines(args: argparse.Namespace) -> None:
    from roofline.analysis.engines import engine_keys, get_engine

    engines = [get_engine(key) for key in engine_keys()]
    if args.json:
        _print_json([
            {**e.to_dict(), "aliases": list(e.aliases), "fusion": dataclasses.asdict(e.fusion),
             "sources": dict(e.sources)}
            for e in engines
        ])  # fmt: skip
    else:
        print(report.engine_table(engines))


def _zoo(args: argparse.Namespace) -> None:
    from roofline.model import zoo

    networks = [zoo.load(name) for name in zoo.zoo_names()]
    if args.json:
        out = [
            {"model": n.name, "source": n.source, "resolution": n.resolution, "layers": len(n.layers),
             "flops_per_image": n.flops(), "macs_per_image": n.macs(), "params": n.params()}
            for n in networks
        ]  # fmt: skip
        _print_json(out)
    else:
        print(report.zoo_table(networks))


COMMANDS = {
    "analyze": _analyze,
    "staircase": _staircase,
    "optimize-widths": _optimize_widths,
    "latency-table": _latency_table,
    "batch-sweep": _batch_sweep,
    "fold": _fold,
    "survey": _survey,
    "nats-sweep": _nats_sweep,
    "gpunet": _gpunet,
    "gpus": _gpus,
    "engines": _engines,
    "zoo": _zoo,
    "perf-compare": _perf_compare,
    "validate": _validate,
    "learn": _learn,
}


class _Terminated(BaseException):
    """SIGTERM as an exception, so that ``finally`` blocks run and staged outputs are removed."""


def _raise_terminated(signum: int, frame: object) -> NoReturn:
    raise _Terminated


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code = 0
    previous = None
    try:
        # By default SIGTERM kills the process where it stands, leaving half-written outputs behind.
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: only the main thread can take signals
        pass
    try:
        # Most commands succeed or raise; perf-compare also returns its verdict as the status.
        code = COMMANDS[args.command](args) or 0
    except RooflineError as exc:
        print(f"roofline: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `roofline ... | head`
        sys.stderr.close()
    except KeyboardInterrupt:
        print("roofline: interrupted; outputs are whole or not written", file=sys.stderr)
        return 128 + signal.SIGINT
    except _Terminated:
        print("roofline: terminated; outputs are whole or not written", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
