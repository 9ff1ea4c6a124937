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
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

import pytest

from kernels.backends.base import REGISTRY, cuda_unavailable_reason
from kernels.manifest import DEFAULT_MANIFEST, ManifestError, load_manifest

ROOT = Path(__file__).resolve().parent
SESSION = pytest.StashKey()  # kernels.suite.Session of this process
SUMMARY = pytest.StashKey()  # the end-of-session table
SELECTED = pytest.StashKey()  # _Selection: the benchmarks whose test ran, from every worker's reports
BENCHMARK_PROPERTY = "perf_benchmark"  # user property the perf fixture puts on its test's reports


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
    group.addoption("--manifest", type=Path, default=DEFAULT_MANIFEST, help="benchmark manifest (TOML)")
    group.addoption("--calibration", type=Path, help="achievable peaks (python -m kernels.calibrate)")
    group.addoption("--perf-dtype", help="run every model at this dtype (e.g. fp32, to see the gate fire)")
    group.addoption("--no-cuda-graph", action="store_true", help="launch without CUDA graphs")
    group.addoption("--torch-compile", action="store_true", help="torch backend: use torch.compile")
    group.addoption("--trt-layers", action="store_true", help="TensorRT: layer times, inspector JSON")
    group.addoption("--strict-power", action="store_true", help="power capping also makes a run INVALID")
    group.addoption("--perf-quick", action="store_true", help="short warmup and windows (smoke runs only)")
    group.addoption("--no-confirm", action="store_true", help="skip the fresh-process confirmation re-run")
    group.addoption("--perf-cache", type=Path, default=ROOT / ".perf-cache", help="engine/timing caches")


class _Selection:
    """The ids of the benchmarks whose test ran, read off test reports: under xdist the controller
    receives every worker's reports (with their user properties), so it knows them all."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    def pytest_runtest_logreport(self, report) -> None:
        self.ids.update(value for name, value in report.user_properties if name == BENCHMARK_PROPERTY)


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
    if gpu_unavailable_reason():
        return 1
    import torch

    return max(1, torch.cuda.device_count())


def pytest_collection_modifyitems(config, items):
    reason = None
    for item in items:
        if item.get_closest_marker("gpu"):  # not `in item.keywords`: a parametrize id "gpu" is a keyword too
            reason = reason or gpu_unavailable_reason()
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def pytest_generate_tests(metafunc):
    """Parametrize ``bench_spec`` by the manifest's benchmarks of the module's ``KINDS``."""
    if "bench_spec" not in metafunc.fixturenames:
        return
    config = metafunc.config
    try:
        specs = load_manifest(config.getoption("--manifest"))
    except ManifestError as exc:
        raise pytest.UsageError(str(exc)) from None
    required = set(config.getoption("--backend"))
    chosen = [
        s for s in specs.values()
        if s.kind in metafunc.module.KINDS and (s.backend is None or not required or s.backend in required)
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
    from kernels.benchmark import RunOptions, environment, gpu_of
    from kernels.suite import Session
    from kernels.timing import QUICK, TimingConfig
    from roofline.errors import RooflineError

    config = request.config
    worker = getattr(config, "workerinput", {}).get("workerid")
    results = config.getoption("--perf-results")
    options = RunOptions(
        timing=QUICK if config.getoption("--perf-quick") else TimingConfig(),
        cache_dir=config.getoption("--perf-cache"), calibration=config.getoption("--calibration"),
        dtype=config.getoption("--perf-dtype"), cuda_graph=not config.getoption("--no-cuda-graph"),
        strict_power=config.getoption("--strict-power"), torch_compile=config.getoption("--torch-compile"),
        trt_layers=config.getoption("--trt-layers"),
    )  # fmt: skip
    try:
        env = environment(0, REGISTRY)
        session = Session(
            environment=env, baseline_path=config.getoption("--baseline-dir") / f"{gpu_of(env).key}.json",
            results_path=results.with_name(f"{results.name}.{worker}") if worker else results,
            options=options, manifest=config.getoption("--manifest"),
            update=config.getoption("--update-baselines"), confirm=not config.getoption("--no-confirm"),
            say=_say(config),
        )  # fmt: skip
    except (RooflineError, RuntimeError) as exc:  # RuntimeError: telemetry found no GPU to describe
        pytest.exit(f"perf suite cannot start: {exc}", returncode=2)
    config.stash[SESSION] = session
    return session


@pytest.fixture
def perf(perf_session, benchmark, request):
    """``perf(spec)``: measure, record in extra_info, and gate one benchmark."""
    from kernels.backends.base import backend_class

    def check(spec):
        request.node.user_properties.append((BENCHMARK_PROPERTY, spec.id))  # selected: it must get a result
        if spec.backend is not None:
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


def _controller_session(config):
    """Under xdist, a session made of the workers' partial results files (None when there are none)."""
    parts = _worker_parts(config)
    if not parts:
        return None
    from kernels.benchmark import RunOptions
    from kernels.suite import Session
    from roofline.perf.results import load_results

    env = dict(load_results(parts[0], "worker results").environment)
    session = Session(
        environment=env, baseline_path=config.getoption("--baseline-dir") / f"{env['gpu_key']}.json",
        results_path=config.getoption("--perf-results"), options=RunOptions(),
        manifest=config.getoption("--manifest"), update=config.getoption("--update-baselines"),
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
