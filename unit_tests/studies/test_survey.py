"""The utilization survey: who folds, the frontiers, the CSV/JSON rows and the accuracy file."""

import csv
import io
import json

import pytest

from roofline import FusedNetwork, RooflineError, get_gpu
from roofline.analysis.batch import memory_fit
from roofline.analysis.target import Target
from roofline.model import zoo
from roofline.model.builder import NetBuilder
from roofline.studies.survey import CSV_COLUMNS, load_accuracies, survey
from unit_tests.helpers import SURVEY_MODELS as MODELS
from unit_tests.helpers import SURVEY_TOP1 as TOP1

pytestmark = pytest.mark.analytic

V100 = get_gpu("v100")


def _non_dominated(points):
    """Brute force: indices no other point beats in one coordinate while matching it in the other."""
    return [
        i
        for i, p in enumerate(points)
        if not any(all(q[k] >= p[k] for k in range(2)) and q != p for q in points)
    ]


def test_folds_exactly_the_memory_bound_models(survey_result):
    assert [e.name for e in survey_result.entries] == MODELS
    folded = set()
    for e in survey_result.entries:
        est = e.estimate
        assert est.batch == 256
        assert (e.folded is not None) == (est.arithmetic_intensity < est.peak.cmr)
        if e.folded is not None:
            folded.add(e.name)
            assert (e.folded.batch, e.folded.images) == (64, 256)
            assert e.folded.network.images_per_sample == 4
            assert e.folded_flops_ratio == pytest.approx(e.folded.flops_per_image / est.flops_per_image)
            faster = e.folded.throughput_img_s > est.throughput_img_s
            assert e.best is (e.folded if faster else est)
        else:
            assert e.best is est and e.folded_flops_ratio is None and not e.fold_holds
    assert {"efficientnet_b0", "mobilenetv2_100", "regnetx_002"} <= folded
    assert "vgg16" not in folded


def test_frontiers_are_the_non_dominated_points(survey_result):
    points = [(e.estimate.throughput_img_s, e.estimate.utilization) for e in survey_result.entries]
    assert survey_result.frontier() == _non_dominated(points)
    best = [(e.best.throughput_img_s, e.best.utilization) for e in survey_result.entries]
    assert survey_result.frontier(folded=True) == _non_dominated(best)
    assert survey_result.frontier()  # never empty for a non-empty survey


def test_without_folding_nothing_folds():
    s = survey([zoo.load(m) for m in MODELS[:3]], Target(V100, "fp16"), 64)
    assert all(e.folded is None for e in s.entries)
    assert s.frontier(folded=True) == s.frontier()
    assert "folded_frontier" not in s.to_dict()


def test_to_dict(survey_result):
    d = survey_result.to_dict()
    assert {"gpu", "gpu_name", "dtype", "batch", "fold_factor", "peak", "models", "frontier"} <= set(d)
    assert (d["gpu"], d["dtype"], d["batch"], d["fold_factor"]) == ("v100-sxm2", "fp16", 256, 4)
    assert [m["model"] for m in d["models"]] == MODELS
    assert all(tuple(m) == CSV_COLUMNS for m in d["models"])
    assert d["frontier"] == [MODELS[i] for i in survey_result.frontier()]
    assert d["folded_frontier"] == [
        survey_result.entries[i].best.network.name for i in survey_result.frontier(folded=True)
    ]
    assert "accuracy_frontiers" not in d
    assert json.loads(json.dumps(d)) == d


def test_csv_parses_to_the_same_rows(survey_result):
    reader = csv.DictReader(io.StringIO(survey_result.csv_text()))
    assert tuple(reader.fieldnames) == CSV_COLUMNS
    parsed = list(reader)
    rows = survey_result.rows()
    assert len(parsed) == len(rows) == len(MODELS)
    for got, row in zip(parsed, rows, strict=True):
        assert got == {k: "" if v is None else str(v) for k, v in row.items()}
        assert float(got["throughput_img_s"]) == row["throughput_img_s"]  # repr round-trips floats
        assert got["on_frontier"] in ("True", "False")


def test_accuracy_frontiers(survey_with_top1):
    known = [i for i, e in enumerate(survey_with_top1.entries) if e.top1 is not None]
    assert [survey_with_top1.entries[i].name for i in known] == [m for m in MODELS if m in TOP1]
    fronts = survey_with_top1.accuracy_frontiers()
    for key, metric in (("throughput", "throughput_img_s"), ("utilization", "utilization")):
        points = [
            (getattr(survey_with_top1.entries[i].estimate, metric), survey_with_top1.entries[i].top1)
            for i in known
        ]
        assert fronts[key] == [known[j] for j in _non_dominated(points)]
    d = survey_with_top1.to_dict()
    assert d["accuracy_frontiers"] == {k: [MODELS[i] for i in v] for k, v in fronts.items()}
    assert [m["top1"] for m in d["models"]] == [TOP1.get(m) for m in MODELS]


def test_load_accuracies(tmp_path):
    path = tmp_path / "top1.csv"
    path.write_text("model,top1,source\nresnet50,80.4,timm\nvgg16,71.6,\n")
    assert load_accuracies(path) == {"resnet50": 80.4, "vgg16": 71.6}
    assert load_accuracies(str(path)) == {"resnet50": 80.4, "vgg16": 71.6}


@pytest.mark.parametrize(
    "text, fragment",
    [
        (None, "cannot read accuracy file"),
        ("name,acc\nresnet50,80\n", "needs a header with columns model,top1"),
        ("", "needs a header"),
        ("model,top1\nresnet50,eighty\n", ":2: top1 'eighty' is not a number"),
        ("model,top1\nresnet50,80\nvgg16,120\n", ":3: need a model name and a top1 in percent"),
        ("model,top1\nresnet50,-1\n", "in percent"),
        ("model,top1\nresnet50,nan\n", "in percent"),
        ("model,top1\n,80\n", "need a model name"),
        ("model,top1\nresnet50\n", "is not a number"),
    ],
)
def test_load_accuracies_errors(tmp_path, text, fragment):
    path = tmp_path / "top1.csv"
    if text is not None:
        path.write_text(text)
    with pytest.raises(RooflineError) as exc:
        load_accuracies(path)
    assert str(path) in str(exc.value) and fragment in str(exc.value)


@pytest.mark.parametrize(
    "data",
    [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xd8", b"model,top1\nresnet50,80\n\xff\xfe\n",
     b"model,top1\nresnet50,8\x000\n"],
    ids=["png", "latin-1", "nul"],
)  # fmt: skip
def test_a_binary_accuracy_file_is_a_one_line_error(tmp_path, data):
    path = tmp_path / "top1.csv"
    path.write_bytes(data)
    with pytest.raises(RooflineError) as exc:
        load_accuracies(path)
    text = str(exc.value)
    assert text.startswith(f"accuracy file {path} is not a UTF-8 CSV text file") and "\n" not in text
    assert text.endswith("save it as CSV (UTF-8) with columns model,top1")


def test_duplicate_models_name_both_lines(tmp_path):
    path = tmp_path / "top1.csv"
    path.write_text("model,top1\nresnet50,80.4\nvgg16,71.6\n resnet50 ,79.0\n")
    with pytest.raises(RooflineError) as exc:
        load_accuracies(path)
    assert str(exc.value) == (f"{path}:4: model resnet50 is already on line 2; keep one top1 per model")


def test_names_are_stripped_and_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "top1.csv"
    path.write_bytes("\ufeffmodel,top1\n resnet50 , 80.4\n".encode())
    assert load_accuracies(path) == {"resnet50": 80.4}


def test_accuracies_of_models_not_in_the_survey_are_reported():
    accuracies = {"resnet18": 69.76, "vit_base": 81.1, "convnext_tiny": 82.1}
    s = survey([zoo.load("resnet18")], Target(V100, "fp16"), 8, accuracies=accuracies)
    assert s.entries[0].top1 == 69.76
    assert s.unmatched_accuracies == ("convnext_tiny", "vit_base")
    assert survey([zoo.load("resnet18")], Target(V100, "fp16"), 8).unmatched_accuracies == ()


def test_the_cli_warns_in_one_line_about_unmatched_accuracies(tmp_path, capsys):
    from roofline.cli.main import main

    path = tmp_path / "top1.csv"
    path.write_text("model,top1\nresnet18,69.76\nvit_base,81.1\nconvnext_tiny,82.1\n")
    assert main(["survey", "resnet18", "--batch", "8", "--accuracy", str(path), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["models"][0]["top1"] == 69.76
    assert err == (
        f"roofline: warning: {path} has models this survey does not, their accuracies are unused: "
        "convnext_tiny, vit_base\n"
    )


def test_batch_max_with_folding_uses_a_multiple_of_the_factor():
    s = survey(
        [zoo.load("efficientnet_b0"), zoo.load("resnet50")], Target(V100, "fp16"), "max", fold_factor=4
    )
    assert s.to_dict()["batch"] == "max"
    assert [e.folded is not None for e in s.entries] == [True, False]  # resnet50 is above the CMR
    for e in s.entries:
        fit = memory_fit(e.estimate.fused, Target(V100, "fp16"))
        if e.folded is not None:  # both sides at one image count that folds evenly
            assert e.estimate.batch % 4 == 0 and fit.max_batch - 4 < e.estimate.batch <= fit.max_batch
            assert e.folded.images == e.estimate.batch
        else:
            assert e.estimate.batch == fit.max_batch


def test_batch_max_with_folding_never_exceeds_memory():
    b = NetBuilder("big", (1, 3, 2048, 2048))
    x = b.conv(b.conv(b.input, 64, 3), 8, 3)
    b.linear(b.global_pool(x), 10)
    net, nano = b.network(), get_gpu("jetson-nano")
    fit = memory_fit(FusedNetwork.of(net), Target(nano, "fp16"))
    assert fit.max_batch == 3
    try:
        s = survey([net], Target(nano, "fp16"), "max", fold_factor=4)
    except RooflineError:
        return
    assert fit.bytes_at(s.entries[0].estimate.batch) <= nano.memory_bytes
