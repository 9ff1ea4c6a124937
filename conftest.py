"""Project-wide pytest configuration: markers, GPU detection, and the perf suite's options and gate.

``gpu``-marked tests (perf_tests/) skip with a reason when no NVIDIA GPU is
visible, so ``pytest`` passes on CPU-only CI; ``analytic`` tests never need
one. Markers are declared in pyproject.toml.

The perf suite (``nox -s perf``): each GPU test measures one manifest benchmark
through ``kernels.suite.Session``, which gates it against
``baselines/<gpu key>.json`` (a suspected regression is re-run in a fresh
process before the test fails), records it in pytest-benchmark's
``extra_info`` and in the results file, and prints a summary table at the end.
Under pytest-xdist (``pytest -n auto``) each worker takes one visible GPU, and
the controller merges the workers' results.

A benchmark whose test ran (it was selected: not deselected by ``-k`` or
``--backend``, and a GPU was there) and that is in a comparable baseline but
ends without a valid result (an INVALID measurement, or none at all: its
backend vanished, it failed before measuring) makes the session exit 1, even
when every test passed or skipped; the performance summary names each one with
the reason (``kernels.suite``, step 4).

No silent green. Where a GPU must be there, its absence is not a skip: when GPU
tests are selected and ``--require-gpu`` is given, or ``--backend`` names a
backend, or the environment says this is a GPU runner (``CI`` true and
``ROOFLINE_GPU_RUNNER`` set to the runner's GPU label, as the perf workflow
does), a missing or unusable GPU (no driver, a torch without kernels for the
GPU) or required backend ends the session before any test runs, with exit
status 2 and one line naming the cause (``pytest_collection_finish``).

CPU mode (``--perf-device cpu``): the model benchmarks of
``perf_tests/manifest-cpu.toml`` run on the CPU with host timers, through the
same session, gate, baseline update, results file and summary (which says it is
a CPU run); GPU-only tests skip. ``unit_tests/kernels/test_cpu_suite_end_to_end.py``
runs the whole flow this way in CI.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

import pytest

from kernels.backends.base import REGISTRY, cuda_unavailable_reason
from kernels.manifest import CPU_MANIFEST, DEFAULT_MANIFEST, ManifestError, load_manifest

ROOT = Path(__file__).resolve().parent
SESSION = pytest.StashKey()  # kernels.suite.Session of this process
SUMMARY = pytest.StashKey()  # the end-of-session table
SELECTED = pytest.StashKey()  # _Selection: the benchmarks whose test ran, from every worker's reports
BENCHMARK_PROPERTY = "perf_benchmark"  # user property the perf fixture puts on its test's reports
GPU_RUNNER_ENV = "ROOFLINE_GPU_RUNNER"  # the runner's GPU label (v100, a100, ...): a GPU must be there
EXIT_NO_GPU = 2  # pytest.exit status when a required GPU or backend is missing (as "cannot start")


gpu_unavailable_reason = functools.cache(cuda_unavailable_reason)


def pytest_addoption(parser):
    group = parser.getgroup("perf", "GPU performance regression suite (perf_tests/, nox -s perf)")
    group.addoption(
        "--update-baselines",
        action="store_true",
        help="measure each benchmark twice and rewrite baselines/<gpu>.json where the two agree",
    )
    group.addoption(
        "--backend",
        action="append",
        choices=sorted(REGISTRY),
        default=[],
        help="run only this backend and FAIL if it is unavailable (repeatable)",
    )
    group.addoption("--baseline-dir", type=Path, default=ROOT / "baselines", help="where baselines live")
    group.addoption("--perf-results", type=Path, default=Path("perf-results.json"), help="results file")
    group.addoption(
        "--manifest",
        type=Path,
        help="benchmark manifest (TOML; default perf_tests/manifest.toml, or manifest-cpu.toml)",
    )
    group.addoption("--calibration", type=Path, help="achievable peaks (python -m kernels.calibrate)")
    group.addoption("--perf-dtype", help="run every model at this dtype (e.g. fp32, to see the gate fire)")
    group.addoption("--no-cuda-graph", action="store_true", help="launch without CUDA graphs")
    group.addoption("--torch-compile", action="store_true", help="torch backend: use torch.compile")
    group.addoption("--trt-layers", action="store_true", help="TensorRT: layer times, inspector JSON")
    group.addoption("--strict-power", action="store_true", help="power capping also makes a run INVALID")
    group.addoption("--perf-quick", action="store_true", help="short warmup and windows (smoke runs only)")
    group.addoption("--no-confirm", action="store_true", help="skip the fresh-process confirmation re-run")
    group.addoption("--perf-cache", type=Path, default=ROOT / ".perf-cache", help="engine/timing caches")
    group.addoption(
        "--perf-device", choices=("cuda", "cpu"), default="cuda",
        help="cpu: the CPU benchmarks (perf_tests/manifest-cpu.toml), timed by CPU time; GPU-only tests skip",
    )  # fmt: skip
    group.addoption(
        "--require-gpu", action="store_true",
        help=f"a missing or unusable GPU fails the session, not skips (also: CI=true + {GPU_RUNNER_ENV})",
    )  # fmt: skip
    group.addoption(
        "--perf-slowdown", type=int, default=1, metavar="N",
        help="launch each inference N times, count it once: a forced slowdown at any batch",
    )  # fmt: skip
    group.addoption("--perf-threads", type=int, help="CPU mode: intra-op threads (default 1)")


class _Selection:
    """The ids of the benchmarks whose test ran, read off test reports: under xdist the controller
    receives every worker's reports (with their user properties), so it knows them all."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.nodeids: dict[str, str] = {}  # benchmark id -> the test that measured it

    def pytest_runtest_logreport(self, report) -> None:
        for name, value in report.user_properties:
            if name == BENCHMARK_PROPERTY:
                self.ids.add(value)
                self.nodeids[value] = getattr(report, "nodeid", value)


def pytest_configure(config):
    config.stash[SELECTED] = _Selection()
    config.pluginmanager.register(config.stash[SELECTED], "perf-selection")
    worker = getattr(config, "workerinput", None)
    if worker is not None:
        _pin_worker_gpu(int(worker["workerid"].removeprefix("gw")))
    else:  # a crashed earlier run may have left xdist workers' partial results behind
        for stale in _worker_parts(config):
            stale.unlink()


def _worker_parts(config) -> list[Path]:
    results = config.getoption("--perf-results")
    return sorted(results.parent.glob(f"{results.name}.gw*"))


def _pin_worker_gpu(index: int) -> None:
    """Give xdist worker ``index`` one GPU, before anything initializes CUDA in it."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        devices = [d for d in visible.split(",") if d.strip()]
    else:
        try:
            import torch

            devices = [str(i) for i in range(torch.cuda.device_count())]
        except ImportError:
            devices = []
    if devices:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices[index % len(devices)]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per visible GPU (none visible: one worker, whose tests skip)."""
    if cuda_unavailable_reason(check_arch=False):  # the controller measures nothing: no kernel check here
        return 1
    import torch

    return max(1, torch.cuda.device_count())


def _cpu_mode(config) -> bool:
    return config.getoption("--perf-device") == "cpu"


def _manifest(config) -> Path:
    """``--manifest``, else the CPU mode's or the GPU suite's default manifest."""
    chosen = config.getoption("--manifest")
    if chosen is not None:
        return chosen
    return CPU_MANIFEST if _cpu_mode(config) else DEFAULT_MANIFEST


def gpu_required(config, environ=os.environ) -> str | None:
    """Why this session must have a GPU (None when a missing one may skip): ``--require-gpu``,
    ``--backend``, or a GPU runner's environment (``CI`` true and ``ROOFLINE_GPU_RUNNER`` set)."""
    if _cpu_mode(config):
        return None
    if config.getoption("--require-gpu"):
        return "--require-gpu"
    if config.getoption("--backend"):
        return "--backend " + " ".join(config.getoption("--backend"))
    label = environ.get(GPU_RUNNER_ENV, "").strip()
    if label and environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        return f"CI={environ['CI']} on a GPU runner ({GPU_RUNNER_ENV}={label})"
    return None


def _is_cpu_benchmark(item) -> bool:
    spec = getattr(getattr(item, "callspec", None), "params", {}).get("bench_spec")
    return getattr(spec, "device", None) == "cpu"  # an empty parametrization holds a NOTSET marker


def pytest_collection_modifyitems(config, items):
    reason = None
    for item in items:
        if not item.get_closest_marker("gpu"):  # not `in item.keywords`: a parametrize id "gpu" is one too
            continue
        if _cpu_mode(config):
            if not _is_cpu_benchmark(item):
                item.add_marker(
                    pytest.mark.skip(reason="GPU-only test: skipped in the CPU mode (--perf-device cpu)")
                )
            continue
        reason = reason or gpu_unavailable_reason()
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


def _missing_gpu(config, why: str) -> str | None:
    """The one line that ends a session which must have a GPU (``why``) and lacks it, or None."""
    reason = gpu_unavailable_reason()
    if reason:
        return f"GPU required ({why}) but unusable: {reason}"
    from kernels.backends.base import backend_class

    for name in config.getoption("--backend"):
        reason = backend_class(name).unavailable_reason()
        if reason:
            return f"required backend {name} is unavailable: {reason}"
    return None


def pytest_collection_finish(session):
    """No silent green: a session that must have a GPU ends here, in one line, when it has none.

    Run after deselection (``-m``, ``-k``), so an analytic run on a GPU runner is never stopped, and
    before any test, so the check cannot live in a fixture that skipped tests never reach. An xdist
    worker must not exit (the controller would restart it, test after test): its GPU tests fail with
    the line instead, and the controller has usually stopped the session already (``pytest_sessionstart``).
    """
    config = session.config
    why = gpu_required(config)
    gpu_items = [item for item in session.items if item.get_closest_marker("gpu")]
    if why is None or not gpu_items:
        return
    message = _missing_gpu(config, why)
    if message is None:
        return
    if getattr(config, "workerinput", None) is None:
        pytest.exit(message, returncode=EXIT_NO_GPU)

    def fail() -> None:
        pytest.fail(message, pytrace=False)

    for item in gpu_items:
        item.own_markers = [m for m in item.own_markers if m.name != "skip"]
        item.runtest = fail


def pytest_sessionstart(session):
    """Under xdist the controller collects nothing, so it checks here, before any worker starts, when
    the session asks for GPU tests: ``--require-gpu`` or ``--backend``, or a GPU runner's environment
    with ``-m`` selecting ``gpu`` tests."""
    config = session.config
    if config.pluginmanager.getplugin("dsession") is None:
        return
    why = gpu_required(config)
    markexpr = getattr(config.option, "markexpr", "") or ""
    explicit = config.getoption("--require-gpu") or config.getoption("--backend")
    if why is None or "not gpu" in markexpr or not (explicit or "gpu" in markexpr):
        return
    message = _missing_gpu(config, why)
    if message:
        pytest.exit(message, returncode=EXIT_NO_GPU)


def pytest_generate_tests(metafunc):
    """Parametrize ``bench_spec`` by the manifest's benchmarks of the module's ``KINDS`` and the session's
    device (``--perf-device``)."""
    if "bench_spec" not in metafunc.fixturenames:
        return
    config = metafunc.config
    try:
        specs = load_manifest(_manifest(config))
    except ManifestError as exc:
        raise pytest.UsageError(str(exc)) from None
    required = set(config.getoption("--backend"))
    device = config.getoption("--perf-device")
    chosen = [
        s for s in specs.values()
        if s.kind in metafunc.module.KINDS and s.device == device
        and (s.backend is None or not required or s.backend in required)
    ]  # fmt: skip
    metafunc.parametrize("bench_spec", chosen, ids=[s.id for s in chosen])


def _say(config):
    terminal = config.pluginmanager.get_plugin("terminalreporter")

    def say(message: str) -> None:
        if terminal is not None:
            terminal.write_line(f"[perf] {message}")

    return say


@pytest.fixture(scope="session")
def perf_session(request):
    """The session's measurements, baseline and gate (one per xdist worker)."""
    from kernels.backends.base import CPU_BACKENDS
    from kernels.benchmark import RunOptions, cpu_environment, environment, gpu_of
    from kernels.suite import Session, baseline_name
    from kernels.timing import QUICK, TimingConfig
    from roofline.errors import RooflineError

    config = request.config
    worker = getattr(config, "workerinput", {}).get("workerid")
    results = config.getoption("--perf-results")
    try:
        options = RunOptions(
            timing=QUICK if config.getoption("--perf-quick") else TimingConfig(),
            cache_dir=config.getoption("--perf-cache"), calibration=config.getoption("--calibration"),
            dtype=config.getoption("--perf-dtype"), cuda_graph=not config.getoption("--no-cuda-graph"),
            strict_power=config.getoption("--strict-power"),
            torch_compile=config.getoption("--torch-compile"), trt_layers=config.getoption("--trt-layers"),
            slowdown=config.getoption("--perf-slowdown"),
            threads=config.getoption("--perf-threads"),
        )  # fmt: skip
        if _cpu_mode(config):
            env = cpu_environment(CPU_BACKENDS)
        else:
            env = environment(0, REGISTRY)
            gpu_of(env)  # a GPU missing from the database cannot be gated: one line now
        session = Session(
            environment=env, baseline_path=config.getoption("--baseline-dir") / baseline_name(env),
            results_path=results.with_name(f"{results.name}.{worker}") if worker else results,
            options=options, manifest=_manifest(config),
            update=config.getoption("--update-baselines"), confirm=not config.getoption("--no-confirm"),
            say=_say(config),
        )  # fmt: skip
    except (
        RooflineError,
        RuntimeError,
        ValueError,
    ) as exc:  # RuntimeError: telemetry found no GPU to describe
        pytest.exit(f"perf suite cannot start: {exc}", returncode=2)
    config.stash[SESSION] = session
    return session


@pytest.fixture
def perf(perf_session, benchmark, request):
    """``perf(spec)``: measure, record in extra_info, and gate one benchmark."""
    from kernels.backends.base import backend_class, cpu_unavailable_reason

    def check(spec):
        request.node.user_properties.append((BENCHMARK_PROPERTY, spec.id))  # selected: it must get a result
        if spec.backend is not None:
            if spec.device == "cpu":
                reason = cpu_unavailable_reason(spec.backend)
            else:
                reason = backend_class(spec.backend).unavailable_reason()
            if reason:
                if spec.backend in request.config.getoption("--backend"):
                    pytest.fail(f"required backend {spec.backend} is unavailable: {reason}", pytrace=False)
                pytest.skip(f"backend {spec.backend} unavailable: {reason}")
        entry = benchmark.pedantic(perf_session.measure, args=(spec,), rounds=1, iterations=1)
        benchmark.extra_info.update(entry.to_dict())
        verdict = perf_session.judge(entry)
        benchmark.extra_info["verdict"] = verdict.to_dict()
        if verdict.verdict == "regression" and not perf_session.update:
            pytest.fail(f"{spec.id}: regression confirmed: {verdict.reason}", pytrace=False)
        if verdict.verdict in ("invalid", "not_comparable"):
            pytest.skip(f"{verdict.verdict.upper()}: {verdict.reason}")
        if verdict.verdict == "improvement":
            warnings.warn(f"{spec.id}: {verdict.reason}", stacklevel=1)
        return entry

    return check


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if getattr(config, "workerinput", None) is not None:
        if SESSION in config.stash:
            config.stash[SESSION].finish(worker=True)
        return
    perf_session = config.stash.get(SESSION, None) or _controller_session(config)
    if perf_session is not None:
        config.stash[SUMMARY] = perf_session.finish(selected=config.stash[SELECTED].ids)
        if perf_session.incomplete and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # lost measurements must not pass CI
        note = _xdist_benchmark_json(config, perf_session)
        if note:
            config.stash[SUMMARY] += "\n" + note


def _xdist_benchmark_json(config, perf_session) -> str | None:
    """Under xdist, write ``--benchmark-json`` from the merged results, and say so (None otherwise).

    pytest-benchmark turns itself off under xdist ("Benchmarks are automatically disabled because xdist
    plugin is active") and writes no file. The controller holds every worker's entries, each with the
    fields the perf fixture puts in ``extra_info`` (the entry and its verdict), so it writes the file in
    pytest-benchmark's layout with those ``extra_info``; its timing ``stats`` are null, as pytest-benchmark
    timed nothing. Without xdist pytest-benchmark writes the file itself.
    """
    manager = getattr(config, "pluginmanager", None)
    path = getattr(getattr(config, "option", None), "benchmark_json", None)
    if manager is None or manager.getplugin("dsession") is None or not path:
        return None
    import datetime
    import json

    nodeids = config.stash[SELECTED].nodeids
    benchmarks = [
        {"group": None, "name": nodeids.get(key, key).rpartition("::")[2], "fullname": nodeids.get(key, key),
         "params": None, "param": None, "extra_info": entry.to_dict(), "options": None, "stats": None}
        for key, entry in sorted(perf_session.results.items())
    ]  # fmt: skip
    document = {
        "machine_info": {
            "node": perf_session.environment.get("host"), "perf_environment": perf_session.environment,
        },
        "commit_info": {}, "benchmarks": benchmarks,
        "datetime": datetime.datetime.now(datetime.UTC).isoformat(),
        "version": "written by conftest.py under xdist",
    }  # fmt: skip
    target = Path(path)
    from roofline.files import write_text

    write_text(target, json.dumps(document, indent=1, default=str) + "\n")
    return (
        f"pytest-benchmark is disabled under xdist (-n): {target} was written from the merged results "
        f"({len(benchmarks)} benchmarks, extra_info only, no timing stats)"
    )


def _controller_session(config):
    """Under xdist, a session made of the workers' partial results files (None when there are none)."""
    parts = _worker_parts(config)
    if not parts:
        return None
    from kernels.benchmark import RunOptions
    from kernels.suite import Session, baseline_name
    from roofline.perf.results import load_results

    env = dict(load_results(parts[0], "worker results").environment)
    session = Session(
        environment=env, baseline_path=config.getoption("--baseline-dir") / baseline_name(env),
        results_path=config.getoption("--perf-results"), options=RunOptions(),
        manifest=_manifest(config), update=config.getoption("--update-baselines"),
    )  # fmt: skip
    for part in parts:
        session.absorb(part)
    return session


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    summary = config.stash.get(SUMMARY, None)
    if summary:
        terminalreporter.section("performance summary")
        for line in summary.splitlines():
            terminalreporter.write_line(line)
