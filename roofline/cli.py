"""The ``roofline`` command line.

    roofline analyze MODEL [MODEL ...] --gpu GPU --dtype DTYPE --batch N [--json]
    roofline gpus [--json]
    roofline zoo [--json]

Bad input prints one line, ``roofline: error: ...``, and exits with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import NoReturn

from . import __version__, report, zoo
from .errors import RooflineError
from .gpus import all_gpus, get_gpu, load_calibration
from .ir import DTYPE_BYTES
from .predict import PEAK_KINDS, evaluate
from .resolve import resolve

DEFAULT_BATCH = 256


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints the whole usage block; the contract is one line.
        self.exit(2, f"roofline: error: {message} (see --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


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
    analyze.add_argument("--gpu", default="v100", help="GPU key or alias (default v100; see `roofline gpus`)")
    analyze.add_argument("--dtype", default="fp16", choices=list(DTYPE_BYTES), help="datatype (default fp16)")
    analyze.add_argument(
        "--batch", type=_positive_int, default=DEFAULT_BATCH,
        help=f"batch size (default {DEFAULT_BATCH}, the large-batch regime engines are measured in)",
    )  # fmt: skip
    analyze.add_argument("--resolution", type=_positive_int, help="input height=width (default: the model's)")
    analyze.add_argument(
        "--peak", choices=PEAK_KINDS, default="datasheet",
        help="peak that utilization and CMR refer to (default datasheet)",
    )  # fmt: skip
    analyze.add_argument("--calibration", metavar="FILE", help="measured achievable peaks (JSON)")
    analyze.add_argument("--summary", action="store_true", help="one summary table, no per-layer tables")
    analyze.add_argument("--json", action="store_true", help="print a JSON list, one object per model")

    for name, text in (("gpus", "list the GPU database"), ("zoo", "list the embedded models")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _print_json(value: object) -> None:
    json.dump(value, sys.stdout, indent=1)
    print()


def _analyze(args: argparse.Namespace) -> None:
    specs = list(args.models) + (zoo.zoo_names() if args.zoo else [])
    if not specs:
        raise RooflineError("name at least one MODEL, or pass --zoo for the whole embedded zoo")
    gpu = get_gpu(args.gpu)
    gpu.peak(args.dtype)  # fail on an unsupported dtype before any tracing
    calibration = load_calibration(args.calibration, gpu) if args.calibration else None
    estimates = []
    for i, spec in enumerate(specs, 1):
        if ":" in spec and len(specs) > 1:
            print(f"[{i}/{len(specs)}] tracing {spec}", file=sys.stderr, flush=True)
        network = resolve(spec, args.resolution)
        estimates.append(
            evaluate(network, gpu, args.dtype, args.batch, peak=args.peak, calibration=calibration)
        )
    if args.json:
        _print_json([e.to_dict(layers=not args.summary) for e in estimates])
        return
    if args.summary:
        print(report.summary_rows(estimates))
        print(report.context_line(estimates[0]))
        unsupported = {
            e.network.name: e.network.unsupported_ops for e in estimates if e.network.unsupported_ops
        }
        for name, ops in unsupported.items():
            print(f"{name}: unsupported ops (bytes counted, no FLOPs): {ops}")
        return
    print("\n\n".join(report.network_report(e) for e in estimates))


def _gpus(args: argparse.Namespace) -> None:
    gpus = all_gpus()
    if args.json:
        out = [
            {
                "key": g.key, "name": g.name, "aliases": list(g.aliases),
                "compute_capability": g.compute_capability, "sms": g.sms,
                "boost_clock_mhz": g.boost_clock_mhz, "dram_bandwidth_bytes_s": g.dram_bandwidth_bytes_s,
                "memory_bytes": g.memory_bytes, "l2_bytes": g.l2_bytes,
                "peak_flops_s": dict(g.peak_flops_s), "sm_limits": dataclasses.asdict(g.sm_limits),
                "sources": dict(g.sources),
            }
            for g in gpus
        ]  # fmt: skip
        _print_json(out)
    else:
        print(report.gpu_table(gpus))


def _zoo(args: argparse.Namespace) -> None:
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


COMMANDS = {"analyze": _analyze, "gpus": _gpus, "zoo": _zoo}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except RooflineError as exc:
        print(f"roofline: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `roofline ... | head`
        sys.stderr.close()
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
