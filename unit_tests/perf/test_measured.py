"""Measured throughput tables: timm benchmark CSVs and the suite's results JSON."""

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roofline.errors import RooflineError
from roofline.perf.measured import (
    CSV_COLUMNS,
    Measurement,
    names_from_file_name,
    packaged_tables,
    read_measured,
)
from roofline.perf.results import Benchmark, PerfResults, write_results

pytestmark = pytest.mark.analytic

HEADER = "model,infer_img_size,infer_samples_per_sec,infer_step_time,infer_batch_size,param_count\n"


def _csv(tmp_path, body, name="benchmark-infer-amp-nchw-pt240-cu124-rtx4090.csv", header=HEADER):
    path = tmp_path / name
    path.write_text(header + body)
    return path


def test_reads_good_rows(tmp_path):
    path = _csv(tmp_path, "resnet50,224,3105.5,82.4,256,25.56\ntest_vit,160,109337.21,9.356,1024,0.37\n")
    table = read_measured(path)
    assert table.rows == (
        Measurement("resnet50", 224, 256, 3105.5, f"{path}:2"),
        Measurement("test_vit", 160, 1024, 109337.21, f"{path}:3"),  # test_* are real timm models: kept
    )
    assert table.problems == ()
    assert (table.gpu, table.engine) == ("rtx-4090", "torch")


def test_bad_rows_are_reported_with_file_and_line_not_fatal(tmp_path):
    body = (
        "resnet50,224,3105.5,82.4,256,25.56\n"
        "resnet18,224,9000,1,abc,11\n"  # line 3
        "resnet34,0,9000,1,256,21\n"  # line 4
        "resnet101,224,nan,1,256,44\n"  # line 5
        "resnet152,224,-5,1,256,60\n"  # line 6
        ",224,100,1,256,1\n"  # line 7
        "resnet50,224,3000,82.4,256,25.56\n"  # line 8: same model, size and batch as line 2
        "vgg16,224,900\n"  # line 9: cut short
        "vgg19,224,800,1,256,143,extra\n"  # line 10: too long
        "dla34,224,inf,1,256,15\n"  # line 11
        "dla60,100000,5,1,256,15\n"  # line 12: past the CLI's --resolution bound
    )
    path = _csv(tmp_path, body)
    table = read_measured(path)
    assert [r.model for r in table.rows] == ["resnet50"]
    assert table.rows[0].throughput_img_s == 3105.5  # the first of two repeats
    problems = "\n".join(table.problems)
    assert len(table.problems) == 11 - 1
    assert f"{path}:3: infer_batch_size 'abc' is not a positive integer" in problems
    assert f"{path}:4: infer_img_size '0' is not a positive integer" in problems
    assert f"{path}:5: infer_samples_per_sec 'nan' is not a positive finite number" in problems
    assert f"{path}:6: infer_samples_per_sec '-5'" in problems
    assert f"{path}:7: model name is empty" in problems
    assert f"{path}:8: resnet50 at 224 px, batch 256 repeats line 2" in problems
    assert f"{path}:9: 6 columns expected" in problems
    assert f"{path}:10: 6 columns expected" in problems
    assert f"{path}:11: infer_samples_per_sec 'inf'" in problems
    assert f"{path}:12: infer_img_size 100000 is above 8192" in problems


def test_other_columns_and_their_order_do_not_matter(tmp_path):
    header = "infer_batch_size,extra,infer_samples_per_sec,model,infer_img_size\n"
    table = read_measured(_csv(tmp_path, "64,x,123.5,convnext_tiny,288\n", header=header))
    assert [(r.model, r.resolution, r.batch, r.throughput_img_s) for r in table.rows] == [
        ("convnext_tiny", 288, 64, 123.5)
    ]


@pytest.mark.parametrize("missing", CSV_COLUMNS)
def test_a_missing_column_is_an_error_naming_it(tmp_path, missing):
    header = ",".join(c for c in CSV_COLUMNS if c != missing) + "\n"
    path = _csv(tmp_path, "a,b,c\n", header=header)
    with pytest.raises(
        RooflineError, match=rf"{re.escape(str(path))} is not a measured .*no column {missing}"
    ):
        read_measured(path)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not a text file"),
        (b"hello world\n", "no column model"),
        (b"model,infer_img_size\x00\n", "NUL byte"),
        (b'{"format": "something-else", "version": 1}', "is not a roofline-perf-results version 1 file"),
        (b"{not json", "not valid JSON"),
    ],
)
def test_a_file_that_is_no_table_is_one_error_naming_it(tmp_path, content, match):
    path = tmp_path / "table.csv"
    path.write_bytes(content)
    with pytest.raises(RooflineError, match=match) as info:
        read_measured(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(RooflineError, match="does not exist"):
        read_measured(tmp_path / "nope.csv")


@pytest.mark.parametrize(
    "name, gpu, engine",
    [
        ("benchmark-infer-amp-nchw-pt240-cu124-rtx3090.csv", "rtx-3090", "torch"),
        ("benchmark-infer-amp-nhwc-pt240-cu124-rtx3090.csv", "rtx-3090", "torch"),
        ("benchmark-infer-amp-nchw-pt240-cu124-rtx4090-dynamo.csv", "rtx-4090", "torch-compile"),
        ("benchmark-infer-amp-nchw-pt291-cu128-4090-dynamo.csv", "rtx-4090", "torch-compile"),
        ("benchmark-infer-amp-nchw-pt291-cu128-4090.csv", "rtx-4090", "torch"),
        ("my-measurements.csv", None, "torch"),
        ("rtx3090-vs-4090.csv", None, "torch"),  # contradicts itself: no GPU
        ("bench-dynamo-a100.csv", None, "torch-compile"),
    ],
)
def test_gpu_and_engine_from_the_file_name(name, gpu, engine):
    assert names_from_file_name(name) == (gpu, engine)


def test_the_packaged_tables_read_whole():
    tables = packaged_tables()
    assert len(tables) == 6
    for name, path in tables.items():
        table = read_measured(path)
        assert table.problems == (), name
        assert len(table.rows) > 1000
        assert table.gpu in ("rtx-3090", "rtx-4090")
        assert table.engine == ("torch-compile" if "dynamo" in name else "torch")


def test_select_filters_then_limits(tmp_path):
    body = "".join(
        f"{m},224,{1000 + i},1,256,1\n" for i, m in enumerate(["resnet18", "vit_b", "resnet50", "resnet101"])
    )
    table = read_measured(_csv(tmp_path, body))
    picked = table.select(re.compile("^resnet"), 2)
    assert [r.model for r in picked.rows] == ["resnet18", "resnet50"]
    assert table.select(None, None) == table
    assert [r.model for r in table.select(limit=1).rows] == ["resnet18"]


def _results(tmp_path, benchmarks, gpu_key="h100-sxm"):
    env = {"gpu_name": "NVIDIA H100 80GB HBM3", "gpu_key": gpu_key, "compute_capability": "9.0",
           "sm_count": 132, "memory_total_bytes": 1, "driver_version": "1", "cuda_driver_version": "12.4",
           "power_limit_w": 700.0, "max_sm_clock_mhz": 1980, "max_mem_clock_mhz": 2619,
           "backends": {"torch": "2.5.1"}}  # fmt: skip
    path = tmp_path / "results.json"
    write_results(path, PerfResults(env, {b.id: b for b in benchmarks}))
    return path


def _bench(id, model, backend="torch", resolution=224, batch=32, samples=(1000.0, 1010.0, 990.0), **extra):
    return Benchmark.from_samples(
        id, samples, "img/s",
        extra={"kind": "model", "model": model, "resolution": resolution, "batch": batch, "dtype": "fp16",
               "backend": backend, **extra},
    )  # fmt: skip


def test_results_json_rows_gpu_and_engines(tmp_path):
    path = _results(
        tmp_path,
        [
            _bench("resnet50-b32-torch", "resnet50"),
            _bench("resnet50-b32-compiled", "resnet50", backend_description={"compile": True}),
            _bench("convnext-b8-trt", "timm:convnext_tiny", backend="tensorrt", batch=8, resolution=288),
            Benchmark.from_samples("gemm-4096", [1e14, 1.1e14], "flop/s", extra={"kind": "gemm"}),
            _bench("bad-batch", "resnet18", batch=0),
            _bench("invalid", "resnet18", invalid_reason="clocks throttled"),
        ],
    )
    table = read_measured(path)
    assert table.gpu == "h100-sxm"
    assert table.engine is None  # three engines in one file
    by_id = {r.source.rpartition(".")[2]: r for r in table.rows}
    assert set(by_id) == {"resnet50-b32-torch", "resnet50-b32-compiled", "convnext-b8-trt"}
    assert by_id["resnet50-b32-torch"] == Measurement(
        "resnet50", 224, 32, 1000.0, f"{path}:benchmarks.resnet50-b32-torch", "torch", "fp16"
    )
    assert by_id["resnet50-b32-compiled"].engine == "torch-compile"
    trt = by_id["convnext-b8-trt"]
    assert (trt.model, trt.resolution, trt.batch, trt.engine) == ("timm:convnext_tiny", 288, 8, "tensorrt")
    assert len(table.problems) == 2
    assert any("benchmarks.bad-batch: batch 0 is not a positive integer" in p for p in table.problems)
    assert any("benchmarks.invalid: the suite marked" in p and "throttled" in p for p in table.problems)


def test_results_json_one_engine_and_no_gpu_key(tmp_path):
    table = read_measured(_results(tmp_path, [_bench("a", "resnet50", "onnxruntime")], gpu_key=None))
    assert (table.gpu, table.engine) == (None, "onnxruntime")


def test_a_corrupt_results_file_is_an_error(tmp_path):
    path = _results(tmp_path, [_bench("a", "resnet50")])
    doc = json.loads(path.read_text())
    doc["benchmarks"]["a"]["median"] = 5.0  # not the median of its samples
    path.write_text(json.dumps(doc))
    with pytest.raises(RooflineError, match="corrupt"):
        read_measured(path)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["resnet50", "vit_small", "test_vit", ""]),
            st.one_of(st.integers(-5, 600).map(str), st.sampled_from(["abc", "", "2.5", " 224 "])),
            st.one_of(st.integers(-2, 2048).map(str), st.sampled_from(["x", ""])),
            st.one_of(
                st.floats(allow_nan=True, allow_infinity=True).map(repr), st.sampled_from(["1e3", "-", ""])
            ),
        ),
        max_size=12,
    )
)
def test_every_row_is_either_kept_or_reported(tmp_path_factory, rows):
    """Invariant: rows in = rows kept + rows reported, and every kept row is positive and finite."""
    body = "".join(f"{m},{res},{thr},1,{b},1\n" for m, res, b, thr in rows)
    table = read_measured(_csv(tmp_path_factory.mktemp("t"), body))
    assert len(table.rows) + len(table.problems) == len(rows)
    for r in table.rows:
        assert r.resolution >= 1 and r.batch >= 1 and 0 < r.throughput_img_s < float("inf") and r.model
    lines = [int(p.split(":")[1]) for p in table.problems] + [
        int(r.source.rpartition(":")[2]) for r in table.rows
    ]
    assert sorted(lines) == list(range(2, len(rows) + 2))
