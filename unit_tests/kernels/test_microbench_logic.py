"""The GPU-free parts of the calibration microbenchmarks: dtype support per CC, FLOP/byte counts, the
calibration document and its round trip through ``roofline``, the sweep's prediction, which kernels a
measured latency table rebuilds, and the calibrate CLI's contract on a machine without a GPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernels import calibrate, microbench
from kernels.calibrate import calibration_document, summary
from kernels.microbench import Result, SweepPoint, copy_bytes, gemm_dtypes, gemm_flops
from kernels.timing import Measurement
from roofline import RooflineError, evaluate, get_gpu
from roofline.analysis.predict import FusedNetwork
from roofline.analysis.target import Target
from roofline.cli.main import main as roofline_main
from roofline.files import write_text
from roofline.hardware.calibration import achievable_roof, load_calibration
from roofline.model import zoo
from roofline.model.fusion import ACTIVATIONS
from roofline.model.ir import Conv, Linear, scale_batch

pytestmark = pytest.mark.analytic

REPO = Path(__file__).resolve().parents[2]
ENVIRONMENT = {"host": "testhost", "date": "2026-01-02T03:04:05+00:00", "torch": "2.x", "cuda": "12.x"}


def measurement(rate: float, invalid_reason: str | None = None) -> Measurement:
    """Test data: three windows whose median is ``rate``."""
    samples = (rate * 0.99, rate, rate * 1.01)
    return Measurement(
        samples=samples, host_samples=samples, launch_s=1e-3, launches_per_window=100, items_per_launch=1,
        windows_run=3, gpu_busy=0.99, enqueue_bound=False, invalid_reason=invalid_reason, warmup_s=2.0,
    )  # fmt: skip


def gemm_result(gpu, dtype: str, ratio: float, size: int = 8192, invalid: str | None = None) -> Result:
    peak = gpu.peak_flops_s[dtype]
    return Result(f"gemm-{dtype}", dtype, measurement(ratio * peak, invalid), "flop/s", peak, {"size": size})


def copy_result(gpu, ratio: float) -> Result:
    bw = gpu.dram_bandwidth_bytes_s
    return Result("copy", "uint8", measurement(ratio * bw), "B/s", bw, {"nbytes": 1 << 30})


@pytest.fixture
def h100():
    return get_gpu("h100")


@pytest.fixture
def document(h100):
    gemms = [gemm_result(h100, "fp16", 0.85), gemm_result(h100, "bf16", 0.70, size=16384, invalid="unstable")]
    return calibration_document(h100, gemms, copy_result(h100, 0.90), ENVIRONMENT)


@pytest.fixture
def calibration_file(tmp_path, document):
    path = tmp_path / "calibration-h100-sxm.json"
    write_text(path, json.dumps(document, indent=1) + "\n")
    return path


# ------------------------------------------------------------------------------------------- pure helpers
@pytest.mark.parametrize(
    ("cc", "expected"),
    [
        ("7.0", {"fp32", "fp16"}),
        ("7.5", {"fp32", "fp16"}),
        ("8.0", {"fp32", "fp16", "bf16", "tf32"}),
        ("8.6", {"fp32", "fp16", "bf16", "tf32"}),
        ("8.9", {"fp32", "fp16", "bf16", "tf32", "fp8"}),
        ("9.0", {"fp32", "fp16", "bf16", "tf32", "fp8"}),
        ("10.0", {"fp32", "fp16", "bf16", "tf32", "fp8"}),
        ("6.1", {"fp32"}),  # GP102: FP16 at 1/64 rate
        ("5.3", {"fp32", "fp16"}),  # Jetson Nano: double-rate FP16
    ],
)
def test_gemm_dtypes_by_compute_capability(cc, expected):
    assert set(gemm_dtypes(cc)) == expected


def test_gemm_dtypes_rejects_a_malformed_compute_capability():
    for bad in ("9", "nine.0", "", "8.0.1"):
        with pytest.raises(RooflineError, match="major.minor"):
            gemm_dtypes(bad)


def test_database_gpus_list_every_dtype_their_cc_runs_fast():
    # The default --dtypes is gemm_dtypes(cc) & datasheet peaks: on these GPUs nothing may drop out.
    for key, wanted in (("v100", {"fp16", "fp32"}), ("a100-sxm4-80gb", {"fp16", "bf16", "tf32", "fp32"}),
                        ("h100", {"fp16", "bf16", "tf32", "fp32", "fp8"})):  # fmt: skip
        gpu = get_gpu(key)
        assert calibrate._select_dtypes(None, gpu, gpu.compute_capability) == tuple(
            d for d in gemm_dtypes(gpu.compute_capability) if d in wanted
        )


def test_select_dtypes_refuses_a_dtype_without_a_fast_path():
    v100 = get_gpu("v100")
    with pytest.raises(RooflineError, match="bf16 has no fast GEMM on CC 7.0; this GPU runs: fp16, fp32"):
        calibrate._select_dtypes(("fp16", "bf16"), v100, "7.0")


def test_flop_and_byte_counting():
    assert gemm_flops(2, 3, 4) == 48  # 2 x MACs; MACs = 2*3*4
    assert gemm_flops(8192, 8192, 8192) == 2 * 8192**3
    assert copy_bytes(1 << 30) == 2 << 30  # read + write
    for bad in (0, -1, 1.5, True):
        with pytest.raises(RooflineError, match="positive integer"):
            copy_bytes(bad)
        with pytest.raises(RooflineError, match="GEMM dimension k"):
            gemm_flops(8, 8, bad)


def test_result_ratio_and_frozen_details(h100):
    result = gemm_result(h100, "fp16", 0.8)
    assert result.rate == pytest.approx(0.8 * 989.4e12)
    assert result.ratio == pytest.approx(0.8)
    assert result.stable
    with pytest.raises(TypeError):
        result.details["size"] = 1  # type: ignore[index]
    unknown = Result("gemm-fp16", "fp16", measurement(1e12), "flop/s", None)
    assert unknown.ratio is None and unknown.to_dict()["ratio_to_datasheet"] is None


def test_sweep_point_unpacks_as_width_measured_predicted():
    width, measured_s, predicted_s = SweepPoint(64, 2e-5, 1.5e-5, None)
    assert (width, measured_s, predicted_s) == (64, 2e-5, 1.5e-5)


# ------------------------------------------------------------------------------------ calibration document
def test_calibration_document_round_trips_through_load_calibration(h100, document, calibration_file):
    assert document["format"] == "roofline-calibration" and document["version"] == 1
    assert document["gpu"] == "h100-sxm"
    assert document["source"] == "kernels.calibrate on testhost, 2026-01-02T03:04:05+00:00"
    loaded = load_calibration(calibration_file, h100)
    assert dict(loaded.peak_flops_s) == pytest.approx({"fp16": 0.85 * 989.4e12, "bf16": 0.70 * 989.4e12})
    assert loaded.dram_bytes_s == pytest.approx(0.90 * h100.dram_bandwidth_bytes_s)
    assert loaded.gpu == "h100-sxm"
    roof = achievable_roof(h100, "fp16", loaded)
    assert roof.flops_s == pytest.approx(0.85 * 989.4e12)
    assert roof.dram_bytes_s == pytest.approx(0.90 * h100.dram_bandwidth_bytes_s)
    assert roof.source == f"calibration: {document['source']}"
    # A dtype the file did not measure falls back to the datasheet x default efficiencies.
    assert "calibration" not in achievable_roof(h100, "tf32", loaded).source


def test_calibration_document_records_ratios_targets_and_measurements(document):
    assert document["ratio_to_datasheet"]["peak_flops_s"] == pytest.approx({"fp16": 0.85, "bf16": 0.70})
    assert document["ratio_to_datasheet"]["dram_bytes_s"] == pytest.approx(0.90)
    assert document["targets"]["met"] == {"dram_bytes_s": True, "peak_flops_s": {"fp16": True, "bf16": False}}
    assert document["gemm_size"] == {"fp16": 8192, "bf16": 16384}
    assert document["datasheet"]["peak_flops_s"]["fp16"] == 989.4e12
    bf16 = document["measurements"]["gemm-bf16"]
    assert bf16["stable"] is False and bf16["measurement"]["invalid_reason"] == "unstable"
    assert len(document["measurements"]["copy"]["measurement"]["samples"]) == 3
    assert document["environment"]["torch"] == "2.x"
    assert json.loads(json.dumps(document)) == document  # plain JSON, nothing lost


def test_calibration_document_belongs_to_its_gpu(calibration_file):
    with pytest.raises(RooflineError, match="measured on h100-sxm, not a100-sxm4-80gb"):
        load_calibration(calibration_file, get_gpu("a100-sxm4-80gb"))


def test_calibration_document_rejects_inconsistent_results(h100):
    copy = copy_result(h100, 0.9)
    with pytest.raises(RooflineError, match="two GEMM results for fp16"):
        calibration_document(h100, [gemm_result(h100, "fp16", 0.8)] * 2, copy, ENVIRONMENT)
    with pytest.raises(RooflineError, match="not B/s"):
        calibration_document(h100, [], gemm_result(h100, "fp16", 0.8), ENVIRONMENT)
    with pytest.raises(RooflineError, match="not a GEMM result"):
        calibration_document(h100, [copy], copy, ENVIRONMENT)
    with pytest.raises(RooflineError, match="positive rates"):
        calibration_document(h100, [gemm_result(h100, "fp16", 0.0)], copy, ENVIRONMENT)


def test_summary_shows_percentages_and_verdicts(document):
    text = summary(document)
    fp16 = next(line for line in text.splitlines() if line.startswith("fp16"))
    bf16 = next(line for line in text.splitlines() if line.startswith("bf16"))
    assert "85.0%" in fp16 and "met" in fp16 and "989.4" in fp16 and "841.0" in fp16
    assert "70.0%" in bf16 and "MISSED" in bf16 and bf16.rstrip().endswith("NO")
    copy = next(line for line in text.splitlines() if line.startswith("copy"))
    assert "90.0%" in copy and "3350" in copy
    assert "below target: bf16" in text


def test_analyze_uses_the_calibration_as_the_achievable_roof(calibration_file, document, capsys):
    assert roofline_main(["analyze", "resnet50", "--gpu", "h100", "--json"]) == 0
    default = json.loads(capsys.readouterr().out)[0]
    argv = ["analyze", "resnet50", "--gpu", "h100", "--calibration", str(calibration_file), "--json"]
    assert roofline_main(argv) == 0
    calibrated = json.loads(capsys.readouterr().out)[0]
    roof = calibrated["model_roof"]
    assert roof["source"] == f"calibration: {document['source']}"
    assert roof["flops_s"] == pytest.approx(document["peak_flops_s"]["fp16"])
    assert roof["dram_bytes_s"] == pytest.approx(document["dram_bytes_s"])
    # 85% / 90% measured beats the uncalibrated 80% / 85% defaults, so the prediction is faster.
    assert "calibration" not in default["model_roof"]["source"]
    assert calibrated["predicted"]["latency_s"] < default["predicted"]["latency_s"]


# ------------------------------------------------------------------------------------------ the CLI, no GPU
def run_calibrate(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    # An empty CUDA_VISIBLE_DEVICES hides any GPU, so this checks the no-GPU path on every machine.
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, "-m", "kernels.calibrate", *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def test_calibrate_without_a_gpu_exits_2_with_one_line_and_writes_nothing(tmp_path):
    before = set(REPO.glob("calibration-*.json"))
    done = run_calibrate()  # default output: calibration-<gpu>.json in the current directory
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == f"calibrate: error: {calibrate.NO_GPU}\n"
    assert set(REPO.glob("calibration-*.json")) == before
    out = tmp_path / "cal.json"
    done = run_calibrate("--out", str(out), "--dtypes", "fp16", "--quick")
    assert (done.returncode, done.stderr.count("\n")) == (2, 1)
    assert "no CUDA GPU visible" in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dtypes", "fp16,fp64"], "unknown dtype fp64: choose from fp32, tf32, fp16, bf16, int8, fp8"),
        (["--device", "-1"], "expected a device index >= 0"),
        (["--out", "{missing}/cal.json"], "does not exist; create it or write elsewhere"),
        (["--out", "{tmp}"], "is a directory; name a file"),
    ],
)
def test_calibrate_bad_input_is_one_line_exit_2(argv, message, tmp_path, capsys):
    argv = [a.format(missing=tmp_path / "missing", tmp=tmp_path) for a in argv]
    try:
        code = calibrate.main(argv)
    except SystemExit as exc:  # argparse errors exit from inside parse_args
        code = exc.code
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.startswith("calibrate: error: ") and err.count("\n") == 1
    assert message in err
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------ conv sweep and latency tables
def test_predicted_sweep_sorts_widths_and_agrees_with_evaluate():
    h100 = get_gpu("h100")
    latency = microbench.predicted_sweep(Target(h100, "fp16"), 32, [128, 64, 16, 64])
    assert latency.shape == (3,)  # 16, 64, 128
    alone = evaluate(microbench.sweep_network(width=64), Target(h100, "fp16"), 32)
    assert latency[1] == pytest.approx(alone.time_s[0])  # the staircase at a width = the layer's estimate
    assert latency[0] <= latency[1] <= latency[2]
    with pytest.raises(RooflineError, match="every width must be a positive integer"):
        microbench.predicted_sweep(Target(h100, "fp16"), 32, [64, 0])
    with pytest.raises(RooflineError, match="kernel must be odd"):
        microbench.sweep_network(kernel=2)


def test_sweep_network_takes_groups():
    grouped = microbench.sweep_network(in_channels=64, width=128, groups=32).layers[0]
    assert grouped.groups == 32 and grouped.weight_shapes() == ((128, 2, 3, 3),)
    assert microbench.sweep_network(in_channels=64, width=64, groups=64).layers[0].depthwise
    with pytest.raises(RooflineError, match="groups = 3 must divide both channel counts"):
        microbench.sweep_network(in_channels=64, width=64, groups=3)


def test_torch_activations_cover_every_fused_activation():
    assert microbench.TORCH_ACTIVATIONS == ACTIVATIONS


def test_conv_and_linear_kernels_are_measurable_and_the_rest_stay_predicted():
    for name in ("resnet50", "mobilenetv2_100", "efficientnet_b0"):
        for kernel in FusedNetwork.of(zoo.load(name)).kernels:
            reason = microbench.unmeasurable_reason(kernel)
            if isinstance(kernel.anchor, (Conv, Linear)):
                assert reason is None, (name, kernel.describe())
            else:
                assert reason is not None and kernel.anchor.op in reason


def test_measured_latency_table_refuses_a_dtype_it_cannot_run():
    with pytest.raises(RooflineError, match="runs fp16, bf16, tf32, fp32, not int8"):
        microbench.measured_latency_table("resnet18", Target.of("h100", "int8"))


@pytest.mark.torch
def test_kernel_program_rebuilds_each_kernel_with_its_output_shape():
    torch = pytest.importorskip("torch")
    fused = FusedNetwork.of(zoo.load("resnet18"))
    seen = set()
    for kernel in fused.kernels:
        if microbench.unmeasurable_reason(kernel) is not None or kernel.describe() in seen:
            continue
        seen.add(kernel.describe())
        program = microbench.kernel_program(kernel, 2, "fp32", torch.device("cpu"))
        with torch.inference_mode():
            out = program()
        assert tuple(out.shape) == scale_batch(kernel.output_shape, 2, 1), kernel.describe()
        if kernel.describe().endswith("relu"):
            assert float(out.min()) >= 0.0
    assert {"conv7x7+bn+relu", "conv3x3+bn+relu", "conv3x3+bn+add+relu", "linear"} <= seen
