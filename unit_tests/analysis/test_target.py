"""The Target value: its checks, its two roofs, and the CLI building it from options in one place."""

import dataclasses

import pytest

from roofline import RooflineError, Target, evaluate, get_gpu
from roofline.cli.main import TARGET_OPTIONS, build_parser, target_from_args
from roofline.hardware import efficiency
from roofline.hardware.calibration import Calibration
from roofline.hardware.tiles import Tile
from roofline.model import zoo

pytestmark = pytest.mark.analytic

V100 = get_gpu("v100")


def test_defaults_and_roofs():
    t = Target.of("v100")
    assert (t.gpu, t.dtype, t.peak, t.waves, t.tile) == (V100, "fp16", "datasheet", True, None)
    assert t.reference == V100.datasheet_roof("fp16")
    assert t.roof.flops_s == pytest.approx(efficiency.default_efficiency("volta").gemm_compute * 125e12)
    assert t.replace(peak="achievable").reference == t.roof


def test_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Target.of("v100").dtype = "fp32"


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"dtype": "fp64"}, "unknown dtype 'fp64'"),
        ({"dtype": "tf32"}, "has no datasheet tf32 peak"),  # Volta has no TF32
        ({"peak": "best"}, "unknown peak 'best'"),
        ({"waves": False, "tile": Tile(64, 64)}, "needs the wave model"),
        ({"tile": Tile(1024, 1024)}, "tile"),
        ({"calibration": Calibration("h100-sxm", "x", 3e12, {"fp16": 8e14})}, "measured on h100-sxm"),
    ],
)
def test_refuses_what_cannot_be_modelled(options, fragment):
    with pytest.raises(RooflineError, match=fragment):
        Target(V100, **options)


def test_calibration_sets_the_achievable_roof():
    cal = Calibration("v100-sxm2", "bench", 8e11, {"fp16": 1e14})
    t = Target(V100, calibration=cal)
    assert (t.roof.flops_s, t.roof.dram_bytes_s, t.roof.source) == (1e14, 8e11, "calibration: bench")
    assert t.reference.kind == "datasheet"


def test_estimate_reads_its_setting_from_the_target():
    t = Target.of("a100", "bf16", peak="achievable")
    est = evaluate(zoo.load("resnet18"), t, 16)
    assert (est.target, est.gpu, est.dtype, est.peak, est.model_roof) == (t, t.gpu, "bf16", t.roof, t.roof)


def test_cli_builds_the_target_from_every_option_it_has():
    args = build_parser().parse_args(
        ["analyze", "resnet18", "--gpu", "h100", "--dtype", "bf16", "--peak", "achievable", "--no-waves"]
    )
    t = target_from_args(args)
    assert (t.gpu.key, t.dtype, t.peak, t.waves) == ("h100-sxm", "bf16", "achievable", False)
    # Commands without an option get the Target's default for it.
    t = target_from_args(build_parser().parse_args(["fold", "resnet18", "--tile", "128x64"]))
    assert (t.peak, t.waves, str(t.tile)) == ("datasheet", True, "128x64")
    assert set(TARGET_OPTIONS) <= {f.name for f in dataclasses.fields(Target)}
