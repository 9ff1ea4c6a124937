"""CLI of issue 4: batch-sweep, fold, survey and ``--batch max``; JSON contracts and one-line errors."""

import json

import pytest

from roofline import FusedNetwork, get_gpu
from roofline.analysis.batch import memory_fit
from roofline.analysis.target import Target
from roofline.cli.main import main
from roofline.model import zoo
from roofline.model.builder import NetBuilder
from unit_tests.helpers import cli_error

pytestmark = pytest.mark.analytic

V100 = get_gpu("v100")
POINT_KEYS = {"batch", "arithmetic_intensity", "throughput_img_s", "utilization"}


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _max_batch(name, gpu="v100", dtype="fp16"):
    return memory_fit(FusedNetwork.of(zoo.load(name)), Target.of(gpu, dtype)).max_batch


# --- batch-sweep ------------------------------------------------------------------------------------------


def test_batch_sweep_json(capsys):
    code, out, err = run(capsys, "batch-sweep", "resnet50", "--json")
    assert code == 0 and err == ""
    d = json.loads(out)
    assert {"model", "gpu", "dtype", "max_batch", "ai_limit", "cmr_crossing_batch", "points"} <= set(d)
    assert (d["model"], d["gpu"], d["dtype"]) == ("resnet50", "v100-sxm2", "fp16")
    assert d["max_batch"] == _max_batch("resnet50")
    assert d["cmr_crossing_batch"] == 25
    batches = [p["batch"] for p in d["points"]]
    assert batches[0] == 1 and batches[-1] == d["max_batch"]
    for p in d["points"]:
        assert POINT_KEYS <= set(p)
        assert p["arithmetic_intensity"] < d["ai_limit"]
    assert "layers" not in d


def test_batch_sweep_json_with_layers(capsys):
    code, out, _ = run(capsys, "batch-sweep", "cifar_resnet56", "--gpu", "t4", "--json", "--layers")
    d = json.loads(out)
    assert code == 0 and d["gpu"] == "t4" and d["layers"]
    assert all(len(p["layer_arithmetic_intensity"]) == len(d["layers"]) for p in d["points"])


def test_batch_sweep_never_crossing(capsys):
    code, out, _ = run(capsys, "batch-sweep", "efficientnet_b0", "--json")
    d = json.loads(out)
    assert code == 0 and d["cmr_crossing_batch"] is None and d["ai_limit"] < d["cmr"]


def test_batch_sweep_text(capsys):
    code, out, _ = run(capsys, "batch-sweep", "efficientnet_b0")
    assert code == 0
    assert f"largest batch that fits: {_max_batch('efficientnet_b0')}" in out
    assert "AI crosses the CMR at: never" in out
    code, out, _ = run(capsys, "batch-sweep", "resnet50")
    assert code == 0 and "largest batch that fits" in out and "AI crosses the CMR at: batch 25" in out


# --- fold -------------------------------------------------------------------------------------------------


def test_fold_json(capsys, tmp_path):
    code, out, err = run(capsys, "fold", "resnet50", "--factor", "4", "--gpu", "v100", "--json")
    assert code == 0 and err == ""
    d = json.loads(out)
    assert {"model", "factor", "gpu", "dtype", "batch", "before", "after", "ratios"} <= set(d)
    assert (d["model"], d["factor"], d["gpu"], d["dtype"], d["batch"]) == (
        "resnet50",
        4,
        "v100-sxm2",
        "fp16",
        256,
    )
    assert set(d["ratios"]) == {"flops", "bytes", "arithmetic_intensity", "throughput_img_s", "utilization"}
    assert 0.9 <= d["ratios"]["flops"] <= 1.1 and 1.6 <= d["ratios"]["arithmetic_intensity"] <= 2.4
    before, after = d["before"], d["after"]
    assert after["images_per_sample"] == 4 and after["batch"] == 64 and before["batch"] == 256
    ratio = after["predicted"]["throughput_img_s"] / before["predicted"]["throughput_img_s"]
    assert d["ratios"]["throughput_img_s"] == pytest.approx(ratio, rel=1e-12)
    assert {e["layer"] for e in d["exceptions"]} == {"conv1", "fc"}
    # Same keys as one `analyze --json --summary` entry.
    code, out, _ = run(capsys, "analyze", "resnet50", "--json", "--summary")
    entry = json.loads(out)[0]
    assert set(before) == set(after) == set(entry)
    assert before["predicted"] == entry["predicted"]


def test_fold_out_writes_an_analyzable_network(capsys, tmp_path):
    path = tmp_path / "f.json"
    code, out, _ = run(capsys, "fold", "resnet50", "--factor", "4", "--out", str(path), "--json")
    assert code == 0
    after = json.loads(out)["after"]
    code, out, _ = run(capsys, "analyze", str(path), "--batch", "64", "--json", "--summary")
    assert code == 0
    back = json.loads(out)[0]
    assert back["images_per_sample"] == 4 and back["batch"] == 64
    assert back["predicted"]["throughput_img_s"] == pytest.approx(after["predicted"]["throughput_img_s"])
    assert back["flops_per_image"] == pytest.approx(after["flops_per_image"])


def test_fold_text_and_batch_max(capsys, tmp_path):
    path = tmp_path / "f.json"
    code, out, _ = run(capsys, "fold", "efficientnet_b0", "--batch", "max", "--out", str(path))
    assert code == 0
    assert "depthwise conv" in out and f"wrote {path}" in out and path.exists()
    n = _max_batch("efficientnet_b0")
    assert f"{n - n % 4} images per batch" in out


# --- --batch max ------------------------------------------------------------------------------------------


def test_analyze_batch_max(capsys):
    code, out, _ = run(
        capsys, "analyze", "resnet50", "efficientnet_b0", "--batch", "max", "--json", "--summary"
    )
    assert code == 0
    assert [m["batch"] for m in json.loads(out)] == [_max_batch("resnet50"), _max_batch("efficientnet_b0")]
    code, out, _ = run(capsys, "analyze", "resnet50", "--batch", "max", "--gpu", "t4", "--dtype", "fp32",
                       "--json", "--summary")  # fmt: skip
    assert json.loads(out)[0]["batch"] == _max_batch("resnet50", "t4", "fp32")


def test_staircase_and_optimize_widths_accept_batch_max(capsys):
    code, out, _ = run(capsys, "staircase", "resnet50", "--layer", "fc", "--batch", "max", "--widths",
                       "8:64:8", "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["batch"] == _max_batch("resnet50")
    code, out, _ = run(capsys, "optimize-widths", "cifar_vgg16", "--batch", "max", "--json")
    assert code == 0 and json.loads(out)["batch"] == _max_batch("cifar_vgg16")


# --- survey -----------------------------------------------------------------------------------------------

SURVEY = ["resnet18", "resnet50", "efficientnet_b0"]


def test_survey_out_json(capsys, tmp_path):
    out_dir = tmp_path / "survey"
    code, out, _ = run(capsys, "survey", *SURVEY, "--fold", "4", "--out", str(out_dir), "--json")
    assert code == 0
    d = json.loads(out)
    assert [m["model"] for m in d["models"]] == SURVEY and d["fold_factor"] == 4
    assert d["folded_frontier"]
    names = {p.name for p in out_dir.iterdir()}
    assert names == {"roofline.png", "roofline.svg", "pareto.png", "pareto.svg", "survey.csv", "survey.json",
                     "summary.md"}  # fmt: skip
    assert json.loads((out_dir / "survey.json").read_text()) == d
    assert (out_dir / "pareto.png").read_bytes()[:4] == b"\x89PNG"


def test_survey_table(capsys, tmp_path):
    top1 = tmp_path / "top1.csv"
    top1.write_text("model,top1\nresnet18,69.76\nresnet50,80.4\n")
    code, out, _ = run(capsys, "survey", *SURVEY, "--batch", "64", "--accuracy", str(top1))
    assert code == 0
    for m in SURVEY:
        assert m in out
    assert "top-1 %" in out and "wrote" not in out
    assert list(tmp_path.iterdir()) == [top1]


# --- errors: exit 2, one line, nothing written ------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["fold", "resnet50", "--factor", "4", "--batch", "250", "--out", "f.json"], "--batch 248"),
        (["fold", "resnet50", "--factor", "0"], "expected an integer from 1 to 64"),
        (["fold", "resnet50", "--batch", "0"], "expected an integer from 1 to"),
        (["fold", "resnet50", "--batch", "maximum"], "'maximum'"),
        (["analyze", "resnet50", "--batch", "maximum"], "'maximum'"),
        (["batch-sweep", "resnet50", "--batch", "-1"], "unrecognized arguments: --batch"),
        (["survey", "resnet18", "--out", "existing_file"], "exists and is not a directory"),
        (["survey", "resnet18", "--accuracy", "missing.csv"], "cannot read accuracy file missing.csv"),
        (["survey", "resnet18", "--gpu", "nosuchgpu"], "unknown GPU 'nosuchgpu'"),
        (["survey", "resnet18", "--fold", "0"], "expected an integer from 1 to 64"),
        (["survey", "resnet18", "--tile", "64x64"], "drop --tile"),
        (["batch-sweep", "nosuchmodel"], "unknown model 'nosuchmodel'"),
        (["fold", "nosuchmodel"], "unknown model 'nosuchmodel'"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, tmp_path, monkeypatch, argv, fragment):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "existing_file").write_text("keep")
    assert fragment in cli_error(capsys, argv)
    assert [p.name for p in tmp_path.iterdir()] == ["existing_file"]
    assert (tmp_path / "existing_file").read_text() == "keep"


def test_model_that_does_not_fit_is_one_line(capsys, tmp_path):
    b = NetBuilder("huge", (1, 1 << 17, 1, 1))
    b.linear(b.input, 1 << 16, bias=False)
    path = tmp_path / "huge.json"
    path.write_text(zoo.dumps(b.network()))
    code, out, err = run(capsys, "analyze", str(path), "--gpu", "t4", "--batch", "max", "--summary")
    assert code == 2 and out == "" and err.count("\n") == 1 and "does not fit on NVIDIA T4" in err
