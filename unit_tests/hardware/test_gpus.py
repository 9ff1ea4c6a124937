"""The GPU database: coverage, sources, aliases, and matching a reported device to its entry."""

import pytest

from roofline import RooflineError, all_gpus, get_gpu
from roofline.hardware.gpus import match_device

pytestmark = pytest.mark.analytic

REQUIRED = [
    "v100-sxm2", "v100-pcie", "titan-v", "p6000", "t4", "a10", "a30", "a100-sxm4-40gb",
    "a100-sxm4-80gb", "a100-pcie-40gb", "a100-pcie-80gb", "l4", "l40s", "rtx-3090", "rtx-4090",
    "rtx-a6000", "h100-sxm", "h100-pcie", "h100-nvl", "h200", "b200", "jetson-nano", "jetson-agx-orin",
]  # fmt: skip

FIGURES = ["sms", "peak_flops_s", "dram_bandwidth_bytes_s", "memory_bytes", "l2_bytes"]


def test_required_gpus_present_with_sources():
    keys = {g.key for g in all_gpus()}
    assert set(REQUIRED) <= keys
    for gpu in all_gpus():
        for figure in FIGURES + (["boost_clock_mhz"] if gpu.boost_clock_mhz else []):
            assert gpu.sources.get(figure), f"{gpu.key}: no source for {figure}"
        assert gpu.sm_limits.max_blocks_per_sm > 0
        assert set(gpu.peak_flops_s) <= {"fp32", "tf32", "fp16", "bf16", "int8", "fp8"}


@pytest.mark.parametrize(
    "alias, key",
    [("v100", "v100-sxm2"), ("V100", "v100-sxm2"), ("A100", "a100-sxm4-40gb"), ("h100", "h100-sxm"),
     ("H200", "h200"), ("t4", "t4"), ("L4", "l4"), ("Titan V", "titan-v"), ("rtx_4090", "rtx-4090")],
)  # fmt: skip
def test_aliases_are_case_insensitive(alias, key):
    assert get_gpu(alias).key == key


def test_fp16_cmr_matches_design():
    # DESIGN.md and shared/reference/gpu-specs.md: V100 SXM2 FP16 CMR = 125e12 / 900e9 = 139.
    for alias, cmr in [("v100", 139), ("a100", 201), ("h100", 295), ("h200", 206), ("t4", 203), ("a10", 208)]:
        assert round(get_gpu(alias).datasheet_roof("fp16").cmr) == cmr, alias


def test_unknown_gpu_and_dtype_are_one_line_errors():
    with pytest.raises(RooflineError, match="unknown GPU") as exc:
        get_gpu("k80")
    assert "\n" not in str(exc.value)
    with pytest.raises(RooflineError, match="no datasheet int8"):
        get_gpu("v100").peak("int8")


@pytest.mark.parametrize(
    ("reported", "cc", "sms", "memory_gib", "key"),
    [
        ("NVIDIA H100 80GB HBM3", "9.0", 132, 79.6, "h100-sxm"),
        ("NVIDIA H100 NVL", "9.0", 132, 93.1, "h100-nvl"),
        ("NVIDIA H200", "9.0", 132, 139.8, "h200"),
        ("NVIDIA H100 PCIe", "9.0", 114, 79.6, "h100-pcie"),
        ("NVIDIA A100-SXM4-40GB", "8.0", 108, 39.4, "a100-sxm4-40gb"),
        ("NVIDIA A100-PCIE-40GB", "8.0", 108, 39.4, "a100-pcie-40gb"),
        ("NVIDIA A100-SXM4-80GB", "8.0", 108, 79.2, "a100-sxm4-80gb"),
        ("Tesla V100-SXM2-16GB", "7.0", 80, 15.8, "v100-sxm2"),
        ("Tesla V100-PCIE-16GB", "7.0", 80, 15.8, "v100-pcie"),
    ],
)
def test_match_device_tells_skus_of_one_die_apart(reported, cc, sms, memory_gib, key):
    assert match_device(reported, cc, sms, int(memory_gib * 2**30)).key == key


def test_match_device_names_the_data_file_for_an_unknown_gpu():
    with pytest.raises(RooflineError, match="add it to roofline/hardware/data/gpus.toml"):
        match_device("NVIDIA Future GPU", "12.0", 300, 2**40)
