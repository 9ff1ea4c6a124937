"""Run one benchmark of the manifest and turn it into a results entry (``roofline.perf.results``).

Used by the pytest suite (``perf_tests/``) and, for the gate's confirmation
re-run in a fresh process, from the command line::

    python -m kernels.benchmark resnet50-b64-torch [more ids] --out rerun.json

A model entry records images/s per window, TFLOP/s, utilization against the
datasheet peak and against the achievable one (the calibration file's, when
given), the analytic prediction and its error, host walltime, the enqueue flag
and the telemetry. The run is INVALID (``invalid_reason``) when its windows did
not stabilize or the telemetry saw throttling or a foreign process.
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
from kernels.backends.base import BackendUnavailable, ModelSpec, backend_class, require
from kernels.manifest import DEFAULT_MANIFEST, BenchSpec, ManifestError, load_manifest
from kernels.provenance import provenance
from kernels.timing import QUICK, Measurement, TimingConfig
from roofline.analysis.target import Target
from roofline.errors import RooflineError
from roofline.hardware.calibration import load_calibration
from roofline.hardware.gpus import GPU, get_gpu
from roofline.perf.results import Benchmark, PerfResults, write_results

DEFAULT_CACHE = Path(".perf-cache")


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
        return [*args, "--parent-pid", str(os.getpid())]

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
            m = measure(backend.launch, backend.stream, spec.batch, options.timing, say)
        description = backend.describe()
        # Profiled outside the timed windows: IProfiler runs a second, synchronous, non-graph context.
        layer_times_s = backend.layer_times() if profile_layers else None
    finally:
        backend.close()
    telem = sampler.telemetry()
    calibration = load_calibration(options.calibration, gpu) if options.calibration else None
    target = Target(gpu, spec.dtype, calibration=calibration)
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
        "enqueue_bound": m.enqueue_bound, "timing": m.to_dict(), "telemetry": telem.to_dict(),
        "invalid_reason": _invalid(m, telem),
    }  # fmt: skip
    if layer_times_s is not None:
        extra["layer_times_s"] = layer_times_s
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
    """Measure ``spec`` on this machine's device ``options.device`` (described by ``env``)."""
    if options.dtype and spec.kind == "model":
        spec = replace(spec, dtype=options.dtype)
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
    return parser


def options_from(args: argparse.Namespace) -> RunOptions:
    """The inverse of ``RunOptions.argv``: the re-run measures exactly as the suite did."""
    return RunOptions(
        timing=QUICK if args.quick else TimingConfig(), cache_dir=args.cache_dir, device=args.device,
        calibration=args.calibration, dtype=args.dtype, cuda_graph=not args.no_cuda_graph,
        strict_power=args.strict_power, torch_compile=args.torch_compile, trt_layers=args.trt_layers,
        parent_pid=args.parent_pid,
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
        reason = backend_class("torch").unavailable_reason()
        if reason:
            raise BackendUnavailable(reason)
        env = environment(args.device, [specs[i].backend for i in args.ids if specs[i].backend] or ["torch"])
        say = lambda message: print(message, file=sys.stderr)  # noqa: E731
        results = {i: run(specs[i], options, env, say) for i in args.ids}
        write_results(args.out, PerfResults(env, results))
    except (RooflineError, ManifestError, BackendUnavailable, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
