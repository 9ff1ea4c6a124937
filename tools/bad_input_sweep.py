"""A tester's sweep of bad and odd inputs over every `roofline` subcommand, each run as a fresh process.

    python tools/bad_input_sweep.py [--jobs N] [--only SUBSTRING] [--verbose]

Every case must end with its expected exit status (2 for bad input unless the
case says otherwise), one to three lines on stderr starting ``roofline:``, no
traceback, no "nan"/"inf" on stdout, within the time limit, and leave no new
file in its working directory except what the case expects to exist. Prints
one line per failure and the counts; exits 1 if any case failed.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

TIMEOUT_S = 60
NAN = re.compile(r"\b(nan|NaN|inf|Infinity)\b")


@dataclass
class Case:
    name: str
    argv: list[str]
    files: dict[str, bytes | str] = field(default_factory=dict)  # relative path -> content, made before
    expect: tuple[int, ...] = (2,)
    keep: tuple[str, ...] = ()  # relative paths a run may leave (e.g. a directory it was told to replace)
    interrupt_after_s: float | None = None  # send SIGTERM (or SIGINT) after this long
    signal: int = signal.SIGTERM
    setup: Callable[[Path], None] | None = None


def _ir(**changes) -> str:
    """A valid two-layer IR document with ``changes`` applied to it or its layers."""
    doc = {
        "format": "roofline-ir", "version": 1, "name": "tiny", "source": "sweep", "resolution": 8, "batch": 1,
        "inputs": [["x", [1, 3, 8, 8]]], "outputs": ["fc"],
        "layers": [
            {"op": "conv", "name": "c1", "inputs": ["x"], "output": "c1", "input_shapes": [[1, 3, 8, 8]],
             "output_shape": [1, 8, 8, 8], "kernel": [3, 3], "stride": [1, 1], "padding": [1, 1],
             "dilation": [1, 1], "groups": 1, "bias": False},
            {"op": "linear", "name": "fc", "inputs": ["c1"], "output": "fc", "input_shapes": [[1, 512]],
             "output_shape": [1, 10], "in_features": 512, "out_features": 10, "bias": True},
        ],
    }  # fmt: skip
    for path, value in changes.items():
        target, *keys = path.split("__")
        obj = doc if target == "doc" else doc["layers"][int(target.removeprefix("l"))]
        for key in keys[:-1]:
            obj = obj[key]
        if value is DROP:
            obj.pop(keys[-1])
        else:
            obj[keys[-1]] = value
    return json.dumps(doc)


DROP = object()

CALIBRATION = {
    "format": "roofline-calibration", "version": 1, "gpu": "v100-sxm2", "source": "sweep",
    "dram_bytes_s": 8.0e11, "peak_flops_s": {"fp16": 1.0e14},
}  # fmt: skip

SURVEY_FILES = [f"{s}.{x}" for s in ("roofline", "pareto") for x in ("png", "svg")] + [
    "survey.csv", "survey.json", "summary.md"]  # fmt: skip

COMMANDS_WITH_MODEL = [
    "analyze",
    "staircase",
    "optimize-widths",
    "batch-sweep",
    "fold",
    "survey",
    "latency-table",
]


def _model_argv(command: str, model: str) -> list[str]:
    extra = {"staircase": ["--layer", "fc"], "latency-table": ["--out", "t.json"]}.get(command, [])
    return [command, model, *extra]


def cases() -> list[Case]:
    out: list[Case] = []

    def add(name: str, argv: list[str], **kw) -> None:
        out.append(Case(name, argv, **kw))

    # --- missing, unknown and wrong-type arguments, every subcommand
    for command in ["analyze", "staircase", "optimize-widths", "latency-table", "batch-sweep", "fold",
                    "nats-sweep", "gpunet", "perf-compare", "gpus", "zoo", "survey"]:  # fmt: skip
        add(f"{command}: unknown option", [command, "--bogus"])
    for command in ["staircase", "optimize-widths", "latency-table", "batch-sweep", "fold", "perf-compare"]:
        add(f"{command}: nothing given", [command])
    add("no command", [])
    add("unknown command", ["analyse"])
    for command in COMMANDS_WITH_MODEL:
        add(f"{command}: unknown model", _model_argv(command, "resnet5O"))
        add(f"{command}: unknown gpu", [*_model_argv(command, "resnet18"), "--gpu", "v1000"])
        add(f"{command}: unknown dtype", [*_model_argv(command, "resnet18"), "--dtype", "fp64"])
        add(f"{command}: dtype the gpu lacks", [*_model_argv(command, "resnet18"), "--dtype", "tf32"])
        add(f"{command}: empty model name", _model_argv(command, ""))
        add(f"{command}: missing IR file", _model_argv(command, "nope.json"))
        add(f"{command}: missing ONNX file", _model_argv(command, "nope.onnx"))
        add(f"{command}: missing calibration", [*_model_argv(command, "resnet18"), "--calibration", "c.json"])
        add(f"{command}: timm without a name", _model_argv(command, "timm:"))
    analyze = ["analyze"]

    # --- numbers out of range
    numeric = {
        "--batch": ["0", "-1", "1.5", "nan", "inf", "abc", "", "99999999999999999999999", str(2**63 - 1)],
        "--resolution": ["0", "-3", "100000", "x"],
        "--blocks-per-sm": ["0", "33", "nan"],
    }
    for option, values in numeric.items():
        for value in values:
            add(f"analyze {option} {value!r}", [*analyze, "resnet18", option, value])
    for option, values in {
        "--tau": ["0", "-0.1", "nan", "inf", "2", "x"], "--delta": ["0", "1.5", "nan", "-inf"],
    }.items():  # fmt: skip
        for value in values:
            add(f"optimize-widths {option} {value!r}", ["optimize-widths", "resnet18", option, value])
    for value in ["0:10", "10:1", "1:100000000", "1:10:0", "a:b", "5", "1:2:3:4", "-5:5"]:
        add(f"staircase --widths {value!r}", ["staircase", "resnet50", "--layer", "fc", "--widths", value])
    for option, values in {
        "--samples": ["0", "-5", "1000000000", "1e3"], "--seed": ["-1", "4294967296", "x"],
        "--tiers": ["0", "100000"], "--tier-edges-ms": ["nan,inf", "1,0.5", "-1,2", "", "a,b", "0.5,inf"],
        "--batch": ["max", "0"],
    }.items():  # fmt: skip
        for value in values:
            add(f"gpunet {option} {value!r}", ["gpunet", option, value])
    add("gpunet more tiers than samples", ["gpunet", "--samples", "3", "--tiers", "5"])
    for option, values in {"--batch": ["max", "-1", "nan"], "--top": ["0", "100000"]}.items():
        for value in values:
            add(f"nats-sweep {option} {value!r}", ["nats-sweep", option, value])
    for value in ["0", "1000", "nan", "2.5"]:
        add(f"fold --factor {value!r}", ["fold", "resnet18", "--factor", value])
        add(f"survey --fold {value!r}", ["survey", "resnet18", "--fold", value])
    add("batch-sweep --batch", ["batch-sweep", "resnet18", "--batch", "4"])
    add("survey --tile", ["survey", "resnet18", "--tile", "128x128"])
    add("analyze --no-waves --tile", [*analyze, "resnet18", "--no-waves", "--tile", "128x128"])
    for tile in ["0x0", "128", "axb", "100000x100000", "1024x1024"]:
        add(f"analyze --tile {tile}", [*analyze, "resnet18", "--tile", tile])
    add(
        "analyze --resolution on an IR file",
        [*analyze, "m.json", "--resolution", "64"],
        files={"m.json": _ir()},
    )

    # --- IR files: empty, truncated, wrong type, bad fields, bad graph
    ir_docs = {
        "empty": "", "truncated": _ir()[:50], "binary": b"\x89PNG\r\n\x1a\n\x00\xff", "a list": "[1, 2]",
        "null": "null", "other format": json.dumps({"format": "onnx", "version": 1}),
        "version 2": _ir(doc__version=2), "no layers": _ir(doc__layers=[]),
        "layers not a list": _ir(doc__layers={"a": 1}), "negative shape": _ir(l0__output_shape=[1, 8, -8, 8]),
        "zero shape": _ir(l0__input_shapes=[[1, 3, 0, 8]]), "string shape": _ir(l0__output_shape="1x8x8x8"),
        "dangling input": _ir(l1__inputs=["nowhere"]), "stride 0": _ir(l0__stride=[0, 1]),
        "kernel 2.5": _ir(l0__kernel=[2.5, 3]), "kernel string": _ir(l0__kernel="3"),
        "unknown op": _ir(l0__op="frobnicate"), "missing kernel": _ir(l0__kernel=DROP),
        "missing op": _ir(l1__op=DROP), "negative batch": _ir(doc__batch=-1),
        "inputs not pairs": _ir(doc__inputs=["x"]), "groups 0": _ir(l0__groups=0),
        "groups not dividing": _ir(l0__groups=5), "negative padding": _ir(l0__padding=[-1, 1]),
        "out_features 0": _ir(l1__out_features=0), "bool stride": _ir(l0__stride=[True, True]),
        "layer is a list": _ir(doc__layers=[[1, 2]]), "outputs unknown": _ir(doc__outputs=["zzz"]),
        "name missing": _ir(doc__name=DROP), "huge shape": _ir(l0__output_shape=[1, 8, 10**30, 8]),
    }  # fmt: skip
    for what, text in ir_docs.items():
        for command in ["analyze", "survey", "fold", "batch-sweep", "staircase", "optimize-widths"]:
            if command in ("analyze", "survey") or what in (
                "empty",
                "dangling input",
                "stride 0",
                "unknown op",
            ):
                add(f"{command}: IR {what}", _model_argv(command, "m.json"), files={"m.json": text})
    add("IR is a directory", [*analyze, "d.json"], setup=lambda d: (d / "d.json").mkdir())

    # --- ONNX files
    add("ONNX empty", [*analyze, "m.onnx"], files={"m.onnx": b""})
    add("ONNX garbage", [*analyze, "m.onnx"], files={"m.onnx": b"\x08\x07garbage" * 20})
    add("ONNX text", ["survey", "m.onnx"], files={"m.onnx": "not a protobuf"})

    # --- calibration files
    cal_docs = {
        "empty": "", "binary": b"\xff\xfe\x00", "list": "[]", "wrong gpu": {**CALIBRATION, "gpu": "a100"},
        "negative rate": {**CALIBRATION, "dram_bytes_s": -1},
        "only a format": '{"format": "roofline-calibration"}',
        "faster than datasheet": {**CALIBRATION, "peak_flops_s": {"fp16": 9.0e15}},
        "rate a string": {**CALIBRATION, "peak_flops_s": {"fp16": "fast"}}, "missing source": {
            k: v for k, v in CALIBRATION.items() if k != "source"},
        "unknown gpu": {**CALIBRATION, "gpu": "z9000"},
    }  # fmt: skip
    for what, doc in cal_docs.items():
        text = json.dumps(doc) if isinstance(doc, dict) else doc
        add(f"calibration {what}", [*analyze, "resnet18", "--calibration", "c.json"], files={"c.json": text})
        add(
            f"nats-sweep calibration {what}",
            ["nats-sweep", "--calibration", "c.json"],
            files={"c.json": text},
        )

    # --- latency tables
    table = {"format": "roofline-latency-table", "version": 1, "gpu": "v100-sxm2", "dtype": "fp16",
             "backend": "tensorrt", "entries": {}}  # fmt: skip
    for what, doc in {
        "empty": "", "binary": b"\x00\x01", "other gpu": {**table, "gpu": "a100-sxm4-40gb"},
        "other dtype": {**table, "dtype": "fp32"},
        "bad entry": {**table, "entries": {"k": {"latency_s": -1}}},
        "entries a list": {**table, "entries": []},
    }.items():  # fmt: skip
        text = json.dumps(doc) if isinstance(doc, dict) else doc
        add(
            f"latency table {what}",
            [*analyze, "resnet18", "--latency-table", "t.json"],
            files={"t.json": text},
        )
        add(f"gpunet latency table {what}", ["gpunet", "--samples", "10", "--latency-table", "t.json"],
            files={"t.json": text})  # fmt: skip
    add("merge tables of two backends", ["latency-table", "resnet18", "--out", "o.json", "--merge", "a.json",
        "--merge", "b.json"], files={"a.json": json.dumps(table),
        "b.json": json.dumps({**table, "backend": "pytorch"})})  # fmt: skip

    # --- accuracy CSVs
    for what, text in {
        "binary": b"\xff\xfe\x00\x01", "empty": "", "no header": "resnet18,70\n",
        "not a number": "model,top1\nresnet18,high\n",
        "duplicate": "model,top1\nresnet18,70\nresnet18,71\n", "over 100": "model,top1\nresnet18,170\n",
        "nan": "model,top1\nresnet18,nan\n",
    }.items():  # fmt: skip
        add(f"accuracy CSV {what}", ["survey", "resnet18", "--accuracy", "a.csv"], files={"a.csv": text})
    add("accuracy CSV missing", ["survey", "resnet18", "--accuracy", "a.csv"])

    # --- perf results
    for what, text in {"empty": "", "binary": b"\x00", "foreign": '{"benchmarks": []}', "list": "[]"}.items():
        add(f"perf-compare {what}", ["perf-compare", "b.json", "b.json"], files={"b.json": text})
    add("perf-compare missing", ["perf-compare", "b.json", "r.json"])

    # --- hostile output paths
    writes = {
        "staircase": ["staircase", "resnet50", "--layer", "fc", "--plot"],
        "optimize-widths": ["optimize-widths", "resnet18", "--out"],
        "latency-table": ["latency-table", "resnet18", "--out"],
        "fold": ["fold", "resnet18", "--out"],
        "nats-sweep": ["nats-sweep", "--out"],
        "gpunet": ["gpunet", "--samples", "20", "--out"],
        "survey": ["survey", "resnet18", "--out"],
    }
    for command, argv in writes.items():
        suffix = {"staircase": "x.png", "survey": "dir"}.get(command, "x.json")
        if command == "survey":  # a survey directory is made with its parents, like mkdir -p
            made = ("no", "no/such", "no/such/dir", *(f"no/such/dir/{f}" for f in SURVEY_FILES))
            add("survey: out into a missing directory", [*argv, "no/such/dir"], expect=(0,), keep=made)
        else:
            add(f"{command}: out into a missing directory", [*argv, f"no/such/{suffix}"])
        add(f"{command}: out is an empty string", [*argv, ""])
        if command != "survey":
            add(f"{command}: out onto a directory", [*argv, "adir"], setup=lambda d: (d / "adir").mkdir(),
                keep=("adir",))  # fmt: skip
            add(f"{command}: out to /dev/full", [*argv, "/dev/full"])
        add(f"{command}: out under a file", [*argv, f"afile/{suffix}"], files={"afile": "x"}, keep=("afile",))
    add("survey into an existing directory", ["survey", "resnet18", "--out", "old"],
        files={"old/accuracy.png": "old"}, keep=("old", "old/accuracy.png"))  # fmt: skip
    add("survey onto a file", ["survey", "resnet18", "--out", "f"], files={"f": "x"}, keep=("f",))
    add("staircase plot with a bad suffix", ["staircase", "resnet50", "--layer", "fc", "--plot", "x.gif"])

    # --- interrupted runs: the old directory or nothing, never half of one
    for sig, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
        add(f"survey interrupted by {signal.Signals(sig).name}", ["survey", "--out", "new"], expect=(code,),
            interrupt_after_s=3.0, signal=sig)  # fmt: skip
        add(f"survey --force interrupted by {signal.Signals(sig).name}",
            ["survey", "--out", "old", "--force"], expect=(code,), interrupt_after_s=3.0, signal=sig,
            files={"old/summary.md": "old"}, keep=("old", "old/summary.md"))  # fmt: skip
        add(
            f"gpunet --out interrupted by {signal.Signals(sig).name}",
            ["gpunet", "--samples", "200000", "--out", "g.csv"],
            expect=(code,),
            interrupt_after_s=3.0,
            signal=sig,
        )
    return out


def run(case: Case, python: str) -> tuple[Case, list[str]]:
    problems = []
    with tempfile.TemporaryDirectory(prefix="sweep-") as tmp:
        cwd = Path(tmp)
        for rel, content in case.files.items():
            path = cwd / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
        if case.setup:
            case.setup(cwd)
        before = {p.relative_to(cwd).as_posix() for p in cwd.rglob("*")}
        start = time.monotonic()
        proc = subprocess.Popen([python, "-m", "roofline.cli", *case.argv], cwd=cwd, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
            if case.interrupt_after_s is not None:
                try:
                    proc.wait(timeout=case.interrupt_after_s)
                    problems.append("finished before it could be interrupted")
                except subprocess.TimeoutExpired:
                    proc.send_signal(case.signal)
            out, err = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            problems.append(f"hung: killed after {TIMEOUT_S} s")
        elapsed = time.monotonic() - start
        after = {p.relative_to(cwd).as_posix() for p in cwd.rglob("*")}
        lines = [line for line in err.splitlines() if line.strip()]
        if proc.returncode not in case.expect:
            problems.append(f"exit {proc.returncode}, expected {case.expect}")
        if "Traceback" in err or "Traceback" in out:
            problems.append("traceback: " + (err.strip().splitlines() or [""])[-1][:160])
        elif not 1 <= len(lines) <= 3 and proc.returncode != 0:
            problems.append(f"{len(lines)} lines on stderr: {err[:200]!r}")
        elif lines and not lines[-1].startswith("roofline:") and case.interrupt_after_s is None:
            problems.append(f"stderr does not start with 'roofline:': {lines[-1][:160]!r}")
        if NAN.search(out):
            problems.append("nan/inf printed")
        left = sorted(after - before - set(case.keep))
        if left:
            problems.append(f"left behind: {left[:5]}")
        gone = sorted((before & set(case.keep)) - after)
        if gone:
            problems.append(f"removed what it must keep: {gone}")
        for rel, content in case.files.items():
            path = cwd / rel
            if (
                rel in case.keep
                and path.is_file()
                and isinstance(content, str)
                and path.read_text() != content
            ):
                problems.append(f"{rel} was changed")
        if elapsed > TIMEOUT_S:
            problems.append(f"took {elapsed:.0f} s")
    return case, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", default="", help="run only cases whose name contains this")
    parser.add_argument("--verbose", action="store_true", help="print every case")
    args = parser.parse_args()
    selected = [c for c in cases() if args.only in c.name]
    failed = 0
    with ThreadPoolExecutor(args.jobs) as pool:
        for case, problems in pool.map(lambda c: run(c, sys.executable), selected):
            if problems:
                failed += 1
                print(f"FAIL {case.name}: {'; '.join(problems)}  argv={case.argv}")
            elif args.verbose:
                print(f"ok   {case.name}")
    print(f"{len(selected)} cases: {len(selected) - failed} kept the contract, {failed} did not")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
