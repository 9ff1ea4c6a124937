"""The perf suite on a machine without a GPU: every GPU benchmark skips with a reason, unless a GPU
is required (``--backend``, ``--require-gpu``, or CI on a GPU runner): then the session ends in one
line with exit 2, never a silent green. The fresh-process re-run entry point refuses bad input in one
line without writing."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import gpu_unavailable_reason
from kernels import benchmark
from kernels.benchmark import RunOptions
from kernels.manifest import load_manifest
from kernels.timing import QUICK

pytestmark = pytest.mark.analytic
ROOT = Path(__file__).resolve().parents[2]

needs_no_gpu = pytest.mark.skipif(
    gpu_unavailable_reason() is None, reason="this machine has a GPU: the suite would run, not skip"
)


def _run(*args, cwd=ROOT, env=None):
    environ = {k: v for k, v in os.environ.items() if k not in ("CI", "ROOFLINE_GPU_RUNNER")}
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**environ, **(env or {})},
    )


PERF = ("-m", "pytest", "perf_tests", "-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider")


@needs_no_gpu
def test_gpu_benchmarks_skip_with_a_reason():
    done = _run(*PERF, "-k", "tensorrt or not model_throughput", env={"CI": "true"})  # CI, but no GPU label
    assert done.returncode == 0, done.stdout[-2000:]
    models = sum(1 for s in load_manifest().values() if s.backend in (None, "tensorrt"))
    summary = done.stdout.strip().splitlines()[-1]
    others = 3  # device database, staircase, latency table
    assert f"{models + others} skipped" in summary and "passed" not in summary and "failed" not in summary
    assert "no CUDA GPU visible" in done.stdout


@needs_no_gpu
@pytest.mark.parametrize(
    ("args", "env", "cause"),
    [
        (["--backend", "tensorrt"], {}, "GPU required (--backend tensorrt) but unusable: no CUDA GPU"),
        (["--require-gpu"], {}, "GPU required (--require-gpu) but unusable: no CUDA GPU visible"),
        ([], {"CI": "true", "ROOFLINE_GPU_RUNNER": "v100"},
         "GPU required (CI=true on a GPU runner (ROOFLINE_GPU_RUNNER=v100)) but unusable: no CUDA GPU"),
    ],
)  # fmt: skip
def test_no_silent_green_where_a_gpu_is_required(args, env, cause):
    done = _run(*PERF, "-k", "database", *args, env=env)
    assert done.returncode == 2, done.stdout[-2000:]
    lines = [line for line in done.stdout.splitlines() if "GPU required" in line]
    assert (
        len(lines) == 1 and cause in lines[0] and "passed" not in done.stdout and "skipped" not in done.stdout
    )


@needs_no_gpu
def test_a_required_gpu_does_not_stop_an_analytic_run():
    # What .ci/run does on a GPU runner's labels: no GPU test is selected, so nothing is required.
    done = _run("-m", "pytest", "unit_tests/test_schema.py", "-m", "analytic", "-q", "-p", "no:cacheprovider",
                "--require-gpu", env={"CI": "true", "ROOFLINE_GPU_RUNNER": "v100"})  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:]


def test_gpu_required_reasons():
    import types

    import conftest

    def config(**options):
        values = {"--perf-device": "cuda", "--require-gpu": False, "--backend": [], **options}
        return types.SimpleNamespace(getoption=values.__getitem__)

    assert conftest.gpu_required(config(), environ={}) is None
    assert conftest.gpu_required(config(), environ={"CI": "true"}) is None  # .ci/run: CI, no GPU label
    assert conftest.gpu_required(config(), environ={"ROOFLINE_GPU_RUNNER": "a100"}) is None  # not CI
    assert "ROOFLINE_GPU_RUNNER=a100" in conftest.gpu_required(
        config(), {"CI": "1", "ROOFLINE_GPU_RUNNER": "a100"}
    )
    assert conftest.gpu_required(config(**{"--require-gpu": True}), environ={}) == "--require-gpu"
    assert conftest.gpu_required(config(**{"--backend": ["torch"]}), environ={}) == "--backend torch"
    cpu = config(**{"--perf-device": "cpu", "--require-gpu": True})
    assert conftest.gpu_required(cpu, {"CI": "true", "ROOFLINE_GPU_RUNNER": "v100"}) is None  # CPU mode


@needs_no_gpu
def test_rerun_entry_point_without_a_gpu(tmp_path):
    out = tmp_path / "rerun.json"
    done = _run("-m", "kernels.benchmark", "resnet50-b1-torch", "--out", str(out))
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "no CUDA GPU visible" in done.stderr and not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nonesuch-b1-torch"], "unknown benchmark 'nonesuch-b1-torch'"),
        (["--manifest", "none.toml", "x"], "does not exist"),
    ],
)
def test_rerun_entry_point_bad_input(tmp_path, args, message):
    out = tmp_path / "rerun.json"
    done = _run("-m", "kernels.benchmark", *args, "--out", str(out))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and message in done.stderr
    assert not out.exists()


@pytest.mark.parametrize(("visible", "worker", "pinned"), [("3,5", 0, "3"), ("3,5", 1, "5"), ("3,5", 2, "3")])
def test_xdist_workers_take_one_visible_gpu_each(monkeypatch, visible, worker, pinned):
    import conftest

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    conftest._pin_worker_gpu(worker)
    assert conftest.os.environ["CUDA_VISIBLE_DEVICES"] == pinned


@needs_no_gpu
def test_xdist_auto_uses_one_worker_without_a_gpu():
    import conftest

    assert conftest.pytest_xdist_auto_num_workers(None) == 1


@pytest.mark.parametrize(
    "options",
    [
        RunOptions(),
        RunOptions(
            timing=QUICK,
            cache_dir=Path("/tmp/c"),
            device=1,
            calibration=Path("cal.json"),
            dtype="fp32",
            cuda_graph=False,
            strict_power=True,
            torch_compile=True,
            trt_layers=True,
            slowdown=2,
            threads=1,
        ),
    ],
)
def test_the_rerun_measures_as_the_suite_did(options):
    args = benchmark.parser().parse_args(["resnet50-b1-torch", "--out", "x.json", *options.argv()])
    assert benchmark.options_from(args) == dataclasses.replace(options, parent_pid=os.getpid())
