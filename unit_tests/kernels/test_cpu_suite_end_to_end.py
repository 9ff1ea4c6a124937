"""The whole GPU-suite flow, for real, on the CPU: the CI run that needs no GPU (README, "CPU mode").

Three pytest sessions of ``perf_tests`` in the CPU mode (``--perf-device cpu``: resnet18 at 64x64,
batch 8, the torch backend, host timers) run in fresh processes, as on a GPU runner:

1. ``--update-baselines``: each benchmark measured twice, the baseline written;
2. an A/A run against that baseline: nothing may fail;
3. a forced 2x slowdown (``--perf-slowdown 2``: every inference launched twice, counted once): the
   gate must report a regression, confirmed by its fresh-process re-run, and the session must fail.

Each writes the results file, its summary and pytest-benchmark's JSON; the summaries are printed so
the CI log keeps the evidence. The CPU's noise is handled by the gate's own rules and the CPU
manifest's generous 25% floor (perf_tests/manifest-cpu.toml); every figure says it is a CPU run.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.analytic
ROOT = Path(__file__).resolve().parents[2]
BID = "resnet18-b8-torch-cpu"


def _suite(tmp: Path, name: str, *extra: str) -> tuple[subprocess.CompletedProcess, Path]:
    results = tmp / f"{name}.json"
    env = {k: v for k, v in os.environ.items() if k not in ("ROOFLINE_GPU_RUNNER", "CUDA_VISIBLE_DEVICES")}
    env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU run must not touch a GPU even where there is one
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-q", "-rs",
           "-m", "gpu", "perf_tests", "--perf-device", "cpu", "--baseline-dir", str(tmp / "baselines"),
           "--perf-results", str(results), "--perf-cache", str(tmp / "cache"),
           f"--benchmark-json={tmp / f'bench-{name}.json'}", *extra]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    return done, results


def _summary(results: Path) -> str:
    return results.with_name(f"{results.stem}-summary.txt").read_text()


def _entry(results: Path) -> dict:
    return json.loads(results.read_text())["benchmarks"][BID]


@pytest.fixture(scope="module")
def cpu_suite(tmp_path_factory):
    pytest.importorskip("timm")
    tmp = tmp_path_factory.mktemp("cpu-suite")
    (tmp / "baselines").mkdir()
    runs = {
        "update": _suite(tmp, "update", "--update-baselines"),
        "aa": _suite(tmp, "aa"),
        "slow": _suite(tmp, "slow", "--perf-slowdown", "2"),
    }
    return tmp, runs


def _show(title: str, done: subprocess.CompletedProcess, results: Path, capsys) -> None:
    with capsys.disabled():
        print(f"\n--- CPU suite, {title}: pytest exit {done.returncode} ---")
        print(
            _summary(results)
            if results.with_name(f"{results.stem}-summary.txt").exists()
            else done.stdout[-3000:]
        )


def test_update_writes_a_cpu_baseline(cpu_suite, capsys):
    tmp, runs = cpu_suite
    done, results = runs["update"]
    _show("--update-baselines", done, results, capsys)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    (baseline,) = (tmp / "baselines").glob("cpu-*.json")  # named for the CPU, never for a GPU
    written = json.loads(baseline.read_text())
    assert written["environment"]["device"] == "cpu" and written["environment"]["gpu_name"] is None
    entry = written["benchmarks"][BID]
    assert entry["device"] == "cpu" and entry["timer"] == "process CPU time" and entry["utilization"] is None
    assert "verdict" not in entry and "update_refused" not in entry and len(entry["samples"]) >= 6
    summary = _summary(results)
    assert summary.startswith("CPU RUN") and "wrote 1 benchmarks" in summary
    assert f"baseline entry {BID}: the two runs differ by" in summary


def test_a_second_run_against_the_baseline_does_not_fail(cpu_suite, capsys):
    _, runs = cpu_suite
    done, results = runs["aa"]
    _show("A/A", done, results, capsys)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert _entry(results)["verdict"]["verdict"] in ("ok", "improvement")  # improvement only warns


def test_a_forced_slowdown_is_reported_as_a_confirmed_regression(cpu_suite, capsys):
    _, runs = cpu_suite
    done, results = runs["slow"]
    _show("--perf-slowdown 2", done, results, capsys)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
    entry = _entry(results)
    assert entry["forced_slowdown"] == 2 and entry["device"] == "cpu"
    verdict = entry["verdict"]
    assert verdict["verdict"] == "regression" and "confirmed by a re-run" in verdict["reason"]
    assert verdict["change"] < -0.25  # beyond the CPU manifest's floor
    assert f"{BID}: regression confirmed" in done.stdout


def test_results_and_benchmark_json_are_written_and_say_cpu(cpu_suite):
    tmp, runs = cpu_suite
    for name, (_, results) in runs.items():
        data = json.loads(results.read_text())
        assert data["environment"]["device"] == "cpu", name
        bench = json.loads((tmp / f"bench-{name}.json").read_text())["benchmarks"]
        (only,) = [b for b in bench if b["name"].endswith(f"[{BID}]")]
        info = only["extra_info"]
        assert info["device"] == "cpu" and info["samples"] and "verdict" in info, name
        assert info["utilization"] is None and "prediction" not in info and "telemetry" not in info, name
