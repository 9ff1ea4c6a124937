"""The validation study: predicted against measured throughput, on zoo models (no tracing)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roofline import Target
from roofline.analysis.predict import evaluate
from roofline.errors import RooflineError
from roofline.model import ir, zoo
from roofline.model.fusion import Kernel, fuse
from roofline.perf.measured import MeasuredTable, Measurement, read_measured
from roofline.studies.validate import (
    KERNEL_CLASSES,
    Stats,
    family,
    kernel_class,
    network_kind,
    resolve_measured,
    validate,
)
from unit_tests.helpers import bn, conv, ew

pytestmark = pytest.mark.analytic

HEADER = "model,infer_img_size,infer_samples_per_sec,infer_step_time,infer_batch_size\n"
ZOO_ROWS = (
    "resnet50,224,3000,1,256\n"
    "resnext50_32x4d,224,2000,1,256\n"
    "efficientnet_b0,224,5000,1,256\n"
    "mobilenetv2_100,224,9000,1,128\n"
    "regnety_016,224,6000,1,256\n"
)


def _target_for(gpu, engine, dtype):
    return Target.of(gpu, dtype or "fp16", engine=engine)


def _table(tmp_path, body=ZOO_ROWS, name="benchmark-infer-amp-nchw-pt240-cu124-rtx4090.csv"):
    path = tmp_path / name
    path.write_text(HEADER + body)
    return read_measured(path)


def _zoo_only(model, resolution):
    """The zoo, or a fast failure: no test here imports torch."""
    if model in zoo.ZOO_SOURCES and zoo.load(model).resolution == resolution:
        return zoo.load(model)
    raise RooflineError(f"unknown timm model {model!r}: see timm.list_models() for names")


# --- statistics ---------------------------------------------------------------------------------------


def test_stats_on_a_hand_checked_example():
    # ratios 1.1, 4/7, 1.0, 0.95 -> sorted 4/7, .95, 1, 1.1: median .975;
    # |ratio - 1| = .1, 3/7, 0, .05 -> sorted 0, .05, .1, 3/7: MdAPE .075; within 10%: 3 of 4 (1.1 counts);
    # ranks of predicted 1,2,3,4 and of measured 1,3,2,4: rho = 1 - 6 x 2 / (4 x 15) = 0.8.
    s = Stats.of([110, 200, 300, 380], [100, 350, 300, 400])
    assert s.n == 4
    assert s.median_ratio == pytest.approx(0.975)
    assert s.mdape == pytest.approx(0.075)
    assert s.within_10 == 0.75 and s.within_15 == 0.75
    assert s.spearman == pytest.approx(0.8)


def test_stats_of_nothing_and_of_constants():
    assert Stats.of([], []).to_dict() == {
        "n": 0, "median_ratio": None, "mdape": None, "within_10": None, "within_15": None, "spearman": None,
    }  # fmt: skip
    assert Stats.of([1, 2], [1, 2]).spearman is None  # fewer than 3 rows: no rank correlation
    same = Stats.of([5, 5, 5], [1, 2, 3])
    assert same.spearman is None and same.median_ratio == pytest.approx(2.5)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.floats(1, 1e6), st.floats(1, 1e6)), min_size=1, max_size=30))
def test_stats_invariants(pairs):
    pred, meas = zip(*pairs, strict=True)
    s = Stats.of(pred, meas)
    ratio = np.array(pred) / np.array(meas)
    assert s.median_ratio == pytest.approx(float(np.median(ratio)))
    assert 0 <= s.within_10 <= s.within_15 <= 1
    assert s.mdape >= 0
    if s.n % 2:  # the median is one of the errors: it is within 10% exactly when most rows are
        assert (s.mdape <= 0.10 + 1e-9) == (s.within_10 > 0.5)
    assert s.spearman is None or -1 - 1e-9 <= s.spearman <= 1 + 1e-9
    # Scaling every prediction by one factor moves the bias by that factor and leaves the ranks alone.
    scaled = Stats.of([2 * p for p in pred], meas)
    assert scaled.median_ratio == pytest.approx(2 * s.median_ratio)
    assert scaled.spearman == (None if s.spearman is None else pytest.approx(s.spearman))


# --- classes, kinds, families ------------------------------------------------------------------------------


def _net(layers, out):
    return ir.Network(name="t", inputs=(("x", (1, 64, 8, 8)),), outputs=(out,), layers=tuple(layers))


def test_kernel_classes_of_hand_built_kernels():
    x = (1, 64, 8, 8)
    layers = [
        conv("dense", "x", x, 64, 3), bn("bn", "dense", x), ew("relu", "relu", ["bn"], [x]),
        conv("grouped", "relu", x, 64, 3, groups=8), conv("dw", "grouped", x, 64, 3, groups=64),
        ew("sig", "sigmoid", ["dw"], [x]),
    ]  # fmt: skip
    kernels = fuse(_net(layers, "sig"))
    assert [(k.name, kernel_class(k)) for k in kernels] == [
        ("dense", "gemm"),
        ("grouped", "grouped"),
        ("dw", "depthwise"),
    ]  # fmt: skip  (TensorRT fuses bn, relu and sigmoid into the convolutions)
    q = (1, 4, 16, 16)
    mm = ir.MatMul(name="qk", inputs=("q", "k"), output="qk", input_shapes=(q, q), output_shape=q)
    sm = ir.Softmax(name="sm", inputs=("qk",), output="sm", input_shapes=(q,), output_shape=q)
    fc = ir.Linear(name="fc", inputs=("sm",), output="fc", input_shapes=(q,), output_shape=q)
    assert kernel_class(Kernel(mm, (sm,), (("q", q), ("k", q)), "sm", q, 0)) == "attention"
    assert kernel_class(Kernel(mm, (), (("q", q), ("k", q)), "qk", q, 0)) == "gemm"
    assert kernel_class(Kernel(sm, (), (("qk", q),), "sm", q, 0)) == "pointwise"
    assert kernel_class(Kernel(fc, (), (("sm", q),), "fc", q, 16)) == "gemm"
    assert set(KERNEL_CLASSES) == {"gemm", "grouped", "depthwise", "attention", "pointwise"}


def test_network_kind():
    assert network_kind(zoo.load("resnet50")) == "cnn"
    q = (1, 4, 16, 16)
    mm = ir.MatMul(name="qk", inputs=("x", "x"), output="qk", input_shapes=(q, q), output_shape=q)
    assert network_kind(_net([mm], "qk")) == "transformer"
    sm = ir.Softmax(name="sm", inputs=("x",), output="sm", input_shapes=(q,), output_shape=q)
    assert network_kind(_net([sm], "sm")) == "transformer"


@pytest.mark.parametrize(
    "model, expected",
    [("resnext50_32x4d", "resnext"), ("resnet50", "resnet"), ("timm:convnext_tiny", "convnext"),
     ("test_vit", "test"), ("vit_base_patch16_224", "vit"), ("ResNet50", "resnet")],
)  # fmt: skip
def test_family(model, expected):
    assert family(model) == expected


def test_resolve_measured_takes_the_zoo_at_its_resolution():
    assert resolve_measured("resnet50", 224) is zoo.load("resnet50")  # no torch, no trace
    with pytest.raises(RooflineError, match="32x32 only"):
        resolve_measured("cifar_resnet56", 224)  # a zoo model not from timm: not re-traced


# --- the study ----------------------------------------------------------------------------------------------


def test_validate_on_zoo_models(tmp_path):
    table = _table(tmp_path, ZOO_ROWS + "not_a_model_xyz,224,100,1,256\nresnet50,320,1,1,256\n")
    result = validate([table], _target_for, _zoo_only)
    (t,) = result.tables
    assert (t.gpu, t.engine, t.dtype) == ("rtx-4090", "torch", "fp16")
    assert [r.model for r in t.rows] == ["resnet50", "resnext50_32x4d", "efficientnet_b0", "mobilenetv2_100",
                                         "regnety_016"]  # fmt: skip
    target = Target.of("rtx-4090", "fp16", engine="torch")
    for row in t.rows:
        expected = evaluate(zoo.load(row.model), target, row.batch).throughput_img_s
        assert row.predicted_img_s == pytest.approx(expected)
        assert row.ratio == pytest.approx(expected / row.measured_img_s)
        assert row.kind == "cnn" and row.kernel_class in KERNEL_CLASSES
        assert row.source.startswith(table.path + ":")
    assert {r.model: r.family for r in t.rows}["resnext50_32x4d"] == "resnext"
    assert {r.model: r.batch for r in t.rows}["mobilenetv2_100"] == 128
    # Unknown models are listed with their reason and rows, not fatal.
    assert [(u.model, u.resolution) for u in t.unresolved] == [("not_a_model_xyz", 224), ("resnet50", 320)]
    assert t.unresolved[0].reason.startswith("unknown timm model 'not_a_model_xyz'")
    assert t.unresolved[0].sources == (f"{table.path}:7",)
    assert list(t.unresolved_by_reason()) == [
        "unknown timm model '<model>': see timm.list_models() for names"
    ]  # one cause, two models
    stats = t.stats()
    assert stats["all"].n == stats["cnn"].n == 5 and stats["transformer"].n == 0
    assert stats["all"] == Stats.of([r.predicted_img_s for r in t.rows], [r.measured_img_s for r in t.rows])
    assert sum(b.n for b in t.bias_by_kernel_class()) == 5
    worst = t.worst(2)
    assert abs(math.log(worst[0].ratio)) >= abs(math.log(worst[1].ratio))
    assert all(abs(math.log(worst[1].ratio)) >= abs(math.log(r.ratio)) for r in t.rows if r not in worst)


def test_dominant_class_is_where_the_time_goes(tmp_path):
    result = validate([_table(tmp_path)], _target_for, _zoo_only)
    target = Target.of("rtx-4090", "fp16", engine="torch")
    for row in result.tables[0].rows:
        est = evaluate(zoo.load(row.model), target, row.batch)
        per_class = {c: 0.0 for c in KERNEL_CLASSES}
        for k, t in zip(est.fused.kernels, est.time_s, strict=True):
            per_class[kernel_class(k)] += t
        assert per_class[row.kernel_class] == max(per_class.values())


def test_the_engine_follows_the_file_name_and_the_override(tmp_path):
    eager = _table(tmp_path)
    compiled = _table(tmp_path, name="benchmark-infer-amp-nchw-pt240-cu124-rtx4090-dynamo.csv")
    calls = []

    def counting(model, resolution):
        calls.append((model, resolution))
        return _zoo_only(model, resolution)

    result = validate([eager, compiled], _target_for, counting)
    assert [(t.engine, len(t.rows)) for t in result.tables] == [("torch", 5), ("torch-compile", 5)]
    assert len(calls) == 5  # each (model, resolution) resolved once for both tables
    a, b = (t.rows[0].predicted_img_s for t in result.tables)
    assert a != b  # torch.compile fuses pointwise chains: a different prediction
    assert result.overall()["all"].n == 10

    def override(gpu, engine, dtype):
        return Target.of("rtx-3090", "fp16", engine="tensorrt")

    forced = validate([eager], override, _zoo_only)
    assert (forced.tables[0].gpu, forced.tables[0].engine) == ("rtx-3090", "tensorrt")


def test_a_table_without_a_gpu_fails_before_any_model_is_resolved(tmp_path):
    table = _table(tmp_path, name="my-measurements.csv")
    assert table.gpu is None

    def needs_gpu(gpu, engine, dtype):
        if gpu is None:
            raise RooflineError("the file does not name its GPU; pass --gpu")
        return _target_for(gpu, engine, dtype)

    def never(model, resolution):
        raise AssertionError("resolved a model before checking the targets")

    with pytest.raises(RooflineError, match=r"my-measurements.csv: the file does not name its GPU"):
        validate([table], needs_gpu, never)


def test_a_trace_that_fails_is_listed_not_fatal(tmp_path):
    def broken(model, resolution):
        if model == "resnet50":
            raise RuntimeError("aten::weird has no meta kernel\nlong traceback here")
        return _zoo_only(model, resolution)

    (t,) = validate([_table(tmp_path)], _target_for, broken).tables
    assert len(t.rows) == 4
    (u,) = t.unresolved
    assert u.reason == "tracing failed: RuntimeError: aten::weird has no meta kernel"


def test_rows_naming_their_engine_split_the_table(tmp_path):
    rows = (
        Measurement("resnet50", 224, 32, 3000.0, "r.json:benchmarks.a", "torch", "fp16"),
        Measurement("resnet50", 224, 32, 6000.0, "r.json:benchmarks.b", "tensorrt", "fp16"),
        Measurement("resnet18", 224, 32, 9000.0, "r.json:benchmarks.c", "tensorrt", "fp16"),
    )
    table = MeasuredTable("r.json", "h100-sxm", None, rows, ("r.json:benchmarks.d: no backend",))
    result = validate([table], _target_for, _zoo_only)
    split = [(t.engine, len(t.rows), len(t.problems)) for t in result.tables]
    assert split == [("torch", 1, 1), ("tensorrt", 2, 0)]  # the file's problems are reported once


def test_to_dict_keys(tmp_path):
    out = validate([_table(tmp_path, ZOO_ROWS + "nope,224,1,1,1\n")], _target_for, _zoo_only).to_dict()
    assert set(out) == {"tables", "overall"}
    (t,) = out["tables"]
    assert set(t) == {"path", "gpu", "gpu_name", "engine", "dtype", "stats", "bias", "rows", "unresolved",
                      "problems"}  # fmt: skip
    assert set(t["stats"]) == {"all", "cnn", "transformer"}
    assert set(t["bias"]) == {"family", "kernel_class"}
    assert set(t["rows"][0]) == {"model", "resolution", "batch", "family", "kind", "kernel_class",
                                 "predicted_img_s", "measured_img_s", "ratio", "source"}  # fmt: skip
    assert t["unresolved"][0]["model"] == "nope"
