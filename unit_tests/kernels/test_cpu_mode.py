"""The suite's CPU mode and forced slowdown, in their GPU-free parts: manifest devices and ids, the CPU
fingerprint (never comparable with a GPU's), baseline names, ``--perf-slowdown``, and the
``--benchmark-json`` the controller writes under xdist."""

import json
import types

import pytest

from kernels import benchmark
from kernels.benchmark import RunOptions, cpu_environment
from kernels.manifest import CPU_MANIFEST, ManifestError, load_manifest
from kernels.suite import CPU_RUN_NOTE, Session, baseline_name
from roofline.perf.results import (
    COMPARED_FIELDS,
    Benchmark,
    PerfResults,
    incomparable,
    load_results,
    write_results,
)

pytestmark = pytest.mark.analytic


def _manifest(tmp_path, body):
    path = tmp_path / "m.toml"
    path.write_text(body)
    return path


def test_cpu_benchmarks_have_their_own_ids(tmp_path):
    specs = load_manifest(CPU_MANIFEST)
    assert list(specs) == ["resnet18-b8-torch-cpu"]
    spec = specs["resnet18-b8-torch-cpu"]
    assert (spec.device, spec.backend, spec.resolution, spec.batch, spec.dtype) == (
        "cpu",
        "torch",
        64,
        8,
        "fp32",
    )
    model = '[[model]]\nname = "resnet18"\nbatches = [1]\nbackends = ["torch"]\n'
    both = _manifest(tmp_path, model + model + 'device = "cpu"\n')
    assert {s.id: s.device for s in load_manifest(both).values()} == {
        "resnet18-b1-torch": "cuda",
        "resnet18-b1-torch-cpu": "cpu",
    }
    assert all(s.device == "cuda" for s in load_manifest().values())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            'device = "cpu"\nbackends = ["tensorrt"]',
            "backend 'tensorrt' runs on a GPU only; a cpu model takes torch",
        ),
        ('device = "tpu"', "unknown device 'tpu'; choose cuda or cpu"),
    ],
)
def test_bad_devices_are_one_line(tmp_path, body, message):
    path = _manifest(tmp_path, f'[[model]]\nname = "resnet18"\nbatches = [8]\n{body}\n')
    with pytest.raises(ManifestError, match=message):
        load_manifest(path)


def test_cpu_fingerprint_never_compares_with_a_gpu_one():
    env = cpu_environment(["torch"])
    assert env["device"] == "cpu" and env["cpu_count"] >= 1 and env["cpu_model"]
    assert all(env[f] is None for f in COMPARED_FIELDS) and env["gpu_key"] is None
    gpu_env = {**dict.fromkeys(COMPARED_FIELDS, "x"), "backends": {}}
    cpu, gpu = PerfResults(env, {}), PerfResults(gpu_env, {})
    assert incomparable(cpu, gpu)[0] == "device: baseline 'cpu', results 'cuda'"
    assert incomparable(cpu, PerfResults({**env, "cpu_count": 64}, {})) == [
        f"cpu_count: baseline {env['cpu_count']!r}, results 64"
    ]
    assert incomparable(cpu, PerfResults(dict(env), {})) == []


def test_baseline_names():
    assert baseline_name({"gpu_key": "h100-sxm"}) == "h100-sxm.json"
    name = baseline_name({"device": "cpu", "cpu_model": "AMD EPYC 7B13 64-Core Processor"})
    assert name == "cpu-amd-epyc-7b13-64-core-processor.json"


def test_forced_slowdown_launches_n_times_and_reruns_with_it():
    calls = []

    def launch():
        calls.append(1)

    assert RunOptions().launcher(launch) is launch
    RunOptions(slowdown=3).launcher(launch)()
    assert calls == [1, 1, 1]
    args = benchmark.parser().parse_args(["x", "--out", "o.json", *RunOptions(slowdown=2, threads=1).argv()])
    assert (args.slowdown, args.threads) == (2, 1)
    for bad in ({"slowdown": 0}, {"slowdown": 1.5}, {"threads": 0}):
        with pytest.raises(ValueError, match="whole number"):
            RunOptions(**bad)


def test_a_cpu_session_says_so_in_its_summary(tmp_path):
    env = cpu_environment(["torch"])
    session = Session(
        environment=env, baseline_path=tmp_path / baseline_name(env), results_path=tmp_path / "r.json",
        options=RunOptions(), manifest=CPU_MANIFEST, confirm=False,
    )  # fmt: skip
    entry = Benchmark.from_samples("resnet18-b8-torch-cpu", [80.0 + i for i in range(8)], "img/s",
                                   extra={"backend": "torch", "device": "cpu"})  # fmt: skip
    session.results[entry.id] = entry
    session.judge(entry)
    assert session.finish().startswith(CPU_RUN_NOTE)
    assert load_results(tmp_path / "r.json").environment["device"] == "cpu"


def test_under_xdist_the_controller_writes_the_benchmark_json(tmp_path):
    import conftest

    entry = Benchmark.from_samples(
        "resnet18-b8-torch-cpu", [80.0, 81.0, 82.0], "img/s", extra={"verdict": {"v": 1}}
    )
    perf_session = types.SimpleNamespace(
        results={entry.id: entry}, environment={"host": "h", "device": "cpu"}
    )
    selection = conftest._Selection()
    nodeid = "perf_tests/test_models.py::test_model_throughput[resnet18-b8-torch-cpu]"
    selection.pytest_runtest_logreport(types.SimpleNamespace(nodeid=nodeid, user_properties=[
        ("perf_benchmark", entry.id)]))  # fmt: skip

    def config(distributed, path):
        manager = types.SimpleNamespace(getplugin=lambda name: object() if distributed else None)
        return types.SimpleNamespace(
            pluginmanager=manager, option=types.SimpleNamespace(benchmark_json=path),
            stash={conftest.SELECTED: selection},
        )  # fmt: skip

    target = tmp_path / "bench.json"
    assert (
        conftest._xdist_benchmark_json(config(False, target), perf_session) is None
    )  # pytest-benchmark writes it
    assert conftest._xdist_benchmark_json(config(True, None), perf_session) is None  # nobody asked for one
    note = conftest._xdist_benchmark_json(config(True, target), perf_session)
    assert "disabled under xdist" in note and str(target) in note
    (written,) = json.loads(target.read_text())["benchmarks"]
    assert written["fullname"] == nodeid and written["name"] == nodeid.rpartition("::")[2]
    assert written["extra_info"] == json.loads(json.dumps(entry.to_dict())) and written["stats"] is None


def test_results_of_a_cpu_run_round_trip(tmp_path):
    env = cpu_environment(["torch"])
    entry = Benchmark.from_samples("resnet18-b8-torch-cpu", [80.0, 81.0], "img/s", flops_per_image=3.6e8,
                                   extra={"device": "cpu", "timer": "process CPU time"})  # fmt: skip
    write_results(tmp_path / "r.json", PerfResults(env, {entry.id: entry}))
    back = load_results(tmp_path / "r.json")
    assert back.environment["device"] == "cpu" and back.benchmarks[entry.id].utilization is None
