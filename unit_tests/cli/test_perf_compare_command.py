"""`roofline perf-compare` end to end, and the results files it reads (roofline.perf.results)."""

import json
import os
import pathlib

import numpy as np
import pytest

from roofline import RooflineError
from roofline.cli.main import main
from roofline.perf import results as perf_results
from roofline.perf.results import COMPARED_FIELDS, Benchmark, PerfResults, load_results, write_results
from unit_tests.helpers import cli_error

pytestmark = pytest.mark.analytic

ENVIRONMENT = {
    "gpu_name": "NVIDIA H100 80GB HBM3",
    "gpu_key": "h100-sxm",
    "compute_capability": "9.0",
    "sm_count": 132,
    "memory_total_bytes": 85_520_809_984,
    "driver_version": "550.54.15",
    "cuda_driver_version": "12.4",
    "power_limit_w": 700.0,
    "max_sm_clock_mhz": 1980,
    "max_mem_clock_mhz": 2619,
    "backends": {"torch": "2.5.1", "tensorrt": "10.3.0"},
}
RESNET = "resnet50-b32-torch"
GEMM = "gemm-8192-fp16"
JSON_KEYS = {"id", "baseline_median", "median", "change", "verdict", "reason"}


def test_environment_has_every_compared_field():
    assert set(COMPARED_FIELDS) | {"backends"} <= set(ENVIRONMENT)


def windows(median, seed, n=10, noise=0.01):
    return median * (1 + noise * np.random.default_rng(seed).standard_normal(n))


def perf(seed, resnet=5200.0, gemm=700.0, n=10, environment=None, **resnet_kw):
    """A results file: a torch model benchmark and a GEMM microbenchmark."""
    model = Benchmark.from_samples(
        RESNET, windows(resnet, seed, n), "img/s", flops_per_image=8.2e9, peak_flops=9.89e14,
        provenance={"date": "2025-01-01", "host": "runner-1", "commit": "abc", "command": "nox -s perf"},
        extra={"backend": "torch"} | resnet_kw.pop("extra", {}), **resnet_kw,
    )  # fmt: skip
    gemm_bench = Benchmark.from_samples(GEMM, windows(gemm, seed + 100, n), "TFLOP/s", utilization=0.71)
    return PerfResults(environment or ENVIRONMENT, {RESNET: model, GEMM: gemm_bench})


@pytest.fixture
def write(tmp_path):
    def write(name, results):
        path = tmp_path / name
        if isinstance(results, PerfResults):
            write_results(path, results)
        else:
            path.write_text(results if isinstance(results, str) else json.dumps(results))
        return str(path)

    return write


def run(capsys, *argv):
    code = main(["perf-compare", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_no_regression_exits_0_with_a_table(capsys, write):
    code, out, err = run(capsys, write("base.json", perf(1)), write("now.json", perf(2)))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["benchmark", "baseline", "now", "change", "verdict", "reason"]
    assert [line.split()[0] for line in lines[2:]] == [GEMM, RESNET]
    assert all(line.split()[4] == "ok" for line in lines[2:])


def test_regression_exits_1(capsys, write):
    base, now = write("base.json", perf(1)), write("now.json", perf(2, resnet=4680.0))
    code, out, _ = run(capsys, base, now)
    assert code == 1
    row = next(line for line in out.splitlines() if line.startswith(RESNET))
    change, verdict = row.split()[3:5]
    assert verdict == "regression" and -0.12 < float(change.rstrip("%")) / 100 < -0.08
    code, out, _ = run(capsys, base, now, "--json")
    assert code == 1
    verdicts = json.loads(out)
    assert all(JSON_KEYS <= set(v) for v in verdicts)
    by_id = {v["id"]: v for v in verdicts}
    assert by_id[GEMM]["verdict"] == "ok"
    resnet = by_id[RESNET]
    assert resnet["verdict"] == "regression"
    assert resnet["change"] == pytest.approx(-0.10, abs=0.01)
    assert resnet["baseline_median"] == pytest.approx(5200, rel=0.01)
    assert resnet["reason"].startswith("throughput -")


def test_gate_flags(capsys, write):
    base, now = write("base.json", perf(1)), write("now.json", perf(2, resnet=4680.0))
    assert run(capsys, base, now, "--floor", "0.2")[0] == 0
    assert run(capsys, base, now, "--k", "1", "--alpha", "0.01")[0] == 1
    # Four windows a side: too few at alpha 0.002, enough at 0.05.
    base, now = write("b4.json", perf(1, n=4)), write("n4.json", perf(2, resnet=4680.0, n=4))
    code, out, _ = run(capsys, base, now, "--json")
    assert code == 4 and {v["verdict"] for v in json.loads(out)} == {"invalid"}
    assert run(capsys, base, now, "--alpha", "0.05")[0] == 1


@pytest.mark.parametrize(
    "flag, value, fragment",
    [("--floor", "0", "fraction in (0, 1)"), ("--floor", "-0.1", "fraction in (0, 1)"),
     ("--floor", "abc", "fraction in (0, 1)"), ("--alpha", "1", "fraction in (0, 1)"),
     ("--alpha", "nan", "fraction in (0, 1)"), ("--k", "0", "number in (0, 100]"),
     ("--k", "-3", "number in (0, 100]"), ("--k", "inf", "number in (0, 100]")],
)  # fmt: skip
def test_bad_gate_flags(capsys, write, flag, value, fragment):
    base = write("base.json", perf(1))
    err = cli_error(capsys, ["perf-compare", base, base, flag, value])
    assert flag in err and fragment in err


def test_improvement_and_a_new_benchmark_do_not_fail(capsys, write):
    faster = perf(2, resnet=6000.0, extra={"invalid_reason": None}).benchmarks[RESNET]
    new = Benchmark.from_samples("new-bench", windows(9, 3), "img/s")
    now = PerfResults(ENVIRONMENT, {RESNET: faster, GEMM: perf(2).benchmarks[GEMM], "new-bench": new})
    code, out, err = run(capsys, write("base.json", perf(1)), write("now.json", now), "--json")
    assert (code, err) == (0, "")
    by_id = {v["id"]: v for v in json.loads(out)}
    assert by_id[RESNET]["verdict"] == "improvement" and "baseline stale" in by_id[RESNET]["reason"]
    assert by_id["new-bench"]["verdict"] == "not_comparable"
    assert by_id["new-bench"]["reason"] == "no baseline for it: run --update-baselines"


# --- Incomplete: a baseline benchmark missing or invalid, or nothing compared, exits 4 ------------------


def _only(*benchmarks, environment=ENVIRONMENT):
    return PerfResults(environment, {b.id: b for b in benchmarks})


def test_a_baseline_benchmark_missing_from_the_results_exits_4_naming_it(capsys, write):
    base, now = write("base.json", perf(1)), write("now.json", _only(perf(2).benchmarks[RESNET]))
    code, out, err = run(capsys, base, now)
    assert code == 4
    assert err.splitlines() == [
        f"incomplete: {GEMM}: missing: in the baseline but not in the results: its measurement was lost or "
        "not run; run it"
    ]
    assert next(line for line in out.splitlines() if line.startswith(GEMM)).split()[2:5] == [
        "-",
        "-",
        "missing",
    ]
    code, out, err = run(capsys, base, now, "--json")
    assert code == 4 and {v["id"]: v["verdict"] for v in json.loads(out)} == {GEMM: "missing", RESNET: "ok"}
    assert err.startswith(f"incomplete: {GEMM}: missing")


def test_an_invalid_verdict_exits_4_naming_it(capsys, write):
    invalid = perf(2, resnet=2000.0, extra={"invalid_reason": "throttled: HW slowdown"})
    code, out, err = run(capsys, write("base.json", perf(1)), write("bad.json", invalid), "--json")
    assert code == 4
    resnet = next(v for v in json.loads(out) if v["id"] == RESNET)
    assert resnet["verdict"] == "invalid" and "throttled: HW slowdown" in resnet["reason"]
    assert err == f"incomplete: {RESNET}: invalid: invalid run: throttled: HW slowdown\n"


def test_nothing_compared_exits_4(capsys, write):
    renamed = Benchmark.from_samples(
        "resnet50-b64-torch", windows(9000, 3), "img/s", extra={"backend": "torch"}
    )
    code, _, err = run(capsys, write("base.json", perf(1)), write("now.json", _only(renamed)))
    assert code == 4
    lines = err.splitlines()
    assert [line.split(":")[1].strip() for line in lines[:2]] == [GEMM, RESNET]
    assert lines[-1] == "incomplete: nothing was compared: no benchmark has a valid result in both files"
    empty = write("empty.json", _only())
    assert run(capsys, empty, empty)[0] == 4


def test_a_regression_wins_over_a_missing_benchmark(capsys, write):
    slower = perf(2, resnet=4680.0).benchmarks[RESNET]
    code, out, err = run(capsys, write("base.json", perf(1)), write("now.json", _only(slower)))
    assert code == 1 and f"incomplete: {GEMM}: missing" in err
    assert next(line for line in out.splitlines() if line.startswith(RESNET)).split()[4] == "regression"


def test_environments_that_differ_still_exit_3_with_missing_benchmarks(capsys, write):
    other = ENVIRONMENT | {"driver_version": "555.42.02"}
    now = write("now.json", _only(perf(2).benchmarks[RESNET], environment=other))
    code, out, err = run(capsys, write("base.json", perf(1)), now)
    assert (code, out) == (3, "") and err.startswith("not comparable: driver_version")


def test_the_help_documents_every_exit_code(capsys):
    with pytest.raises(SystemExit):
        main(["perf-compare", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for code in ("0: no regression", "1: a regression", "2: bad input", "3: the environments differ",
                 "4: incomplete"):  # fmt: skip
        assert code in text


def test_a_file_against_itself(capsys, write):
    path = write("base.json", perf(1))
    code, out, _ = run(capsys, path, path, "--json")
    assert code == 0
    assert [(v["verdict"], v["change"]) for v in json.loads(out)] == [("ok", 0.0), ("ok", 0.0)]


# --- Not comparable: a different GPU or stack is a different experiment -------------------------------


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"driver_version": "555.42.02"}, ["driver_version: baseline '550.54.15', results '555.42.02'"]),
        (
            {"gpu_name": "NVIDIA H200", "memory_total_bytes": 150_754_820_096},
            ["gpu_name: baseline 'NVIDIA H100 80GB HBM3', results 'NVIDIA H200'",
             "memory_total_bytes: baseline 85520809984, results 150754820096"],
        ),
        ({"power_limit_w": 500.0}, ["power_limit_w: baseline 700.0, results 500.0"]),
        (
            {"backends": {"torch": "2.6.0", "tensorrt": "10.3.0"}},
            ["backends.torch: baseline '2.5.1', results '2.6.0'"],
        ),
    ],
    ids=["driver", "other-device", "power-limit", "used-backend"],
)  # fmt: skip
def test_different_environments_exit_3_naming_the_fields(capsys, write, changes, expected):
    base = write("base.json", perf(1))
    now = write("now.json", perf(2, resnet=1000.0, environment=ENVIRONMENT | changes))
    code, out, err = run(capsys, base, now)
    assert (code, out) == (3, "")
    assert err.splitlines() == [f"not comparable: {line}" for line in expected]
    code, out, _ = run(capsys, base, now, "--json")
    assert code == 3
    verdicts = json.loads(out)
    assert [v["id"] for v in verdicts] == [GEMM, RESNET]
    for v in verdicts:
        assert JSON_KEYS <= set(v) and v["verdict"] == "not_comparable"
        assert all(line.split(":")[0] in v["reason"] for line in expected)


def test_an_unused_backend_version_does_not_matter(capsys, write):
    changed = ENVIRONMENT | {"backends": {"torch": "2.5.1", "tensorrt": "10.7.0"}, "gpu_key": "renamed"}
    code, _, err = run(capsys, write("base.json", perf(1)), write("now.json", perf(2, environment=changed)))
    assert (code, err) == (0, "")


# --- Bad input: one line, exit 2 ---------------------------------------------------------------------


def _corrupt(mutate):
    data = perf(1).to_dict()
    mutate(data["benchmarks"][RESNET], data)
    return data


def _set(key, value):
    return lambda entry, _: entry.__setitem__(key, value)


@pytest.mark.parametrize(
    "document, fragment",
    [
        ("{not json", "is not valid JSON"),
        ({"format": "other"}, "is not a roofline-perf-results version 1 file"),
        ({"format": "roofline-latency-table", "version": 1, "gpu": "v100-sxm2", "entries": {}},
         "is not a roofline-perf-results version 1 file"),
        ([1, 2], "is not a roofline-perf-results version 1 file"),
        (_corrupt(_set("median", 1.0)), "is not the median of its samples"),
        (_corrupt(lambda e, _: e["samples"].__setitem__(0, -5.0)), "sample must be a positive finite number"),
        (_corrupt(_set("samples", [])), f"benchmark '{RESNET}' has no samples"),
        (_corrupt(_set("tolerance", 1.5)), "tolerance must be a fraction in (0, 1)"),
        (_corrupt(_set("tolerance", -0.1)), "tolerance must be a positive finite number"),
        (_corrupt(_set("unit", "")), "has no unit"),
        (_corrupt(lambda _, d: d["environment"].pop("driver_version")), "environment lacks driver_version"),
        (_corrupt(lambda _, d: d.pop("benchmarks")), "corrupt"),
    ],
    ids=["json", "format", "latency-table", "list", "median", "negative", "empty", "tolerance>1",
         "tolerance<0", "unit", "environment", "no-benchmarks"],
)  # fmt: skip
def test_bad_baseline_is_one_line_exit_2(capsys, write, document, fragment):
    base, good = write("base.json", document), write("now.json", perf(2))
    err = cli_error(capsys, ["perf-compare", base, good])
    assert fragment in err and base in err
    if "corrupt" in fragment or "median" in fragment or "sample" in fragment:
        assert err.startswith(f"roofline: error: baseline {base} is corrupt") and "re-measure it" in err
    # The results file gets the same checks, named as such.
    bad = write("bad-results.json", document)
    err = cli_error(capsys, ["perf-compare", good, bad])
    assert fragment in err and bad in err and not err.startswith("roofline: error: baseline")


def test_missing_file(capsys, write, tmp_path):
    missing = str(tmp_path / "nope.json")
    err = cli_error(capsys, ["perf-compare", missing, write("now.json", perf(2))])
    assert f"baseline {missing} does not exist" in err


# --- The file itself: round trip and atomic writes ---------------------------------------------------


def test_write_then_load_round_trips(tmp_path):
    original = perf(1, tolerance=0.05, extra={"telemetry": {"sm_clock_mhz": [1980, 1975]}})
    path = tmp_path / "r.json"
    write_results(path, original)
    loaded = load_results(path)
    assert loaded == original
    assert loaded.benchmarks[RESNET].extra["telemetry"] == {"sm_clock_mhz": [1980, 1975]}
    write_results(path, loaded)
    assert load_results(path) == original


def _assert_untouched(path, before):
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == [path.name], "a temporary file was left behind"


def test_failed_serialization_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "base.json"
    write_results(path, perf(1))
    before = path.read_bytes()

    def broken_dumps(*args, **kwargs):
        raise TypeError("Object of type Device is not JSON serializable")

    monkeypatch.setattr(perf_results.json, "dumps", broken_dumps)
    with pytest.raises(TypeError):
        write_results(path, perf(2))
    _assert_untouched(path, before)


def test_a_write_failing_midway_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "base.json"
    write_results(path, perf(1))
    before = path.read_bytes()
    real_write_text = pathlib.Path.write_text

    def half_then_full_disk(self, text, *args, **kwargs):
        real_write_text(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pathlib.Path, "write_text", half_then_full_disk)
    with pytest.raises(RooflineError, match="No space left on device"):  # a full disk is a one-line error
        write_results(path, perf(2))
    monkeypatch.undo()
    _assert_untouched(path, before)
    assert load_results(path) == perf(1)


def test_backends_that_are_not_an_object_are_one_line_exit_2(capsys, write):
    data = perf(1).to_dict()
    data["environment"]["backends"] = ["torch"]
    err = cli_error(capsys, ["perf-compare", write("base.json", data), write("now.json", perf(2))])
    assert "backends" in err
