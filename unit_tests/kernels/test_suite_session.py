"""The suite session's decision flow: gate against the baseline, summary, the update flow, xdist merge.

``kernels.suite.run`` (the GPU measurement) is replaced by synthetic results
built from seeded noisy samples: these tests check what the session does with
measurements, not the measurements themselves, which need a GPU.
"""

import json

import numpy as np
import pytest

from kernels import suite
from kernels.benchmark import RunOptions
from kernels.manifest import load_manifest
from roofline.errors import RooflineError
from roofline.perf.results import COMPARED_FIELDS, Benchmark, PerfResults, load_results, write_results

pytestmark = pytest.mark.analytic
SPECS = load_manifest()
ENV = {
    **{name: f"same-{name}" for name in COMPARED_FIELDS},
    "gpu_key": "h100-sxm",
    "backends": {"torch": "2.15.0", "tensorrt": None, "onnxruntime": None},
}


def entry(id, median, seed=0, invalid=None, n=10):
    rng = np.random.default_rng(seed)
    samples = median * (1 + 0.005 * rng.standard_normal(n))
    extra = {"backend": "torch", "invalid_reason": invalid}
    return Benchmark.from_samples(id, samples, "img/s", flops_per_image=8e9, peak_flops=1e15, extra=extra)


@pytest.fixture
def measured(monkeypatch):
    """Queue of synthetic measurements that ``suite.run`` hands out in order."""
    queue = []
    monkeypatch.setattr(suite, "run", lambda spec, options, env, say: queue.pop(0))
    return queue


def session(tmp_path, update=False, env=ENV):
    return suite.Session(
        environment=dict(env), baseline_path=tmp_path / "h100-sxm.json",
        results_path=tmp_path / "results.json", options=RunOptions(), manifest=tmp_path / "unused.toml",
        update=update, confirm=False,
    )  # fmt: skip


BID = "resnet50-b64-torch"


def test_no_baseline_is_not_comparable_and_says_how_to_record_one(tmp_path, measured):
    s = session(tmp_path)
    measured.append(entry(BID, 5000))
    verdict = s.judge(s.measure(SPECS[BID]))
    assert verdict.verdict == "not_comparable" and "--update-baselines" in verdict.reason
    text = s.finish()
    assert "not_comparable" in text and (tmp_path / "results.json").exists()
    assert (tmp_path / "results-summary.txt").read_text().strip() == text
    recorded = load_results(tmp_path / "results.json").benchmarks[BID].extra
    assert recorded["verdict"]["verdict"] == "not_comparable"


def test_update_writes_only_benchmarks_whose_two_runs_agree(tmp_path, measured):
    s = session(tmp_path, update=True)
    other = "resnet50-b1-torch"
    measured += [entry(BID, 5000, 1), entry(BID, 5010, 2), entry(other, 900, 3), entry(other, 800, 4)]
    s.measure(SPECS[BID])
    s.measure(SPECS[other])
    notes = s.finish()
    baseline = load_results(tmp_path / "h100-sxm.json")
    assert set(baseline.benchmarks) == {BID}
    assert not {"verdict", "update_refused"} & set(baseline.benchmarks[BID].extra)
    assert f"baseline NOT updated for {other}" in notes and "wrote 1 benchmarks" in notes


def test_invalid_runs_never_become_baselines(tmp_path, measured):
    s = session(tmp_path, update=True)
    measured += [entry(BID, 5000, 1, invalid="thermal throttling"), entry(BID, 5000, 2)]
    s.measure(SPECS[BID])
    assert "thermal throttling" in s.finish()
    assert not (tmp_path / "h100-sxm.json").exists()


def test_gate_against_a_baseline(tmp_path, measured):
    write_results(tmp_path / "h100-sxm.json", PerfResults(ENV, {BID: entry(BID, 5000, 1)}))
    s = session(tmp_path)
    measured += [entry(BID, 5005, 2), entry(BID, 4500, 3)]
    assert s.judge(s.measure(SPECS[BID])).verdict == "ok"
    assert s.judge(s.measure(SPECS[BID])).verdict == "regression"


def test_an_update_keeps_other_entries_of_a_comparable_baseline_only(tmp_path, measured):
    other = "resnet50-b1-torch"
    write_results(tmp_path / "h100-sxm.json", PerfResults(ENV, {other: entry(other, 900, 1)}))
    s = session(tmp_path, update=True)
    measured += [entry(BID, 5000, 1), entry(BID, 5001, 2)]
    s.measure(SPECS[BID])
    s.finish()
    assert set(load_results(tmp_path / "h100-sxm.json").benchmarks) == {BID, other}

    new_driver = {**ENV, "driver_version": "999.1"}
    s = session(tmp_path, update=True, env=new_driver)
    verdict = s._single_run(entry(BID, 5000))
    assert verdict.verdict == "not_comparable" and "driver_version" in verdict.reason
    measured += [entry(BID, 5000, 3), entry(BID, 5001, 4)]
    s.measure(SPECS[BID])
    s.finish()
    rewritten = load_results(tmp_path / "h100-sxm.json")
    assert set(rewritten.benchmarks) == {BID} and rewritten.environment["driver_version"] == "999.1"


def test_xdist_controller_merges_worker_files(tmp_path, measured):
    workers = []
    for i, (bid, median) in enumerate([(BID, 5000), ("resnet50-b1-torch", 900)]):
        w = suite.Session(
            environment=dict(ENV), baseline_path=tmp_path / "h100-sxm.json",
            results_path=tmp_path / f"results.json.gw{i}", options=RunOptions(), manifest=tmp_path / "m.toml",
        )  # fmt: skip
        measured.append(entry(bid, median, i))
        w.judge(w.measure(SPECS[bid]))
        assert w.finish(worker=True) == ""
        workers.append(w.results_path)
    controller = session(tmp_path)
    for path in workers:
        controller.absorb(path)
    text = controller.finish()
    assert not any(p.exists() for p in workers)
    merged = json.loads((tmp_path / "results.json").read_text())
    assert set(merged["benchmarks"]) == {BID, "resnet50-b1-torch"} and text.count("not_comparable") == 2


def test_a_corrupt_baseline_stops_the_session_in_one_line(tmp_path):
    (tmp_path / "h100-sxm.json").write_text('{"format": "roofline-perf-results", "version": 1}')
    with pytest.raises(RooflineError, match="corrupt") as info:
        session(tmp_path)
    assert "\n" not in str(info.value)


def test_failed_confirmation_rerun_is_one_line(tmp_path):
    s = session(tmp_path)
    with pytest.raises(RooflineError, match="confirmation re-run of nonesuch failed"):
        s._rerun("nonesuch")


def test_while_updating_a_drop_is_reported_not_rerun(tmp_path, measured):
    write_results(tmp_path / "h100-sxm.json", PerfResults(ENV, {BID: entry(BID, 5000, 1)}))
    s = session(tmp_path, update=True)
    s.confirm = True  # would re-run in a fresh process (and fail here, without a GPU) if not updating
    measured += [entry(BID, 4000, 2), entry(BID, 4001, 3)]
    assert s.judge(s.measure(SPECS[BID])).verdict == "regression"
    s.finish()
    assert load_results(tmp_path / "h100-sxm.json").benchmarks[BID].median == pytest.approx(4001, rel=0.02)


# --- A selected benchmark without a valid result fails the session; a deselected one does not ---------


OTHER = "resnet50-b1-torch"


def with_baseline(tmp_path, *ids):
    write_results(tmp_path / "h100-sxm.json", PerfResults(ENV, {i: entry(i, 5000, 1) for i in ids}))


def test_an_invalid_measurement_makes_the_session_incomplete(tmp_path, measured):
    with_baseline(tmp_path, BID)
    s = session(tmp_path)
    measured.append(entry(BID, 5000, 2, invalid="thermal slowdown"))
    assert s.judge(s.measure(SPECS[BID])).verdict == "invalid"
    text = s.finish()
    assert s.incomplete == [f"{BID}: invalid: invalid run: thermal slowdown"]
    assert f"INCOMPLETE: {BID}: invalid: invalid run: thermal slowdown" in text
    assert "the session fails" in text and (tmp_path / "results-summary.txt").read_text().strip() == text


def test_a_selected_baseline_benchmark_without_a_result_makes_the_session_incomplete(tmp_path, measured):
    with_baseline(tmp_path, BID, OTHER)
    s = session(tmp_path)
    measured.append(entry(BID, 5005, 2))
    assert s.judge(s.measure(SPECS[BID])).verdict == "ok"
    # OTHER's test ran (selected) but recorded nothing: its backend vanished, or it failed before measuring.
    text = s.finish(selected={BID, OTHER})
    assert [line.split(": ")[:2] for line in s.incomplete] == [[OTHER, "missing"]]
    assert "h100-sxm.json" in s.incomplete[0] and "no result was recorded" in s.incomplete[0]
    row = next(line for line in text.splitlines() if line.startswith(OTHER)).split()
    assert row[2:5] == ["-", "-", "missing"]
    assert load_results(tmp_path / "results.json").benchmarks.keys() == {BID}


def test_nothing_measured_but_selected_is_incomplete_too(tmp_path):
    with_baseline(tmp_path, BID)
    s = session(tmp_path)
    text = s.finish(selected={BID})
    assert [line.split(": ")[:2] for line in s.incomplete] == [[BID, "missing"]] and "INCOMPLETE" in text
    assert session(tmp_path).finish() == "no benchmarks ran"


def test_deselected_baseline_benchmarks_and_missing_baselines_do_not_fail(tmp_path, measured):
    with_baseline(tmp_path, BID, OTHER)
    s = session(tmp_path)  # OTHER deselected (-k, --backend): never selected, never measured
    measured.append(entry(BID, 5005, 2))
    s.judge(s.measure(SPECS[BID]))
    assert "INCOMPLETE" not in s.finish(selected={BID}) and s.incomplete == []
    # No baseline entry, or another environment: not comparable, which is its own state, not a failure.
    (tmp_path / "h100-sxm.json").unlink()
    s = session(tmp_path)
    measured.append(entry(BID, 5005, 2, invalid="unstable"))
    assert s.judge(s.measure(SPECS[BID])).verdict == "not_comparable"
    s.finish()
    assert s.incomplete == []
    with_baseline(tmp_path, BID)
    s = session(tmp_path, env={**ENV, "driver_version": "999.1"})
    measured.append(entry(BID, 5005, 2))
    s.judge(s.measure(SPECS[BID]))
    s.finish(selected={BID, OTHER})
    assert s.incomplete == []


def test_an_update_session_reports_refusals_and_does_not_fail(tmp_path, measured):
    with_baseline(tmp_path, BID, OTHER)
    s = session(tmp_path, update=True)
    measured += [entry(BID, 5000, 1, invalid="thermal slowdown"), entry(BID, 5000, 2)]
    s.judge(s.measure(SPECS[BID]))
    text = s.finish(selected={BID, OTHER})
    assert s.incomplete == [] and f"baseline NOT updated for {BID}" in text


def test_xdist_workers_without_results_still_report_to_the_controller(tmp_path, measured):
    with_baseline(tmp_path, BID, OTHER)
    worker = suite.Session(
        environment=dict(ENV), baseline_path=tmp_path / "h100-sxm.json",
        results_path=tmp_path / "results.json.gw0", options=RunOptions(), manifest=tmp_path / "m.toml",
    )  # fmt: skip
    assert worker.finish(worker=True) == ""  # its only benchmark skipped: nothing measured
    controller = session(tmp_path)
    controller.absorb(worker.results_path)
    controller.finish(selected={OTHER})
    assert [line.split(": ")[:2] for line in controller.incomplete] == [[OTHER, "missing"]]


def test_pytest_session_exits_1_when_the_perf_session_is_incomplete(tmp_path, measured):
    import types

    import conftest

    with_baseline(tmp_path, BID, OTHER)
    selection = conftest._Selection()
    # What the perf fixture records on each selected test; xdist delivers the pairs as lists.
    selection.pytest_runtest_logreport(types.SimpleNamespace(user_properties=[("perf_benchmark", BID)]))
    selection.pytest_runtest_logreport(types.SimpleNamespace(user_properties=[["perf_benchmark", OTHER]]))
    selection.pytest_runtest_logreport(types.SimpleNamespace(user_properties=[("other", "x")]))
    assert selection.ids == {BID, OTHER}

    def finish(s):
        config = types.SimpleNamespace(stash={conftest.SESSION: s, conftest.SELECTED: selection})
        pytest_session = types.SimpleNamespace(config=config, exitstatus=pytest.ExitCode.OK)
        conftest.pytest_sessionfinish(pytest_session, pytest.ExitCode.OK)
        return pytest_session.exitstatus, config.stash[conftest.SUMMARY]

    s = session(tmp_path)
    measured += [entry(BID, 5005, 2), entry(OTHER, 5005, 3)]
    s.judge(s.measure(SPECS[BID]))
    s.judge(s.measure(SPECS[OTHER]))
    assert finish(s)[0] == pytest.ExitCode.OK
    s = session(tmp_path)
    measured.append(entry(BID, 5005, 2))
    s.judge(s.measure(SPECS[BID]))
    code, summary = finish(s)
    assert code == pytest.ExitCode.TESTS_FAILED and f"INCOMPLETE: {OTHER}: missing" in summary
