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
    assert achievable_roof(gpu, "fp32", cal).source.startswith("datasheet x default")


@pytest.mark.parametrize(
    "data, match",
    [("{not json", "not valid JSON"), ({"format": "other"}, "not a roofline-calibration"),
     ({**CAL, "gpu": "a100"}, "measured on a100-sxm4-40gb"), ({**CAL, "dram_bytes_s": -1}, "non-positive"),
     ({k: v for k, v in CAL.items() if k != "source"}, "malformed")],
)  # fmt: skip
def test_bad_calibration_files(tmp_path, data, match):
    with pytest.raises(RooflineError, match=match):
        load_calibration(write(tmp_path, data), get_gpu("v100"))
