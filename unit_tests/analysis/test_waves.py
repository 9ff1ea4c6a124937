"""Blocks, waves and the latency staircase against hand-worked numbers."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roofline import RooflineError, evaluate, get_gpu
from roofline.analysis.engines import get_engine
from roofline.analysis.predict import FusedNetwork
from roofline.analysis.staircase import staircase
from roofline.analysis.target import Target
from roofline.analysis.waves import decompose, work_of
from roofline.hardware import efficiency
from roofline.hardware.tiles import Tile, gemm_tiles, parse_tile
from roofline.model import zoo
from unit_tests.helpers import conv, network

pytestmark = pytest.mark.analytic

V100 = get_gpu("v100")
TITAN_V = get_gpu("titan-v")


def test_blocks_per_sm_from_registers_and_shared_memory():
    # V100 (CC 7.0): 65536 registers, 96 KiB shared memory, 2048 threads, 2 pipeline stages.
    # 128x128, 128 threads: 128 accumulators + 64 = 192 registers -> 65536 // (128 * 192) = 2;
    # shared 2 x 256 x 32 x 2 B = 32 KiB -> 3. The registers bind.
    assert Tile(128, 128, 32, 128).blocks_per_sm(V100, 2) == 2
    # 64x64: 32 + 64 = 96 registers -> 5; shared 16 KiB -> 6.
    assert Tile(64, 64, 32, 128).blocks_per_sm(V100, 2) == 5
    # 256x128, 256 threads: 192 registers -> 1.
    assert Tile(256, 128, 32, 256).blocks_per_sm(V100, 2) == 1
    # A100 (CC 8.0) has 3 stages: 128x128 needs 48 KiB of 164 KiB -> 3, registers still 2.
    assert Tile(128, 128, 32, 128).shared_memory_bytes(get_gpu("a100"), 2) == 3 * 256 * 32 * 2


def test_custom_tile_that_cannot_fit_asks_for_blocks_per_sm():
    with pytest.raises(RooflineError, match="--blocks-per-sm"):
        parse_tile("4096x1").blocks_per_sm(TITAN_V, 2)
    with pytest.raises(RooflineError, match="MxN"):
        parse_tile("128by64")
    assert parse_tile("128x64") in gemm_tiles()


def test_conv_decomposition_by_hand():
    # 3x3 conv, 256 -> 256 channels on 14x14, batch 64: M = 64 x 196 = 12544, N = 256, K = 2304.
    # Launched work (blocks x tile area) per candidate on V100:
    #   256x128 (1/SM):  98 blocks -> 80 + 80 = 160 launched x 32768 = 5,242,880
    #   128x128 (2/SM): 196 blocks -> 160 + 80 = 240 x 16384         = 3,932,160
    #   128x64  (4/SM): 392 blocks -> slots 320, last 72 -> 320 + 80 = 400 x 8192 = 3,276,800
    #   64x64   (5/SM): 784 blocks -> slots 400, last 384 -> 400 + 400 = 800 x 4096 = 3,276,800
    # 128x64 and 64x64 tie; the larger tile is listed first and wins.
    layer = conv("c", "x", (1, 256, 14, 14), 256, 3)
    est = evaluate(network([layer], [("x", (1, 256, 14, 14))]), Target(V100, "fp16"), batch=64)
    w = est.waves
    assert w.tile == ("128x64",)
    assert (w.blocks[0], w.blocks_per_sm[0], w.waves[0], w.launched[0]) == (392, 4, 2, 400)
    assert w.waves_exact[0] == pytest.approx(392 / 320)
    assert w.tile_efficiency[0] == 1.0
    assert w.tail_efficiency[0] == pytest.approx(392 / 400)
    assert w.idle_sm_fraction[0] == pytest.approx(1 - 72 / 80)
    flops = 64 * 2 * 256 * 196 * 256 * 9
    volta, k = efficiency.default_efficiency("volta"), 256 * 9
    compute_s = flops / (125e12 * volta.gemm_compute * k / (k + volta.k_fill_elems)) / (392 / 400)
    memory_s = 2 * (64 * 256 * 196 * 2 + 256 * 256 * 9) / (900e9 * volta.bandwidth)
    assert est.latency_s == pytest.approx(max(compute_s, memory_s) + get_engine("tensorrt").kernel_overhead_s)


def test_tile_quantization_by_hand():
    # M = 49 (7x7, batch 1) on a 64-row tile wastes 15 of 64 rows.
    stats = decompose(0, 1, 49, 512, Target(V100, "fp16", tile=Tile(64, 64, 32, 128)))
    assert stats.tile_efficiency == pytest.approx(49 / 64)
    assert stats.blocks == 8 and stats.waves == 1
    assert stats.idle_sm_fraction == pytest.approx(72 / 80)


def test_flat_roofline_unchanged_without_waves():
    net = zoo.load("resnet50")
    flat = evaluate(net, Target(V100, "fp16", waves=False), 32)
    fused = FusedNetwork.of(net)
    volta = efficiency.default_efficiency("volta")
    k = np.array([max(work_of(kernel).k, 0) for kernel in fused.kernels], dtype=float)
    fill = np.where(k > 0, k / (k + volta.k_fill_elems), 1.0)
    # resnet50 has no grouped, depthwise or attention kernel, and its only unaligned channels are the stem's 3
    pad = np.array([3 / 8 if work_of(kernel).channels == 3 else 1.0 for kernel in fused.kernels])
    roof_s = np.maximum(
        fused.flops * 32 / (125e12 * volta.gemm_compute * fill * pad),
        fused.bytes(32, 2) / (900e9 * volta.bandwidth),
    )
    overhead_s = get_engine("tensorrt").kernel_overhead_s
    assert flat.latency_s == pytest.approx(float((roof_s + overhead_s).sum()), rel=1e-12)
    assert flat.waves is None and "tile" not in flat.to_dict()["layers"][0]
    waved = evaluate(net, Target(V100, "fp16"), 32)
    assert waved.latency_s >= flat.latency_s
    assert {"blocks", "waves", "tail_efficiency", "tile_efficiency"} <= set(waved.to_dict()["layers"][0])


def test_overrides_need_the_wave_model():
    with pytest.raises(RooflineError, match="wave model"):
        evaluate(zoo.load("resnet18"), Target(V100, "fp16", waves=False, tile=Tile(64, 64)), 1)


def _titan_v_stairs(widths):
    # The tail-effect study's case: 3x3 conv on a 64x64x512 input, batch 1, one block per filter.
    layer = conv("c", "x", (1, 512, 64, 64), 256, 3)
    fused = FusedNetwork.of(network([layer], [("x", (1, 512, 64, 64))]))
    return staircase(
        fused, "c", Target(TITAN_V, "fp16", tile=parse_tile("4096x1"), blocks_per_sm=1), 1, widths
    )


def test_titan_v_steps_every_80_filters():
    stairs = _titan_v_stairs(np.arange(1, 513))
    assert list(stairs.edges()) == [80, 160, 240, 320, 400, 480]
    assert stairs.optimal_widths() == [80, 160, 240, 320, 400, 480]
    steps = stairs.steps()
    assert [s["waves"] for s in steps] == [1, 2, 3, 4, 5, 6, 7]
    assert not steps[-1]["closed"]  # 481..512 continues past the range


def test_latency_flat_inside_a_step_and_one_wave_per_edge():
    stairs = _titan_v_stairs(np.arange(1, 241))
    for step in stairs.steps():
        assert step["min_latency_s"] == pytest.approx(step["max_latency_s"], rel=1e-12)
    waves = stairs.waves.waves
    for edge in stairs.edges():
        assert waves[edge] - waves[edge - 1] == 1  # widths start at 1: index edge is width edge + 1
    wave_s = stairs.compute_s[0]
    assert stairs.latency_s[80] - stairs.latency_s[79] == pytest.approx(wave_s)


def test_optimal_widths_maximize_utilization_times_throughput():
    stairs = _titan_v_stairs(np.arange(1, 241))
    score = stairs.utilization * stairs.throughput_img_s
    for step in stairs.steps():
        inside = (stairs.widths >= step["first_width"]) & (stairs.widths <= step["last_width"])
        assert step["optimal_width"] == stairs.widths[inside][np.argmax(score[inside])] == step["last_width"]


def test_staircase_at_current_width_matches_the_network_estimate():
    net = zoo.load("resnet50")
    fused = FusedNetwork.of(net)
    est = evaluate(fused, Target(V100, "fp16"), 8)
    i = next(i for i, k in enumerate(fused.kernels) if k.name == "layer3.0.conv2")
    stairs = staircase(
        fused, "layer3.0.bn2", Target(V100, "fp16"), 8, np.array([256])
    )  # a fused member finds it
    assert stairs.latency_s[0] == pytest.approx(est.time_s[i], rel=1e-12)
    assert stairs.bytes[0] == est.bytes[i] and stairs.flops[0] == est.flops[i]


def test_staircase_rejects_layers_without_a_width():
    fused = FusedNetwork.of(zoo.load("mobilenetv2_100"))
    with pytest.raises(RooflineError, match="dense conv or linear"):
        staircase(fused, "blocks.1.0.conv_dw", Target(V100))
    with pytest.raises(RooflineError, match="no layer"):
        staircase(fused, "blocks.1.0.conv_pw_typo", Target(V100))


@settings(max_examples=60, deadline=None)
@given(
    batch=st.integers(1, 64),
    channels=st.sampled_from([16, 64, 256, 512]),
    spatial=st.sampled_from([7, 14, 28, 56]),
    gpu=st.sampled_from(["v100", "a100", "h100", "t4", "titan-v"]),
    dtype=st.sampled_from(["fp16", "fp32", "int8"]),
)
def test_wave_properties(batch, channels, spatial, gpu, dtype):
    layer = conv("c", "x", (1, channels, spatial, spatial), channels, 3)
    fused = FusedNetwork.of(network([layer], [("x", (1, channels, spatial, spatial))]))
    g = get_gpu(gpu)
    if dtype not in g.peak_flops_s:
        return
    stairs = staircase(fused, "c", Target(g, dtype), batch, np.arange(1, 2 * channels + 1))
    w = stairs.waves
    assert (w.waves >= 1).all()
    for eff in (w.tile_efficiency, w.tail_efficiency):
        assert ((eff > 0) & (eff <= 1)).all()
    assert ((w.idle_sm_fraction >= 0) & (w.idle_sm_fraction < 1)).all()
    # Best-tile latency is a minimum of non-decreasing staircases, so it never falls as width grows.
    assert (np.diff(stairs.latency_s) >= -1e-15).all()
    widths = np.arange(1, 2 * channels + 1)
    fixed = staircase(fused, "c", Target(g, dtype, tile=Tile(128, 128, 32, 128)), batch, widths)
    assert (np.diff(fixed.latency_s) >= -1e-15).all()
