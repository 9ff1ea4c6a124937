"""`roofline validate`: JSON keys, the text report, the plot, subsets, and bad input (exit 2)."""

import json

import pytest

from roofline.cli.main import main
from roofline.perf.measured import packaged_tables
from unit_tests.helpers import cli_error

pytestmark = pytest.mark.analytic

HEADER = "model,infer_img_size,infer_samples_per_sec,infer_step_time,infer_batch_size\n"
# Zoo models at their stored resolution (no tracing), and one zoo model no timm trace can re-size.
ROWS = (
    "resnet50,224,3000,1,256\n"
    "resnext50_32x4d,224,2000,1,256\n"
    "efficientnet_b0,224,5000,1,256\n"
    "mobilenetv2_100,224,9000,1,256\n"
    "cifar_resnet56,224,100,1,256\n"
    "resnet18,oops,100,1,256\n"
)


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "benchmark-infer-amp-nchw-pt240-cu124-rtx4090-dynamo.csv"
    path.write_text(HEADER + ROWS)
    return path


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_json_output(capsys, table):
    out = json.loads(_run(capsys, ["validate", str(table), "--json"]))
    assert set(out) == {"tables", "overall"}
    (t,) = out["tables"]
    assert (t["gpu"], t["engine"], t["dtype"]) == ("rtx-4090", "torch-compile", "fp16")  # from the name
    assert [r["model"] for r in t["rows"]] == [
        "resnet50",
        "resnext50_32x4d",
        "efficientnet_b0",
        "mobilenetv2_100",
    ]
    assert t["stats"]["all"]["n"] == 4 and t["stats"]["transformer"]["n"] == 0
    assert set(t["stats"]["all"]) == {"n", "median_ratio", "mdape", "within_10", "within_15", "spearman"}
    assert [u["model"] for u in t["unresolved"]] == ["cifar_resnet56"]
    assert "32x32 only" in t["unresolved"][0]["reason"]
    assert t["problems"] == [f"{table}:7: infer_img_size 'oops' is not a positive integer"]
    assert out["overall"]["all"]["n"] == 4


def test_overrides_and_subsets(capsys, table):
    argv = ["validate", str(table), "--json", "--gpu", "a100", "--engine", "tensorrt", "--dtype", "bf16"]
    out = json.loads(_run(capsys, [*argv, "--models", "^res", "--limit", "1"]))
    (t,) = out["tables"]
    assert (t["gpu"], t["engine"], t["dtype"]) == ("a100-sxm4-40gb", "tensorrt", "bf16")
    assert [r["model"] for r in t["rows"]] == ["resnet50"]  # resnet50 and resnext50 match; the first is kept


def test_text_report_and_plot(capsys, table, tmp_path):
    plot = tmp_path / "validate.png"
    out = _run(capsys, ["validate", str(table), "--plot", str(plot)])
    assert out.startswith(f"== {table}: NVIDIA GeForce RTX 4090 (rtx-4090), torch-compile, fp16")
    for text in ("MdAPE %", "within 15 %", "Spearman", "furthest from the measurement", "resnext50_32x4d",
                 "bias by dominant kernel class", "unresolved (model@resolution), by reason: 1",
                 "cifar_resnet56@224", "skipped rows: 1", f"wrote {plot}"):  # fmt: skip
        assert text in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_packaged_table_by_its_file_name(capsys):
    name = next(iter(packaged_tables()))
    out = json.loads(_run(capsys, ["validate", name, "--models", "^no_such_model$", "--json"]))
    (t,) = out["tables"]
    assert t["path"].endswith(name) and t["rows"] == [] and t["stats"]["all"]["n"] == 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["validate", "{dir}/missing.csv"], "measured table {dir}/missing.csv does not exist"),
        (["validate", "{dir}/not-a-table.csv"], "{dir}/not-a-table.csv is not a measured throughput table"),
        (["validate", "{table}", "--gpu", "gtx-9999"], "unknown GPU"),
        (["validate", "{table}", "--engine", "tvm"], "unknown engine"),
        (["validate", "{table}", "--models", "("], "--models '(' is not a regular expression"),
        (["validate", "{dir}/mine.csv"], "mine.csv: the file does not name its GPU; pass --gpu"),
        (["validate", "{table}", "--limit", "0"], "--limit"),
        (["validate", "{table}", "--plot", "{dir}/out.pdf"], "must end in .png or .svg"),
        (["validate", "{table}", "--plot", "{dir}/no/such/dir/out.png"], "{dir}/no/such/dir"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, table, argv, message):
    (tmp_path / "not-a-table.csv").write_text("name,value\nresnet50,3\n")
    (tmp_path / "mine.csv").write_text(HEADER + ROWS)
    before = set(tmp_path.rglob("*"))
    fill = {"dir": str(tmp_path), "table": str(table)}
    err = cli_error(capsys, [a.format(**fill) for a in argv])
    assert message.format(**fill) in err
    assert set(tmp_path.rglob("*")) == before  # nothing written
