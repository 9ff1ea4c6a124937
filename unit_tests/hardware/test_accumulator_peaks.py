"""Accumulator-aware datasheet peaks, their validation on load, and the Blackwell GB202 entries."""

import tomllib
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roofline import RooflineError, all_gpus, get_gpu
from roofline.dtypes import DTYPE_BYTES
from roofline.hardware import gpus as gpus_module
from roofline.hardware.gpus import ACCUMULATORS, match_device

pytestmark = pytest.mark.analytic

# GeForce parts: FP32 accumulation at half the FP16-accumulate headline (GA102, Ada and
# RTX Blackwell whitepapers, Appendix A).
GEFORCE_HALF_RATE = {
    "rtx-3090": {"fp16": (142e12, 71e12)},
    "rtx-4090": {"fp16": (330.3e12, 165.2e12), "fp8": (660.6e12, 330.3e12)},
    "rtx-5090": {"fp16": (419e12, 209.5e12), "fp8": (838e12, 419e12)},
}


@pytest.mark.parametrize("key", sorted(GEFORCE_HALF_RATE))
def test_geforce_fp32_accumulate_is_half_the_headline(key):
    gpu = get_gpu(key)
    for dtype, (headline, fp32_acc) in GEFORCE_HALF_RATE[key].items():
        assert gpu.peak(dtype) == headline
        assert gpu.peak(dtype, "fp16") == headline
        assert (
            gpu.peak(dtype, "fp32") == fp32_acc == pytest.approx(headline / 2, rel=1e-3)
        )  # 330.3 / 2 -> 165.2
        assert gpu.datasheet_roof(dtype, "fp32").flops_s == fp32_acc
    # bf16 already accumulates in FP32: one rate whatever is asked.
    assert gpu.peak("bf16", "fp32") == gpu.peak("bf16", "fp16") == gpu.peak_flops_s["bf16"]


@pytest.mark.parametrize(
    "key", ["v100-sxm2", "titan-v", "a100-sxm4-40gb", "rtx-a6000", "l40s", "h100-sxm", "rtx-pro-6000"]
)
def test_datacenter_and_workstation_parts_run_both_accumulators_at_one_rate(key):
    gpu = get_gpu(key)
    assert not gpu.peak_flops_s_fp32_accumulate
    for dtype in gpu.peak_flops_s:
        assert gpu.peak(dtype, "fp32") == gpu.peak(dtype, "fp16") == gpu.peak_flops_s[dtype]
        assert gpu.datasheet_roof(dtype, "fp32") == gpu.datasheet_roof(dtype)


def test_only_the_geforce_parts_have_an_fp32_accumulate_table():
    assert {g.key for g in all_gpus() if g.peak_flops_s_fp32_accumulate} == set(GEFORCE_HALF_RATE)


def test_default_accumulator_keeps_the_headline_for_every_gpu_and_dtype():
    assert ACCUMULATORS == ("fp16", "fp32")
    for gpu in all_gpus():
        for dtype, headline in gpu.peak_flops_s.items():
            assert gpu.peak(dtype) == headline
            assert gpu.datasheet_roof(dtype).flops_s == headline


def test_every_fp32_accumulate_figure_is_at_most_its_headline_and_has_a_source():
    for gpu in all_gpus():
        for dtype, flops_s in gpu.peak_flops_s_fp32_accumulate.items():
            assert dtype in gpu.peak_flops_s and dtype in ("fp16", "fp8"), (gpu.key, dtype)
            assert 0 < flops_s <= gpu.peak_flops_s[dtype], (gpu.key, dtype)
        if gpu.peak_flops_s_fp32_accumulate:
            assert gpu.sources.get("peak_flops_s_fp32_accumulate"), gpu.key


@given(
    gpu=st.sampled_from(all_gpus()),
    dtype=st.sampled_from(list(DTYPE_BYTES)),
    accumulator=st.sampled_from(ACCUMULATORS),
)
def test_fp32_accumulate_never_beats_the_headline(gpu, dtype, accumulator):
    if dtype not in gpu.peak_flops_s:
        with pytest.raises(RooflineError, match=f"no datasheet {dtype} peak"):
            gpu.peak(dtype, accumulator)
        return
    assert gpu.peak(dtype, "fp32") <= gpu.peak(dtype, accumulator) <= gpu.peak(dtype, "fp16")


def test_roof_source_names_the_accumulator_only_where_it_matters():
    rtx = get_gpu("rtx-4090")
    assert rtx.datasheet_roof("fp16", "fp32").source.startswith(rtx.sources["peak_flops_s_fp32_accumulate"])
    assert "fp16 with FP32 accumulate" in rtx.datasheet_roof("fp16", "fp32").source
    assert "fp16 with FP16 accumulate" in rtx.datasheet_roof("fp16").source
    assert "accumulate;" not in rtx.datasheet_roof("bf16", "fp32").source
    h100 = get_gpu("h100")
    assert h100.datasheet_roof("fp16", "fp32").source == h100.datasheet_roof("fp16").source


@pytest.mark.parametrize("accumulator", ["fp8", "FP32", "int32", ""])
def test_unknown_accumulator_is_a_one_line_error_naming_the_choices(accumulator):
    for call in (lambda: get_gpu("rtx-4090").peak("fp16", accumulator),
                 lambda: get_gpu("h100").datasheet_roof("bf16", accumulator)):  # fmt: skip
        with pytest.raises(RooflineError, match="unknown accumulator") as exc:
            call()
        assert "fp16, fp32" in str(exc.value) and "\n" not in str(exc.value)


def _raw_database() -> dict:
    return tomllib.loads(resources.files("roofline.hardware.data").joinpath("gpus.toml").read_text())


def test_the_shipped_file_parses_to_the_cached_database():
    gpus, aliases = gpus_module._parse_database(_raw_database())
    assert gpus == {g.key: g for g in all_gpus()} and aliases["5090"] == "rtx-5090"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"fp16": 400e12},
            r"rtx-4090\] peak_flops_s_fp32_accumulate.fp16 = 4e\+14 exceeds peak_flops_s.fp16",
        ),
        ({"fp16": 165.2e12, "fp8": 700e12}, "fp8 = 7e.14 exceeds peak_flops_s.fp8 = 6.606e.14"),
        ({"fp64": 1e12}, "has fp64, which peak_flops_s lacks: add its headline rate or drop the entry"),
    ],
)
def test_load_rejects_an_fp32_accumulate_table_that_breaks_the_rule(table, message):
    raw = _raw_database()
    raw["gpu"]["rtx-4090"]["peak_flops_s_fp32_accumulate"] = table
    with pytest.raises(RooflineError, match=message) as exc:
        gpus_module._parse_database(raw)
    assert "\n" not in str(exc.value)


def test_load_accepts_an_equal_rate_and_a_missing_table():
    raw = _raw_database()
    raw["gpu"]["l40s"]["peak_flops_s_fp32_accumulate"] = {"fp16": raw["gpu"]["l40s"]["peak_flops_s"]["fp16"]}
    del raw["gpu"]["rtx-3090"]["peak_flops_s_fp32_accumulate"]
    gpus, _ = gpus_module._parse_database(raw)
    assert gpus["l40s"].peak("fp16", "fp32") == gpus["l40s"].peak("fp16")
    assert (
        not gpus["rtx-3090"].peak_flops_s_fp32_accumulate and gpus["rtx-3090"].peak("fp16", "fp32") == 142e12
    )


@pytest.mark.parametrize(
    ("alias", "key"),
    [("rtx5090", "rtx-5090"), ("5090", "rtx-5090"), ("RTX 5090", "rtx-5090"), ("rtx_5090", "rtx-5090"),
     ("rtx-pro-6000", "rtx-pro-6000"), ("rtx-pro-6000-blackwell", "rtx-pro-6000"),
     ("PRO6000", "rtx-pro-6000"),
     ("rtx-pro-6000-maxq", "rtx-pro-6000-maxq"), ("RTX PRO 6000 MaxQ", "rtx-pro-6000-maxq")],
)  # fmt: skip
def test_blackwell_aliases_resolve(alias, key):
    assert get_gpu(alias).key == key


def test_gb202_entries_match_their_datasheets():
    rtx, pro, maxq = get_gpu("rtx-5090"), get_gpu("rtx-pro-6000"), get_gpu("rtx-pro-6000-maxq")
    assert {g.compute_capability for g in (rtx, pro, maxq)} == {"12.0"}
    assert (rtx.sms, pro.sms, maxq.sms) == (170, 188, 188)
    assert rtx.dram_bandwidth_bytes_s == pro.dram_bandwidth_bytes_s == maxq.dram_bandwidth_bytes_s == 1792e9
    assert (rtx.memory_bytes, pro.memory_bytes, maxq.memory_bytes) == (32 * 2**30, 96 * 2**30, 96 * 2**30)
    assert (rtx.l2_bytes, pro.l2_bytes) == (96 * 2**20, 128 * 2**20)
    # CC 12.0 per-SM limits (CUDA C++ Programming Guide, 12.x column).
    limits = rtx.sm_limits
    assert (limits.max_threads_per_sm, limits.max_blocks_per_sm, limits.max_shared_memory_per_sm_bytes) == (
        1536, 24, 102400)  # fmt: skip
    # FP32 = SMs x 128 FP32 lanes x 2 FLOP (FMA) x boost clock, within the datasheets' rounding.
    for gpu in (rtx, pro, maxq):
        derived = gpu.sms * 256 * gpu.boost_clock_mhz * 1e6
        assert gpu.peak_flops_s["fp32"] == pytest.approx(derived, rel=0.01), gpu.key
    # Dense, never the sparse headline: FP16 is FP4-sparse AI TOPS / 8 (3352, 4000, 3511).
    for gpu, ai_tops in ((rtx, 3352e12), (pro, 4000e12), (maxq, 3511e12)):
        assert gpu.peak_flops_s["fp16"] == pytest.approx(ai_tops / 8, rel=0.001), gpu.key
    # The Max-Q trades clock for power: every rate below the 600 W card's.
    assert all(maxq.peak_flops_s[d] < pro.peak_flops_s[d] for d in pro.peak_flops_s)


@pytest.mark.parametrize(
    ("reported", "sms", "memory_mib", "key"),
    [
        ("NVIDIA GeForce RTX 5090", 170, 32607, "rtx-5090"),
        ("NVIDIA RTX PRO 6000 Blackwell Workstation Edition", 188, 97887, "rtx-pro-6000"),
        ("NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition", 188, 97887, "rtx-pro-6000-maxq"),
    ],
)
def test_match_device_finds_the_gb202_parts_by_nvml_name(reported, sms, memory_mib, key):
    assert match_device(reported, "12.0", sms, memory_mib * 2**20).key == key


def test_match_device_parts_the_pro_6000s_by_name_not_by_file_order(monkeypatch):
    # Same CC, SMs and memory: only the "Max-Q" tokens tell them apart, whichever entry comes first.
    raw = _raw_database()
    raw["gpu"] = dict(reversed(list(raw["gpu"].items())))
    reordered = gpus_module._parse_database(raw)
    assert [k for k, g in reordered[0].items() if g.sms == 188] == ["rtx-pro-6000-maxq", "rtx-pro-6000"]
    monkeypatch.setattr(gpus_module, "_database", lambda: reordered)
    workstation = "NVIDIA RTX PRO 6000 Blackwell Workstation Edition"
    max_q = "NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition"
    assert match_device(workstation, "12.0", 188, 96 * 2**30).key == "rtx-pro-6000"
    assert match_device(max_q, "12.0", 188, 96 * 2**30).key == "rtx-pro-6000-maxq"
