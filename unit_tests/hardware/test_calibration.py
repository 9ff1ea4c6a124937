"""Calibration files and the achievable roof: a measured rate replaces the default efficiencies."""

import json

import pytest

from roofline import RooflineError, get_gpu
from roofline.hardware.calibration import achievable_roof, load_calibration

pytestmark = pytest.mark.analytic


def write(tmp_path, data):
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


CAL = {"format": "roofline-calibration", "version": 1, "gpu": "V100", "source": "test",
       "dram_bytes_s": 8.0e11, "peak_flops_s": {"fp16": 1.0e14}}  # fmt: skip


def test_calibration_overrides_the_achievable_roof(tmp_path):
    gpu = get_gpu("v100")
    cal = load_calibration(write(tmp_path, CAL), gpu)
    roof = achievable_roof(gpu, "fp16", cal)
    assert (roof.flops_s, roof.dram_bytes_s) == (1.0e14, 8.0e11)
    assert roof.source == "calibration: test"
    # A dtype the calibration did not measure falls back to the default efficiencies.
    assert achievable_roof(gpu, "fp32", cal).source.startswith("datasheet x volta efficiencies")


@pytest.mark.parametrize(
    "data, match",
    [("{not json", "not valid JSON"), ({"format": "other"}, "not a roofline-calibration"),
     ({**CAL, "gpu": "a100"}, "gpu says the file was measured on a100-sxm4-40gb, not v100-sxm2; pass a"),
     ({**CAL, "gpu": "k80"}, "gpu 'k80' is not in the GPU database"),
     ({**CAL, "gpu": 7}, "gpu must be a non-empty string, got 7"),
     ({**CAL, "dram_bytes_s": -1}, "dram_bytes_s must be positive, got -1"),
     ({**CAL, "dram_bytes_s": "fast"}, "dram_bytes_s must be a finite number"),
     ({**CAL, "peak_flops_s": {"fp16": 0}}, r"peak_flops_s.fp16 must be positive"),
     ({**CAL, "peak_flops_s": [1.0e14]}, "peak_flops_s must be an object, got a list"),
     ({**CAL, "peak_flops_s": {"fp64": 1.0e13}}, "peak_flops_s.fp64 is not a dtype: use one of fp32, tf32"),
     ({**CAL, "peak_flops_s": {"bf16": 1.0e14}}, "peak_flops_s.bf16 has no datasheet figure for"),
     ({k: v for k, v in CAL.items() if k != "source"}, "source is missing")],
)  # fmt: skip
def test_bad_calibration_files(tmp_path, data, match):
    path = write(tmp_path, data)
    with pytest.raises(RooflineError, match=match) as exc:
        load_calibration(path, get_gpu("v100"))
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


# The V100's datasheet: 125 TFLOP/s fp16 (tensor cores), 15.7 TFLOP/s fp32, 900 GB/s.
@pytest.mark.parametrize(
    "changes, fragments",
    [
        ({"peak_flops_s": {"fp16": 9.0e15}},
         ["peak_flops_s.fp16 is 9000 TFLOP/s", "7200% of the datasheet's 125 TFLOP/s"]),
        ({"peak_flops_s": {"fp16": 1.0e14, "fp32": 1.8e13}},
         ["peak_flops_s.fp32 is 18 TFLOP/s", "115% of the datasheet's 15.7 TFLOP/s"]),
        ({"dram_bytes_s": 2.0e12}, ["dram_bytes_s is 2000 GB/s", "222% of the datasheet's 900 GB/s"]),
    ],
    ids=["fp16-9000-tflops", "fp32-15pct-over", "bandwidth"],
)  # fmt: skip
def test_a_rate_above_the_datasheet_is_refused(tmp_path, changes, fragments):
    path = write(tmp_path, {**CAL, **changes})
    with pytest.raises(RooflineError) as exc:
        load_calibration(path, get_gpu("v100"))
    text = str(exc.value)
    assert all(f in text for f in fragments), text
    assert text.startswith(str(path)) and "V100" in text and "\n" not in text
    assert text.endswith("re-run python -m kernels.calibrate on the GPU")


def test_a_rate_a_little_above_the_datasheet_is_accepted(tmp_path):
    """Up to ABOVE_DATASHEET over (a clock boosting past the datasheet's boost clock), not more."""
    from roofline.hardware.calibration import ABOVE_DATASHEET

    gpu = get_gpu("v100")
    edge = {"fp16": 125e12 * (1 + ABOVE_DATASHEET), "fp32": 15.7e12 * 1.05}
    cal = load_calibration(write(tmp_path, {**CAL, "dram_bytes_s": 9.4e11, "peak_flops_s": edge}), gpu)
    assert dict(cal.peak_flops_s) == edge and cal.dram_bytes_s == 9.4e11
    assert achievable_roof(gpu, "fp16", cal).flops_s == edge["fp16"]


def test_the_cli_refuses_a_calibration_above_the_datasheet(tmp_path, capsys):
    from unit_tests.helpers import cli_error

    path = write(tmp_path, {**CAL, "peak_flops_s": {"fp16": 9.0e15}})
    err = cli_error(capsys, ["analyze", "resnet18", "--batch", "8", "--calibration", str(path)])
    assert "peak_flops_s.fp16 is 9000 TFLOP/s" in err and "kernels.calibrate" in err


def test_measured_kernel_class_terms_override_the_defaults(tmp_path):
    from roofline.analysis.target import Target
    from roofline.hardware.efficiency import default_efficiency

    gpu = get_gpu("v100")
    measured = {"cuda_core_compute": 0.42, "depthwise_bandwidth": 0.61}
    cal = load_calibration(write(tmp_path, {**CAL, "kernel_efficiency": measured}), gpu)
    eff = Target(gpu, "fp16", calibration=cal).kernel_efficiency
    assert (eff.cuda_core_compute, eff.depthwise_bandwidth) == (0.42, 0.61)
    assert eff.attention_compute == default_efficiency("volta").attention_compute  # not measured: the default


@pytest.mark.parametrize(
    "terms, fragment",
    [
        ({"gemm_speed": 0.5}, "kernel_efficiency.gemm_speed is not a calibrated term"),
        ({"depthwise_bandwidth": 1.7}, "depthwise_bandwidth is 1.7: an efficiency is a fraction"),
        ({"cuda_core_compute": 0}, "kernel_efficiency.cuda_core_compute"),
        ([0.5], "kernel_efficiency must be an object"),
    ],
)
def test_bad_kernel_class_terms_are_one_line(tmp_path, terms, fragment):
    with pytest.raises(RooflineError, match=fragment.replace(".", r"\.")) as info:
        load_calibration(write(tmp_path, {**CAL, "kernel_efficiency": terms}), get_gpu("v100"))
    assert "\n" not in str(info.value)
