"""Run one benchmark of the manifest and turn it into a results entry (``roofline.perf.results``).

Used by the pytest suite (``perf_tests/``) and, for the gate's confirmation
re-run in a fresh process, from the command line::

    python -m kernels.benchmark resnet50-b64-torch [more ids] --out rerun.json

A model entry records images/s per window, TFLOP/s, utilization against the
datasheet peak and against the achievable one (the calibration file's, when
given), the analytic prediction and its error, host walltime, the host-bound
(enqueue) flag with the launch costs it came from, and the telemetry. The run is
INVALID (``invalid_reason``) when its windows did not stabilize or the telemetry
saw throttling or a foreign process.

A CPU benchmark (manifest ``device = "cpu"``, id ``...-cpu``; the suite's CPU mode)
is timed by the process's CPU time (``kernels.timing.measure_host``) and its entry says
``"device": "cpu"``: images/s, GFLOP/s and host walltime, but no GPU utilization,
no roofline prediction (both are about a GPU) and no telemetry (NVML is a GPU's).
Its environment (``cpu_environment``) names the CPU instead of a GPU.

``RunOptions.slowdown`` (``--perf-slowdown N``) launches every inference N times and
counts it once: an exact N-fold slowdown at any batch, on any backend and device,
for checking that the gate fires; the entry records it as ``forced_slowdown``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from kernels import telemetry
from kernels.backends.base import (
    BackendUnavailable,
    ModelSpec,
    backend_class,
    cpu_unavailable_reason,
    require,
)
from kernels.manifest import DEFAULT_MANIFEST, BenchSpec, ManifestError, load_manifest
from kernels.provenance import provenance
from kernels.timing import CPU_TIMING, QUICK, Measurement, TimingConfig
from roofline.analysis.engines import Engine, get_engine
from roofline.analysis.target import Target
from roofline.errors import RooflineError
from roofline.hardware.calibration import load_calibration
from roofline.hardware.gpus import GPU, get_gpu
from roofline.perf.results import Benchmark, PerfResults, write_results

DEFAULT_CACHE = Path(".perf-cache")
#: CPU benchmarks' intra-op threads unless ``--perf-threads`` says otherwise. On a small shared machine
#: (CI's 2 cores) OpenMP threads that wait for each other on a busy core made a 2-thread resnet18 run
#: 9x slower than a 1-thread one (2.4 s vs 0.26 s a launch, load average 8): one thread is the stable figure.
CPU_DEFAULT_THREADS = 1


@dataclass(frozen=True)
class RunOptions:
    """How to run: the same options in the suite and in its fresh-process re-run."""

    timing: TimingConfig = TimingConfig()
    cache_dir: Path = DEFAULT_CACHE
    device: int = 0
    calibration: Path | None = None
    dtype: str | None = None  # override every model benchmark's dtype (e.g. fp32 to force a slowdown)
    cuda_graph: bool = True
    strict_power: bool = False
    torch_compile: bool = False  # the torch backend wraps the model in torch.compile
    trt_layers: bool = False  # TensorRT: per-layer times (IProfiler) and the engine-inspector JSON
    parent_pid: int | None = None  # a confirmation re-run's parent, whose CUDA context shares the GPU
    slowdown: int = 1  # launch each inference this many times, count it once (a forced N-fold slowdown)
    threads: int | None = None  # CPU benchmarks: intra-op threads (None: torch's default, one per core)

    def __post_init__(self) -> None:
        if isinstance(self.slowdown, bool) or not isinstance(self.slowdown, int) or self.slowdown < 1:
            raise ValueError(f"slowdown must be a whole number >= 1, got {self.slowdown!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"threads must be a whole number >= 1, got {self.threads!r}")

    def argv(self) -> list[str]:
        """These options as ``python -m kernels.benchmark`` arguments."""
        args = ["--cache-dir", str(self.cache_dir), "--device", str(self.device)]
        if self.timing == QUICK:
            args.append("--quick")
        if self.calibration:
            args += ["--calibration", str(self.calibration)]
        if self.dtype:
            args += ["--dtype", self.dtype]
        if not self.cuda_graph:
            args.append("--no-cuda-graph")
        if self.strict_power:
            args.append("--strict-power")
        if self.torch_compile:
            args.append("--torch-compile")
        if self.trt_layers:
            args.append("--trt-layers")
        if self.slowdown != 1:
            args += ["--slowdown", str(self.slowdown)]
        if self.threads is not None:
            args += ["--threads", str(self.threads)]
        return [*args, "--parent-pid", str(os.getpid())]

    def launcher(self, launch: Callable[[], None]) -> Callable[[], None]:
        """``launch`` itself, or ``slowdown`` launches of it in one (each inference counted once)."""
        if self.slowdown == 1:
            return launch
        repeat = range(self.slowdown)

        def slowed() -> None:
            for _ in repeat:
                launch()

        return slowed

    def sampler(self) -> telemetry.Sampler:
        own = {os.getpid()} | ({self.parent_pid} if self.parent_pid else set())
        return telemetry.Sampler(self.device, own_pids=own, strict_power=self.strict_power)


def environment(device: int, backends: Iterable[str]) -> dict[str, Any]:
    """The fingerprint results are compared under: telemetry's device fields + backend versions."""
    env = telemetry.environment(device)
    versions = {}
    for name in sorted(set(backends)):
        cls = backend_class(name)
        versions[name] = None if cls.unavailable_reason() else cls.version()
    env["backends"] = versions
    env["python"] = platform.python_version()
    return env


def engine_of(backend: str, options: RunOptions) -> Engine:
    """The engine whose kernels this backend runs (``roofline engines``), so that "prediction vs
    measurement" compares like with like; a launch replayed from a CUDA graph costs no host time."""
    key = "torch-compile" if backend == "torch" and options.torch_compile else backend
    engine = get_engine(key)
    return replace(engine, host_issue_s=0.0) if options.cuda_graph else engine


def cpu_environment(backends: Iterable[str]) -> dict[str, Any]:
    """The fingerprint of a CPU run: ``device`` "cpu", the CPU's model and logical core count, the
    backend versions; every GPU field present (the results schema has them) and null."""
    from roofline.perf.results import COMPARED_FIELDS

    env: dict[str, Any] = dict.fromkeys(COMPARED_FIELDS)
    versions = {}
    for name in sorted(set(backends)):
        versions[name] = None if cpu_unavailable_reason(name) else backend_class(name).version()
    env.update(
        device="cpu", cpu_model=_cpu_model_name(), cpu_count=os.cpu_count(), machine=platform.machine(),
        gpu_key=None, host=platform.node(), python=platform.python_version(), backends=versions,
    )  # fmt: skip
    return env


def _cpu_model_name() -> str:
    """``model name`` of /proc/cpuinfo (Linux), else ``platform.processor()``, else the machine type."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def gpu_of(env: Mapping[str, Any]) -> GPU:
    """The database GPU of an environment fingerprint; one-line error when it is not in the database."""
    if not env.get("gpu_key"):
        raise RooflineError(
            f"{env.get('gpu_name')} is not in the GPU database: add it to roofline/hardware/data/gpus.toml"
        )
    return get_gpu(env["gpu_key"])


def _invalid(measurement: Measurement, telem: telemetry.Telemetry) -> str | None:
    reasons = [measurement.invalid_reason] if measurement.invalid_reason else []
    return "; ".join([*reasons, *telem.invalid_reasons]) or None


def _model(spec: BenchSpec, options: RunOptions, gpu: GPU, say: Callable[[str], None]) -> Benchmark:
    from kernels.timing import measure
    from roofline.analysis.predict import evaluate
    from roofline.model.resolve import resolve

    kwargs = {"cuda_graph": options.cuda_graph}
    if spec.backend == "torch":
        kwargs["compile"] = options.torch_compile
    profile_layers = spec.backend == "tensorrt" and options.trt_layers
    if profile_layers:
        kwargs.update(profile_layers=True, inspector=True)
    backend = require(spec.backend)(**kwargs)
    say(f"{spec.id}: building {spec.backend} engine")
    try:
        backend.build(ModelSpec(spec.source, spec.resolution, spec.batch, spec.dtype), options.cache_dir)
        with options.sampler() as sampler:
            m = measure(options.launcher(backend.launch), backend.stream, spec.batch, options.timing, say)
        description = backend.describe()
        # Profiled outside the timed windows: IProfiler runs a second, synchronous, non-graph context.
        layer_times_s = backend.layer_times() if profile_layers else None
    finally:
        backend.close()
    telem = sampler.telemetry()
    calibration = load_calibration(options.calibration, gpu) if options.calibration else None
    target = Target(gpu, spec.dtype, engine=engine_of(spec.backend, options), calibration=calibration)
    estimate = evaluate(resolve(spec.model, spec.resolution), target, spec.batch)
    achievable = target.roof
    flops = estimate.flops_per_image
    entry = Benchmark.from_samples(
        spec.id, m.samples, "img/s", flops_per_image=flops, peak_flops=gpu.peak(spec.dtype),
        tolerance=spec.tolerance, provenance=provenance(),
    )  # fmt: skip
    predicted = estimate.throughput_img_s
    extra = {
        "kind": "model", "model": spec.model, "source": spec.source, "resolution": spec.resolution,
        "batch": spec.batch, "dtype": spec.dtype, "backend": spec.backend, "backend_description": description,
        "tflops_s": entry.median * flops / 1e12,
        "utilization_achievable": entry.median * flops / achievable.flops_s,
        "achievable_peak_flops": achievable.flops_s, "achievable_source": achievable.source,
        "prediction": {
            "img_s": predicted, "error": entry.median / predicted - 1, "utilization": estimate.utilization,
        },
        "host_img_s": float(np.median(m.host_samples)),
        "energy_per_image_j": _energy_per_item(telem, entry.median),
        "enqueue_bound": m.enqueue_bound, "enqueue_s": m.enqueue_s, "gpu_launch_s": m.launch_s,
        "gpu_busy_bound": m.busy_bound, "timing": m.to_dict(), "telemetry": telem.to_dict(),
        "invalid_reason": _invalid(m, telem), "device": "cuda", "timer": m.timer,
    }  # fmt: skip
    if options.slowdown != 1:
        extra["forced_slowdown"] = options.slowdown
    if layer_times_s is not None:
        extra["layer_times_s"] = layer_times_s
    return replace(entry, extra=extra)


def _cpu_model(spec: BenchSpec, options: RunOptions, say: Callable[[str], None]) -> Benchmark:
    """A CPU benchmark: the torch backend on the host, host-timed windows (module docstring)."""
    from kernels.backends.torch_backend import TorchBackend
    from kernels.timing import measure_host
    from roofline.model.resolve import resolve

    reason = cpu_unavailable_reason(spec.backend)
    if reason:
        raise BackendUnavailable(f"backend {spec.backend} is unavailable on the CPU: {reason}")
    backend = TorchBackend(device="cpu", threads=options.threads or CPU_DEFAULT_THREADS)
    say(f"{spec.id}: building the {spec.backend} model on the CPU")
    try:
        backend.build(ModelSpec(spec.source, spec.resolution, spec.batch, spec.dtype), options.cache_dir)
        m = measure_host(options.launcher(backend.launch), spec.batch, CPU_TIMING, say)
        description = backend.describe()
    finally:
        backend.close()
    flops = float(resolve(spec.model, spec.resolution).with_batch(1).flops())
    entry = Benchmark.from_samples(
        spec.id, m.samples, "img/s", flops_per_image=flops, tolerance=spec.tolerance, provenance=provenance()
    )
    extra = {
        "kind": "model", "device": "cpu", "timer": m.timer,
        "note": "CPU run, timed by process CPU time: not a GPU measurement (no utilization or prediction)",
        "model": spec.model, "source": spec.source, "resolution": spec.resolution, "batch": spec.batch,
        "dtype": spec.dtype, "backend": spec.backend, "backend_description": description,
        "threads": description.get("threads"), "gflops_s": entry.median * flops / 1e9,
        "host_img_s": float(np.median(m.host_samples)), "enqueue_bound": None, "timing": m.to_dict(),
        "invalid_reason": m.invalid_reason,
    }  # fmt: skip
    if options.slowdown != 1:
        extra["forced_slowdown"] = options.slowdown
    return replace(entry, extra=extra)


def _energy_per_item(telem: telemetry.Telemetry, items_s: float) -> float | None:
    """Mean power over the sampled span / throughput: J per image (or per FLOP, per byte)."""
    if telem.energy_j is None or not telem.duration_s:
        return None
    return telem.energy_j / telem.duration_s / items_s


def _micro(spec: BenchSpec, options: RunOptions, gpu: GPU, say: Callable[[str], None]) -> Benchmark:
    from kernels import microbench

    with options.sampler() as sampler:
        if spec.kind == "gemm":
            result = microbench.gemm(spec.dtype, spec.params["size"], options.timing, say)
        else:
            result = microbench.copy_bandwidth(spec.params["nbytes"], options.timing, say)
    telem = sampler.telemetry()
    m = result.measurement
    peak = gpu.peak(spec.dtype) if spec.kind == "gemm" else gpu.dram_bandwidth_bytes_s
    entry = Benchmark.from_samples(
        spec.id, m.samples, result.unit, peak_flops=peak if spec.kind == "gemm" else None,
        utilization=m.median / peak, tolerance=spec.tolerance, provenance=provenance(),
    )  # fmt: skip
    extra = {
        "kind": spec.kind, "dtype": spec.dtype, **spec.params, "datasheet": peak,
        "timing": m.to_dict(), "telemetry": telem.to_dict(), "invalid_reason": _invalid(m, telem),
    }  # fmt: skip
    return replace(entry, extra=extra)


def run(
    spec: BenchSpec, options: RunOptions, env: Mapping[str, Any], say: Callable[[str], None]
) -> Benchmark:
    """Measure ``spec`` on this machine's device ``options.device`` (described by ``env``), or on the
    CPU for a CPU benchmark."""
    if options.dtype and spec.kind == "model":
        spec = replace(spec, dtype=options.dtype)
    if spec.device == "cpu":
        return _cpu_model(spec, options, say)
    gpu = gpu_of(env)
    return (_model if spec.kind == "model" else _micro)(spec, options, gpu, say)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kernels.benchmark", description="Run manifest benchmarks and write a results file."
    )
    parser.add_argument("ids", nargs="+", metavar="ID", help="benchmark ids (see perf_tests/manifest.toml)")
    parser.add_argument("--out", required=True, type=Path, help="results file to write (JSON)")
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="engine and timing caches")
    parser.add_argument("--device", type=int, default=0, help="CUDA device index")
    parser.add_argument("--calibration", type=Path, help="achievable peaks from python -m kernels.calibrate")
    parser.add_argument("--dtype", help="run every model benchmark at this dtype instead")
    parser.add_argument("--no-cuda-graph", action="store_true", help="launch without CUDA graphs")
    parser.add_argument("--strict-power", action="store_true", help="power capping also invalidates a run")
    parser.add_argument("--quick", action="store_true", help="short warmup and windows (smoke runs)")
    parser.add_argument("--torch-compile", action="store_true", help="torch backend: use torch.compile")
    parser.add_argument("--trt-layers", action="store_true", help="TensorRT: layer times, inspector JSON")
    parser.add_argument("--parent-pid", type=int, help="a process of ours that also holds the GPU")
    parser.add_argument(
        "--slowdown", type=int, default=1, help="launch each inference N times (forced slowdown)"
    )
    parser.add_argument("--threads", type=int, help="CPU benchmarks: intra-op threads")
    return parser


def options_from(args: argparse.Namespace) -> RunOptions:
    """The inverse of ``RunOptions.argv``: the re-run measures exactly as the suite did."""
    return RunOptions(
        timing=QUICK if args.quick else TimingConfig(), cache_dir=args.cache_dir, device=args.device,
        calibration=args.calibration, dtype=args.dtype, cuda_graph=not args.no_cuda_graph,
        strict_power=args.strict_power, torch_compile=args.torch_compile, trt_layers=args.trt_layers,
        parent_pid=args.parent_pid, slowdown=args.slowdown, threads=args.threads,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        specs = load_manifest(args.manifest)
        unknown = [i for i in args.ids if i not in specs]
        if unknown:
            raise ManifestError(
                f"unknown benchmark {unknown[0]!r}: the manifest {args.manifest} lists {len(specs)}"
            )
        options = options_from(args)
        devices = {specs[i].device for i in args.ids}
        if len(devices) > 1:
            raise ManifestError("CPU and GPU benchmarks cannot share one results file: run them apart")
        backends = [specs[i].backend for i in args.ids if specs[i].backend] or ["torch"]
        if devices == {"cpu"}:
            env = cpu_environment(backends)
        else:
            reason = backend_class("torch").unavailable_reason()
            if reason:
                raise BackendUnavailable(reason)
            env = environment(args.device, backends)
        say = lambda message: print(message, file=sys.stderr)  # noqa: E731
        results = {i: run(specs[i], options, env, say) for i in args.ids}
        write_results(args.out, PerfResults(env, results))
    except (RooflineError, ManifestError, BackendUnavailable, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
