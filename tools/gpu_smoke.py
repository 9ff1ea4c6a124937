"""Self-check of a new GPU runner (``nox -s gpu-smoke``, or ``python tools/gpu_smoke.py`` in its venv).

In a few minutes it checks what the regression suite needs and prints one line per check,
``PASS|FAIL|WARN|INFO <check> <figures>``, then a count; the exit status is 1 when any check FAILed:

  stack      torch sees the GPU and has kernels for it; nvidia-smi's driver and GPU fit the stack
             (``--stack NAME``) and the installed versions are its pins; backends; the fingerprint
  backend    the torch backend on resnet50 fp16 at batch 1 and 64 (CUDA graph) and batch 1 eager:
             img/s, utilization against the datasheet, host vs GPU time per launch, host-bound flag
  timing     the host-bound rule on two synthetic launches: host-heavy (must be flagged) and a
             GPU spin of known length (must not be, and its GPU time must match)
  telemetry  NVML during a GEMM load: samples, clocks, power, energy, clock-event reasons
  calibrate  ``python -m kernels.calibrate --quick``: GEMM and copy rates against the datasheet
             (targets 80% and 85%)
  suite      the pytest suite on a smoke manifest: --update-baselines (baseline written), an A/A
             run (no false alarm), --perf-slowdown 2 (a confirmed regression at every batch), and,
             time allowing, --perf-dtype fp32 (the README's real-world forced slowdown)

Everything it writes goes to ``--out`` (default: a fresh temporary directory), never into the
repository. ``--suite-device cpu --only suite`` runs the suite cycle in the CPU mode, which checks
this script's own suite step on a machine without a GPU. ``--full`` measures the committed
manifest's four models with the torch backend instead of resnet50 alone.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STEPS = ("stack", "backend", "timing", "telemetry", "calibrate", "suite")
SMOKE_MODELS = ("resnet50",)
FULL_MODELS = ("resnet50", "efficientnet_b0", "mobilenetv3_large_100", "regnety_032")


class Report:
    def __init__(self, out: Path, budget_s: float) -> None:
        self.out, self.start, self.budget_s = out, time.monotonic(), budget_s
        self.counts = dict.fromkeys(("PASS", "FAIL", "WARN", "INFO", "SKIP"), 0)
        self.lines: list[str] = []

    def __call__(self, status: str, check: str, detail: str = "") -> None:
        line = f"{status:4} {check:34} {detail}".rstrip()
        print(line, flush=True)
        self.lines.append(line)
        self.counts[status] += 1

    def left_s(self) -> float:
        return self.budget_s - (time.monotonic() - self.start)

    def finish(self) -> int:
        total = ", ".join(f"{n} {status}" for status, n in self.counts.items())
        tail = f"gpu-smoke: {total} in {time.monotonic() - self.start:.0f} s; files in {self.out}"
        print(tail)
        (self.out / "summary.txt").write_text("\n".join([*self.lines, tail]) + "\n")
        return 1 if self.counts["FAIL"] else 0


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:300]


# --- stack -------------------------------------------------------------------------------------------------


def step_stack(report: Report, args: argparse.Namespace) -> bool:
    """True when CUDA is usable (the GPU steps need it)."""
    from kernels import stacks
    from kernels.backends.base import REGISTRY, backend_class, cuda_unavailable_reason

    try:
        import torch
    except ImportError:
        report("FAIL", "stack:torch", "torch is not installed")
        return False
    reason = cuda_unavailable_reason()
    if reason:
        report("FAIL", "stack:cuda", reason)
        return False
    props = torch.cuda.get_device_properties(0)
    device = (
        f"{props.name}, compute capability {props.major}.{props.minor}, {props.multi_processor_count} SMs, "
        f"{props.total_memory / 2**30:.1f} GiB"
    )
    kernels = " ".join(torch.cuda.get_arch_list())
    report(
        "PASS",
        "stack:cuda",
        f"{device}; torch {torch.__version__} (CUDA {torch.version.cuda}) kernels {kernels}",
    )
    try:
        gpus = stacks.query_gpus()
        report("INFO", "stack:nvidia-smi", "; ".join(g.describe() for g in gpus))
    except stacks.StackError as exc:
        report("FAIL", "stack:nvidia-smi", str(exc))
        gpus = []
    if args.stack:
        stack = stacks.load_stacks()[args.stack]
        problems = [p for p in map(stack.mismatch, gpus) if p]
        report("FAIL" if problems else "PASS", "stack:fit", problems[0] if problems else f"{stack.name} fits")
        for package, pinned in sorted(stack.pins().items()):
            try:
                installed = importlib.metadata.version(package)
            except importlib.metadata.PackageNotFoundError:
                installed = None
            if installed is None:
                status = "WARN" if package.startswith("tensorrt") else "FAIL"
                report(status, f"stack:{package}", f"not installed (pinned {pinned})")
            else:
                same = installed.split("+")[0] == pinned.split("+")[0]
                report("PASS" if same else "FAIL", f"stack:{package}", f"{installed} (pinned {pinned})")
    for name in REGISTRY:
        reason = backend_class(name).unavailable_reason()
        status = "PASS" if reason is None else ("FAIL" if name == "torch" else "WARN")
        report(status, f"stack:backend-{name}", "available" if reason is None else reason)
    try:
        from kernels.benchmark import environment, gpu_of

        env = environment(0, REGISTRY)
        gpu = gpu_of(env)
        fields = ("driver_version", "cuda_driver_version", "power_limit_w", "max_sm_clock_mhz", "gpu_uuid")
        missing = [f for f in fields if env.get(f) in (None, "")]
        detail = f"{gpu.key}; " + ", ".join(f"{f}={env.get(f)}" for f in fields)
        if missing:
            detail += f"; missing {missing} (NVML: {env.get('nvml_unavailable_reason')})"
        report("WARN" if missing else "PASS", "stack:fingerprint", detail)
    except Exception as exc:  # noqa: BLE001 - one line, and the later steps still run
        report("FAIL", "stack:fingerprint", _one_line(exc))
    return True


# --- backend and timing ------------------------------------------------------------------------------------


def _figures(m, flops: float | None = None, peak: float | None = None) -> str:
    util = f" ({m.median * flops / peak:.1%} of the datasheet)" if flops and peak else ""
    return (
        f"{m.median:,.4g}/s{util}; {m.windows_run} windows x {m.launches_per_window} launches; "
        f"host {m.enqueue_s * 1e6:,.0f} us vs GPU {m.launch_s * 1e6:,.0f} us a launch, "
        f"GPU busy <= {m.busy_bound:.0%}, windows {m.gpu_busy:.0%}, enqueue_bound {m.enqueue_bound}, "
        f"launch blocks {m.launch_blocks}" + (f"; INVALID: {m.invalid_reason}" if m.invalid_reason else "")
    )


def step_backend(report: Report, args: argparse.Namespace) -> None:
    import torch

    from kernels.backends.base import ModelSpec
    from kernels.backends.torch_backend import TorchBackend
    from kernels.benchmark import environment, gpu_of
    from kernels.timing import QUICK, measure
    from roofline.model.resolve import resolve

    gpu = gpu_of(environment(0, ["torch"]))
    flops = float(resolve("resnet50", 224).with_batch(1).flops())
    eager_b1 = None
    for batch, graph in ((1, True), (64, True), (1, False)):
        name = f"backend:resnet50-b{batch}-{'graph' if graph else 'eager'}"
        backend = TorchBackend(cuda_graph=graph)
        try:
            torch.cuda.reset_peak_memory_stats()
            backend.build(ModelSpec("timm:resnet50", 224, batch, "fp16"), args.out / "cache")
            m = measure(backend.launch, backend.stream, batch, QUICK)
            util = m.median * flops / gpu.peak("fp16")
            ok = m.invalid_reason is None and 0 < util < 1
            report("PASS" if ok else "FAIL", name, _figures(m, flops, gpu.peak("fp16")))
            if batch == 64:
                reserved = torch.cuda.max_memory_reserved() / 2**30
                report("INFO", "backend:memory-b64", f"peak reserved {reserved:.2f} GiB")
            if not graph:
                eager_b1 = m
        except Exception as exc:  # noqa: BLE001
            report("FAIL", name, _one_line(exc))
        finally:
            backend.close()
    if eager_b1 is not None:
        # Eager resnet50 at batch 1 issues ~170 kernels a launch: most hosts take longer than they run.
        host_us, gpu_us = eager_b1.enqueue_s * 1e6, eager_b1.launch_s * 1e6
        report(
            "PASS" if eager_b1.enqueue_bound else "WARN", "backend:eager-b1-host-bound",
            f"enqueue_bound {eager_b1.enqueue_bound} (expected True unless this host issues kernels faster "
            f"than the GPU runs them: host {host_us:,.0f} us, GPU {gpu_us:,.0f} us)",
        )  # fmt: skip


def step_timing(report: Report, args: argparse.Namespace) -> None:
    import torch

    from kernels.timing import QUICK, measure

    stream = torch.cuda.Stream()
    x = torch.zeros(1, device="cuda")

    def host_heavy() -> None:  # 0.5 ms of host work and a ~5 us kernel a launch
        end = time.perf_counter() + 5e-4
        while time.perf_counter() < end:
            pass
        x.add_(1)

    m = measure(host_heavy, stream, 1, QUICK)
    report("PASS" if m.enqueue_bound else "FAIL", "timing:host-bound-synthetic",
           f"expected enqueue_bound True; {_figures(m)}")  # fmt: skip
    # A spin of known length: calibrate the spin's clock rate, then a 2 ms spin per launch.
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    with torch.cuda.stream(stream):
        torch.cuda._sleep(1_000_000)
        begin.record(stream)
        torch.cuda._sleep(10_000_000)
        end.record(stream)
    end.synchronize()
    cycles_per_s = 10_000_000 / (begin.elapsed_time(end) / 1e3)
    cycles = int(2e-3 * cycles_per_s)
    m = measure(lambda: torch.cuda._sleep(cycles), stream, 1, QUICK)
    close = abs(m.launch_s / 2e-3 - 1) < 0.2
    report("PASS" if not m.enqueue_bound and close else "FAIL", "timing:gpu-bound-synthetic",
           f"a 2 ms spin: expected enqueue_bound False and GPU time ~2000 us; {_figures(m)}")  # fmt: skip


def step_telemetry(report: Report, args: argparse.Namespace) -> None:
    import torch

    from kernels.telemetry import Sampler

    a = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
    with Sampler(0, interval_s=0.1) as sampler:
        end = time.perf_counter() + 3.0
        while time.perf_counter() < end:
            for _ in range(10):
                a @ a
            torch.cuda.synchronize()
    t = sampler.telemetry()
    if not t.available:
        report("FAIL", "telemetry:nvml", t.unavailable_reason or "unavailable")
        return
    clocks = f"SM clock {t.sm_clock_mhz_min}-{t.sm_clock_mhz_max} MHz"
    power = (
        f"power mean {t.power_w_mean} W max {t.power_w_max} W, {t.temperature_c_max} C, energy {t.energy_j} J"
    )
    reasons = dict(t.reason_fractions)
    detail = f"{t.n_samples} samples over {t.duration_s:.1f} s; {clocks}, {power}, reasons {reasons}"
    report("PASS" if t.n_samples >= 10 else "FAIL", "telemetry:samples", detail)
    report("WARN" if t.invalid_reasons else "PASS", "telemetry:validity",
           "; ".join(t.invalid_reasons + t.warnings) or "no throttling, no foreign process")  # fmt: skip


def step_calibrate(report: Report, args: argparse.Namespace) -> None:
    out = args.out / "calibration.json"
    cmd = [sys.executable, "-m", "kernels.calibrate", "--quick", "--dtypes", "fp16,bf16",
           "--skip-kernel-classes", "--out", str(out)]  # fmt: skip
    done = _run(cmd, report, timeout_s=180)
    if done is None:
        return
    if done.returncode != 0 or not out.exists():
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        report("FAIL", "calibrate:run", f"exit {done.returncode}: {tail}")
        return
    doc = json.loads(out.read_text())
    targets = doc.get("targets", {})
    gemm_target, copy_target = targets.get("peak_flops_s", 0.8), targets.get("dram_bytes_s", 0.85)
    ratios = doc.get("ratio_to_datasheet", {})
    for dtype, rate in doc.get("peak_flops_s", {}).items():
        ratio = ratios.get("peak_flops_s", {}).get(dtype)
        status = "PASS" if ratio is not None and ratio >= gemm_target else "FAIL"
        share = "no datasheet figure" if ratio is None else f"{ratio:.1%} of the datasheet"
        report(
            status,
            f"calibrate:gemm-{dtype}",
            f"{rate / 1e12:,.1f} TFLOP/s = {share} (target {gemm_target:.0%})",
        )
    ratio = ratios.get("dram_bytes_s")
    status = "PASS" if ratio is not None and ratio >= copy_target else "FAIL"
    share = "no datasheet figure" if ratio is None else f"{ratio:.1%} of the datasheet"
    report(
        status,
        "calibrate:copy",
        f"{doc['dram_bytes_s'] / 1e9:,.0f} GB/s = {share} (target {copy_target:.0%})",
    )


# --- the suite's update / A-A / slowdown cycle ------------------------------------------------------------


def _run(cmd: list[str], report: Report, timeout_s: float) -> subprocess.CompletedProcess | None:
    limit = min(timeout_s, report.left_s() - 5)
    if limit < 20:
        report("SKIP", Path(cmd[2] if len(cmd) > 2 else cmd[0]).name, "time budget spent")
        return None
    try:
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        report("FAIL", "timeout", f"{' '.join(cmd[:6])} ... ran past {limit:.0f} s")
        return None


def _manifest(args: argparse.Namespace) -> Path | None:
    if args.suite_device == "cpu":
        return None  # the CPU mode's own manifest
    models = FULL_MODELS if args.full else SMOKE_MODELS
    text = '[defaults]\ndtype = "fp16"\nbackends = ["torch"]\n' + "".join(
        f'\n[[model]]\nname = "{m}"\nresolution = 224\nbatches = [1, 64]\n' for m in models
    )
    path = args.out / "smoke-manifest.toml"
    path.write_text(text)
    return path


def step_suite(report: Report, args: argparse.Namespace) -> None:
    manifest = _manifest(args)
    base = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", "-m", "gpu",
            "perf_tests/test_models.py", "--baseline-dir", str(args.out / "baselines"),
            "--perf-cache", str(args.out / "cache")]  # fmt: skip
    base += ["--perf-device", "cpu"] if args.suite_device == "cpu" else ["--backend", "torch", "--perf-quick"]
    base += ["--manifest", str(manifest)] if manifest else []
    (args.out / "baselines").mkdir(exist_ok=True)
    cycle: list[tuple[str, list[str], int, Callable[[dict], tuple[bool, str]]]] = [
        ("update", ["--update-baselines"], 0, _check_update),
        ("aa", [], 0, _check_aa),
        ("slowdown", ["--perf-slowdown", "2"], 1, _check_slowdown),
    ]
    if args.suite_device == "cuda":
        cycle.append(("fp32", ["--perf-dtype", "fp32", "--no-confirm"], 1, _check_fp32))
    for name, extra, expected_rc, check in cycle:
        results = args.out / f"suite-{name}.json"
        cmd = [
            *base,
            "--perf-results",
            str(results),
            f"--benchmark-json={args.out / f'bench-{name}.json'}",
            *extra,
        ]
        done = _run(cmd, report, timeout_s=420)
        if done is None:
            return
        (args.out / f"suite-{name}.log").write_text(done.stdout + done.stderr)
        summary = results.with_name(f"{results.stem}-summary.txt")
        for line in summary.read_text().splitlines() if summary.exists() else []:
            report("INFO", f"suite:{name}:summary", line)
        status = "PASS" if done.returncode == expected_rc else "FAIL"
        report(
            status, f"suite:{name}:exit", f"{done.returncode} (expected {expected_rc}); log suite-{name}.log"
        )
        if not results.exists():
            report("FAIL", f"suite:{name}:results", f"{results} not written")
            continue
        for key, entry in sorted(json.loads(results.read_text())["benchmarks"].items()):
            ok, detail = check(entry)
            status = "PASS" if ok else ("WARN" if name == "fp32" else "FAIL")
            report(status, f"suite:{name}:{key}", detail)
        bench = args.out / f"bench-{name}.json"
        listed = json.loads(bench.read_text()).get("benchmarks", []) if bench.exists() else []
        has_info = bool(listed) and all("verdict" in b.get("extra_info", {}) for b in listed)
        report(
            "PASS" if has_info else "FAIL",
            f"suite:{name}:benchmark-json",
            f"{len(listed)} benchmarks in {bench}",
        )


def _verdict(entry: dict) -> dict:
    return entry.get("verdict") or {}


def _figure(entry: dict) -> str:
    v = _verdict(entry)
    change = "-" if v.get("change") is None else f"{v['change']:+.1%}"
    figures = f"median {entry['median']:.4g} {entry['unit']}, spread {entry['spread']:.2%}"
    return f"{v.get('verdict')} {change}; {figures}"


def _check_update(entry: dict) -> tuple[bool, str]:
    refused = entry.get("update_refused")
    return (
        not refused,
        f"baseline {'REFUSED: ' + refused if refused else 'written'}; {entry.get('update_agreement')}",
    )


def _check_aa(entry: dict) -> tuple[bool, str]:
    return _verdict(entry).get("verdict") in ("ok", "improvement"), _figure(entry)


def _check_slowdown(entry: dict) -> tuple[bool, str]:
    v = _verdict(entry)
    confirmed = v.get("verdict") == "regression" and "confirmed by a re-run" in v.get("reason", "")
    return confirmed, _figure(entry) + f"; confirmed={confirmed}"


def _check_fp32(entry: dict) -> tuple[bool, str]:
    return _verdict(entry).get("verdict") == "regression", _figure(
        entry
    ) + " (fp32 against the fp16 baseline)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, help="where everything is written (default: a new temporary directory)"
    )
    parser.add_argument(
        "--stack", help="the stack nox installed (constraints/stacks.toml): check the runner fits it"
    )
    parser.add_argument("--only", help=f"comma-separated steps of {', '.join(STEPS)}")
    parser.add_argument(
        "--budget-s", type=float, default=420, help="time budget; later steps skip when it is spent"
    )
    parser.add_argument(
        "--suite-device", choices=("cuda", "cpu"), default="cuda", help="the suite cycle's device"
    )
    parser.add_argument("--full", action="store_true", help="the suite on the manifest's four models")
    args = parser.parse_args(argv)
    args.out = args.out or Path(tempfile.mkdtemp(prefix="gpu-smoke-"))
    args.out.mkdir(parents=True, exist_ok=True)
    steps = STEPS if not args.only else tuple(s.strip() for s in args.only.split(","))
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        parser.error(f"unknown step {unknown[0]!r}: choose from {', '.join(STEPS)}")
    report = Report(args.out, args.budget_s)
    cuda = step_stack(report, args) if "stack" in steps or args.suite_device == "cuda" else False
    for name in steps[1:] if steps[:1] == ("stack",) else steps:
        if name == "stack":
            continue
        needs_gpu = name != "suite" or args.suite_device == "cuda"
        if needs_gpu and not cuda:
            report("SKIP", name, "no usable CUDA GPU (see stack)")
            continue
        if report.left_s() < 20:
            report("SKIP", name, "time budget spent")
            continue
        try:
            {"backend": step_backend, "timing": step_timing, "telemetry": step_telemetry,
             "calibrate": step_calibrate, "suite": step_suite}[name](report, args)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - one FAIL line, and the next step runs
            report("FAIL", name, _one_line(exc))
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
