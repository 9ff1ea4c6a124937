"""The CLI contract: JSON keys other tools parse, and one-line errors with exit 2."""

import json
import subprocess
import sys

import pytest

from roofline.cli.main import main
from unit_tests.helpers import cli_error

pytestmark = pytest.mark.analytic


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_analyze_json_contract(capsys):
    code, out, _ = run(capsys, "analyze", "resnet50", "mobilenetv2_100", "--gpu", "a100", "--dtype", "bf16",
                       "--batch", "64", "--json")  # fmt: skip
    assert code == 0
    models = json.loads(out)
    assert [m["model"] for m in models] == ["resnet50", "mobilenetv2_100"]
    for m in models:
        assert (m["gpu"], m["dtype"], m["batch"]) == ("a100-sxm4-40gb", "bf16", 64)
        assert m["resolution"] == 224
        assert m["predicted"]["throughput_img_s"] > 0
        assert m["layers"] and all(layer["time_s"] > 0 for layer in m["layers"])


def test_analyze_table_and_summary(capsys):
    code, out, _ = run(capsys, "analyze", "resnet18", "--batch", "8")
    assert code == 0 and "conv3x3+bn+add+relu" in out and "datasheet peak" in out
    code, out, _ = run(capsys, "analyze", "--zoo", "--summary")
    assert code == 0 and "cifar_resnet56" in out and "efficientnet_b0" in out


def test_gpus_and_zoo_listings(capsys):
    code, out, _ = run(capsys, "gpus", "--json")
    assert code == 0 and any(g["key"] == "h200" for g in json.loads(out))
    code, out, _ = run(capsys, "zoo", "--json")
    assert code == 0 and len(json.loads(out)) == 40


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["analyze", "resnet5"], "unknown model 'resnet5': did you mean resnet50"),
        (["analyze", "resnet50", "--gpu", "k80"], "unknown GPU 'k80'"),
        (["analyze", "resnet50", "--dtype", "fp64"], "invalid choice: 'fp64'"),
        (["analyze", "resnet50", "--dtype", "tf32"], "no datasheet tf32 peak"),
        (["analyze", "resnet50", "--batch", "0"], "expected an integer from 1 to"),
        (["analyze", "resnet50", "--batch", "-2"], "expected an integer from 1 to"),
        (["analyze"], "name at least one MODEL"),
        (["analyze", "broken.onnx"], "broken.onnx"),
        (["analyze", "missing.json"], "does not exist"),
        (["analyze", "resnet50", "--calibration", "nope.json"], "does not exist"),
        (["analyze", "resnet50", "--tile", "128by64"], "tile must look like MxN"),
        (["analyze", "resnet50", "--tile", "4096x1"], "pass --blocks-per-sm"),
        (["analyze", "resnet50", "--no-waves", "--tile", "64x64"], "needs the wave model"),
        (["analyze", "resnet50", "--latency-table", "nope.json"], "nope.json"),
        (["staircase", "resnet50", "--layer", "layer9.conv"], "has no layer 'layer9.conv'"),
        (["staircase", "resnet50", "--layer", "maxpool"], "dense conv or linear"),
        (["staircase", "resnet50", "--layer", "fc", "--widths", "9:3"], "expected A:B[:STEP]"),
        (["staircase", "resnet50", "--layer", "fc", "--plot", "out.pdf"], "must end in .png or .svg"),
        (["staircase", "resnet50", "--layer", "fc", "--plot", "no/such/dir/a.png"], "does not exist"),
        (["optimize-widths", "cifar_vgg16", "--tau", "0"], "--tau: expected a number in (0, 1]"),
        (["optimize-widths", "cifar_vgg16", "--mode", "speed"], "invalid choice"),
        (["latency-table", "resnet18", "--out", "t.json", "--merge", "broken.onnx"], "broken.onnx"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, tmp_path, monkeypatch, argv, fragment):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.onnx").write_bytes(b"\x00not a protobuf\xff" * 10)
    assert fragment in cli_error(capsys, argv)


def test_corrupt_ir_file(capsys, tmp_path):
    bad = tmp_path / "net.json"
    bad.write_text('{"format": "something-else"}')
    code, out, err = run(capsys, "analyze", str(bad))
    assert code == 2 and "not a valid roofline IR file" in err and err.count("\n") == 1


def test_console_script_exit_code():
    proc = subprocess.run(
        [sys.executable, "-m", "roofline.cli", "analyze", "nope"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_import_needs_neither_torch_nor_onnx():
    """Nor the slow imports (scipy.stats, matplotlib) that only some commands use."""
    heavy = "{'torch', 'onnx', 'timm', 'scipy.stats', 'matplotlib'}"
    code = f"import sys, roofline, roofline.cli.main; print(sorted({heavy} & set(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_staircase_json_and_plot(capsys, tmp_path):
    plot = tmp_path / "stairs.png"
    code, out, _ = run(capsys, "staircase", "resnet50", "--layer", "layer3.0.conv2", "--batch", "8",
                       "--widths", "8:512:8", "--plot", str(plot), "--json")  # fmt: skip
    assert code == 0
    d = json.loads(out)
    assert d["width"] == 256 and len(d["points"]) == 64
    assert d["edges"] and set(d["optimal_widths"]) <= {p["width"] for p in d["points"]}
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["stairs.png"]  # no temp file left behind


def test_optimize_widths_writes_an_analyzable_network(capsys, tmp_path):
    out_ir = tmp_path / "vgg.json"
    code, out, _ = run(
        capsys, "optimize-widths", "cifar_vgg16", "--batch", "64", "--out", str(out_ir), "--json"
    )
    assert code == 0
    d = json.loads(out)
    assert d["target_met"] and d["latency_after_s"] <= 0.95 * d["latency_before_s"]
    code, out, _ = run(capsys, "analyze", str(out_ir), "--batch", "64", "--json", "--summary")
    assert json.loads(out)[0]["params"] == d["params_after"]


def test_latency_table_round_trip_through_analyze(capsys, tmp_path):
    table = tmp_path / "t.json"
    assert run(capsys, "latency-table", "resnet18", "--batch", "8", "--out", str(table))[0] == 0
    code, out, _ = run(capsys, "analyze", "resnet18", "--batch", "8", "--latency-table", str(table), "--json")
    d = json.loads(out)[0]
    assert d["latency_table"]["measured_layers"] == 0
    assert d["latency_table"]["modelled_layers"] == d["kernels"]
    assert d["latency_table"]["latency_s"] == pytest.approx(d["predicted"]["latency_s"], rel=1e-12)
