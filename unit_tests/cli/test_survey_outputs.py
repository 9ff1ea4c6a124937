"""The survey's output directory: survey.csv/json, the figures and summary.md, and what may be overwritten."""

import json

import pytest

from roofline import RooflineError, get_gpu
from roofline.analysis.target import Target
from roofline.cli.survey_outputs import check_out_dir, markdown, write_outputs
from roofline.model import zoo
from roofline.studies.survey import survey
from unit_tests.helpers import SURVEY_MODELS as MODELS

pytestmark = pytest.mark.analytic

V100 = get_gpu("v100")
PNG = b"\x89PNG\r\n\x1a\n"


def test_markdown(survey_result):
    text = markdown(survey_result)
    assert V100.name in text and "fp16" in text
    frontier_line = next(line for line in text.splitlines() if line.startswith("- Throughput-utilization"))
    for i in survey_result.frontier():
        assert survey_result.entries[i].name in frontier_line
    for m in MODELS:
        assert f"| {m} |" in text
    assert "Folding f=4" in text


def test_markdown_lists_accuracy_frontiers(survey_with_top1):
    assert "Accuracy-throughput frontier" in markdown(survey_with_top1)


def test_write_outputs(tmp_path, survey_with_top1):
    out = tmp_path / "new" / "dir"
    written = write_outputs(survey_with_top1, out)
    names = {p.name for p in written}
    expected = {
        f"{stem}{suffix}" for stem in ("roofline", "pareto", "accuracy") for suffix in (".png", ".svg")
    }
    assert names == expected | {"survey.csv", "survey.json", "summary.md"}
    assert {p.name for p in out.iterdir()} == names  # nothing else, no temporary files
    for p in written:
        assert p.parent == out and p.stat().st_size > 0
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == PNG
        if p.suffix == ".svg":
            assert "<svg" in p.read_text()
    assert json.loads((out / "survey.json").read_text()) == json.loads(json.dumps(survey_with_top1.to_dict()))
    assert (out / "survey.csv").read_text() == survey_with_top1.csv_text()
    summary = (out / "summary.md").read_text()
    assert "![pareto](pareto.png)" in summary and "![accuracy](accuracy.png)" in summary


def test_write_outputs_without_accuracies_draws_no_accuracy_figure(tmp_path):
    s = survey([zoo.load(m) for m in MODELS[:3]], Target(V100, "fp16"), 64)
    names = {p.name for p in write_outputs(s, tmp_path / "out")}
    assert {"roofline.png", "pareto.svg", "survey.csv"} <= names
    assert not any(n.startswith("accuracy") for n in names)


def test_out_dir_must_not_be_a_file(tmp_path, survey_result):
    existing = tmp_path / "a_file"
    existing.write_text("keep me")
    assert check_out_dir(tmp_path, replace=True) == tmp_path
    assert check_out_dir(tmp_path / "not_yet") == tmp_path / "not_yet"
    assert check_out_dir(tmp_path / "not" / "yet") == tmp_path / "not" / "yet"
    with pytest.raises(RooflineError, match="exists and is not a directory"):
        check_out_dir(existing)
    with pytest.raises(RooflineError, match="exists and is not a directory"):
        write_outputs(survey_result, existing, replace=True)
    assert existing.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_existing_out_dir_is_refused_or_replaced_whole(tmp_path, survey_result):
    out = tmp_path / "out"
    out.mkdir()
    (out / "accuracy.png").write_text("an older run's figure")
    with pytest.raises(RooflineError, match="already exists; pass --force to replace it whole"):
        check_out_dir(out)
    with pytest.raises(RooflineError, match="already exists"):
        write_outputs(survey_result, out)
    assert [p.name for p in out.iterdir()] == ["accuracy.png"]
    written = write_outputs(survey_result, out, replace=True)
    assert {p.name for p in out.iterdir()} == {p.name for p in written}  # the old figure is gone
    assert "accuracy.png" not in {p.name for p in written}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
