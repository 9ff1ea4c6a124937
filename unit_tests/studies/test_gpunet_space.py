"""The GPUNet search space: encoding, Sobol sampling, the block-additive estimate, latency tiers."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roofline import RooflineError, evaluate, get_gpu
from roofline.analysis.latency_table import Entry, LatencyTable, kernel_key, network_latency
from roofline.analysis.target import Target
from roofline.studies.spaces import gpunet as g

pytestmark = pytest.mark.analytic

REL = 1e-9
ENCODINGS = st.tuples(*[st.sampled_from(c) for c in g.CHOICES])
MINIMAL = tuple(c[0] for c in g.CHOICES)
MAXIMAL = tuple(c[-1] for c in g.CHOICES)


@pytest.fixture(scope="module")
def v100():
    return get_gpu("v100")


def with_values(seq, **named):
    """``seq`` with positions named like ``stage5_layers=3`` replaced."""
    out = list(seq)
    for name, value in named.items():
        out[g.POSITION_NAMES.index(name.replace("_", ".", 1))] = value
    return tuple(out)


# --- encoding -------------------------------------------------------------------------------------


def test_choices_follow_table_1():
    assert len(g.CHOICES) == len(g.POSITION_NAMES) == 41
    by_name = dict(zip(g.POSITION_NAMES, g.CHOICES, strict=True))
    assert by_name["resolution"] == tuple(range(224, 513, 32))
    assert by_name["stage0.filters"] == (24, 32)
    assert by_name["stage1.layers"] == (1, 2, 3, 4)
    assert by_name["stage3.filters"] == (48, 64, 80, 96, 112)
    assert by_name["stage6.filters"] == tuple(range(128, 417, 32))
    assert by_name["stage7.filters"] == tuple(range(256, 833, 64))
    assert by_name["stage5.layers"] == tuple(range(16)) and by_name["stage4.layers"] == tuple(range(1, 11))
    assert all(by_name[f"stage{s}.expansion"] == (2, 3, 4, 5, 6) for s in range(2, 8))
    assert g.POSITION_NAMES[5:11] == tuple(
        f"stage2.{f}" for f in ("filters", "kernel", "expansion", "se", "act", "layers")
    )


@settings(max_examples=200, deadline=None)
@given(seq=ENCODINGS)
def test_encode_decode_round_trip(seq):
    arch = g.decode(seq)
    assert arch.encode() == seq
    assert g.decode(arch.encode()) == arch
    assert g.decode(np.array(seq)) == arch
    assert arch.stages[1].filters == arch.stages[0].filters == seq[1]
    assert [st.kind for st in arch.stages] == list(g.STAGE_KINDS)


@pytest.mark.parametrize(
    ("position", "value"),
    [
        ("resolution", 230),
        ("stage0.filters", 16),
        ("stage1.kernel", 7),
        ("stage1.act", 2),
        ("stage2.expansion", 7),
        ("stage3.filters", 40),
        ("stage4.layers", 0),
        ("stage5.layers", 16),
        ("stage6.se", -1),
        ("stage7.filters", 3.0),
        ("stage7.act", True),
    ],
)
def test_decode_names_the_bad_position_and_its_choices(position, value):
    i = g.POSITION_NAMES.index(position)
    seq = list(MINIMAL)
    seq[i] = value
    with pytest.raises(RooflineError, match=rf"position {i} \({position}\) must be one of \[") as info:
        g.decode(seq)
    assert str(list(g.CHOICES[i])) in str(info.value)
    if type(value) is int:  # an array cannot hold 3.0 or True as such; their dtype is checked instead
        with pytest.raises(RooflineError, match=position.replace(".", r"\.")):
            g.check_samples(np.array([MINIMAL, seq]))


@pytest.mark.parametrize("length", [0, 40, 42])
def test_decode_rejects_wrong_length(length):
    with pytest.raises(RooflineError, match="41 integers"):
        g.decode((MINIMAL * 2)[:length])
    with pytest.raises(RooflineError, match=r"shape \(n, 41\)"):
        g.check_samples(np.zeros((3, length), dtype=np.int64))


def test_arch_rejects_inconsistent_fixed_stages():
    arch = g.decode(MINIMAL)
    s1 = g.Stage("conv", 1, 32, 1, 3, "relu")  # stage 1 must have stage 0's 24 filters
    with pytest.raises(RooflineError, match="stage 0's filters"):
        g.GPUNetArch(arch.resolution, (arch.stages[0], s1, *arch.stages[2:]))
    with pytest.raises(RooflineError, match="8 stages"):
        g.GPUNetArch(arch.resolution, arch.stages[:7])
    with pytest.raises(RooflineError, match="irb stage with stride 2"):
        g.GPUNetArch(arch.resolution, (*arch.stages[:6], arch.stages[5], arch.stages[7]))


# --- Sobol sampling --------------------------------------------------------------------------------


def test_sobol_samples_are_valid_deterministic_and_cover_choices():
    a = g.sobol_sample(1024, seed=0)
    assert a.shape == (1024, 41) and a.dtype == np.int64
    assert np.array_equal(g.check_samples(a), a)
    assert np.array_equal(a, g.sobol_sample(1024, seed=0))
    assert not np.array_equal(a, g.sobol_sample(1024, seed=1))
    for name in ("resolution", "stage1.layers", "stage5.layers", "stage6.filters", "stage7.filters"):
        i = g.POSITION_NAMES.index(name)
        assert set(a[:, i].tolist()) == set(g.CHOICES[i]), name
    # A scrambled Sobol' point set of 2^m points is balanced: each choice of a 2-choice position
    # (the coordinate's halves [0, 1/2) and [1/2, 1)) is taken by exactly half the points.
    assert (a[:, g.POSITION_NAMES.index("stage4.se")] == 1).sum() == 512


def test_sobol_non_power_of_two_is_valid_and_silent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = g.sobol_sample(1000, seed=5)
    assert a.shape == (1000, 41)
    g.check_samples(a)
    assert np.array_equal(a, g.sobol_sample(1000, seed=5))
    with pytest.raises(RooflineError, match="positive integer"):
        g.sobol_sample(0)


# --- networks and the block-additive estimate ------------------------------------------------------


def test_zero_layer_stages_are_skipped_and_residuals_follow_the_rule():
    seq = with_values(MINIMAL, stage5_layers=0, stage7_layers=0, stage4_filters=112, stage6_layers=3)
    net = g.gpunet_network(seq)
    names = [layer.name for layer in net.layers]
    assert not any(n.startswith(("stage5.", "stage7.")) for n in names)
    adds = {n.split(".add")[0] for n in names if n.endswith(".add")}
    # stage 1 (Conv) has none; first blocks change channels or stride; repeated stage-6 blocks add
    assert adds == {"stage6.1", "stage6.2"}
    assert net.layers[-1].output_shape == (1, 1000)
    # with stage 5 present and 112 -> 112, its stride-1 first block has the residual too
    net5 = g.gpunet_network(with_values(seq, stage5_layers=1, stage5_filters=112))
    assert any(layer.name == "stage5.0.add" for layer in net5.layers)


def _hand_flops_params_minimal():
    """FLOPs (2 MACs) and params of the minimal arch, written out from the block definitions.

    224 input; every E = 2, k = 3, ReLU, no SE; stages 5 and 7 have 0 layers.
    Conv MACs = H_out W_out C_out (C_in / groups) k^2; params = weights + BN (2 C_out).
    """
    macs = params = 0

    def conv(h_out, c_in, c_out, k, groups=1, bn=True):
        nonlocal macs, params
        macs += h_out * h_out * c_out * (c_in // groups) * k * k
        params += c_out * (c_in // groups) * k * k + (2 * c_out if bn else 0)

    conv(112, 3, 24, 3)  # stem, 224 -> 112
    conv(112, 24, 24, 3)  # stage 1
    conv(56, 24, 48, 3), conv(56, 48, 32, 1)  # stage 2 Fused-IRB 24 -> 32, hidden 48, s2
    conv(28, 32, 64, 3), conv(28, 64, 48, 1)  # stage 3 Fused-IRB 32 -> 48, hidden 64, s2
    conv(28, 48, 96, 1), conv(14, 96, 96, 3, groups=96), conv(14, 96, 96, 1)  # stage 4 IRB 48 -> 96
    conv(14, 96, 192, 1), conv(7, 192, 192, 3, groups=192), conv(7, 192, 128, 1)  # stage 6 IRB 96 -> 128
    conv(7, 128, 1792, 1)  # head conv
    macs += 1792 * 1000
    params += 1792 * 1000 + 1000  # FC with bias
    return 2 * macs, params


def test_minimal_arch_flops_and_params_by_hand(v100):
    flops, params = _hand_flops_params_minimal()
    net = g.gpunet_network(MINIMAL)
    assert net.flops() == flops == 2 * (
        8_128_512 + 65_028_096 + 32_514_048 + 4_816_896 + 14_450_688 + 2_408_448
        + 3_612_672 + 169_344 + 1_806_336 + 3_612_672 + 84_672 + 1_204_224 + 11_239_424 + 1_792_000
    )  # fmt: skip
    assert net.params() == params
    est = g.estimate(np.array([MINIMAL]), Target(v100))
    assert est.flops_per_image[0] == flops and est.params[0] == params
    # SE on stage 2 (hidden 48, C_in 24): 48 -> round(24 / 4) = 6 -> 48, both 1x1 with bias, at 1x1.
    se = g.gpunet_network(with_values(MINIMAL, stage2_se=1))
    assert se.flops() - flops == 2 * (48 * 6 + 6 * 48)
    assert se.params() - params == (48 * 6 + 6) + (6 * 48 + 48)


def _exactness_archs():
    rows = [tuple(r) for r in g.sobol_sample(10, seed=7).tolist()]
    rows += [MINIMAL, MAXIMAL]
    # stride-1 first blocks with a residual (stage 4 -> 5 at 112, 6 -> 7 at 256), SE and Swish
    rows.append(with_values(MINIMAL, stage4_filters=112, stage5_layers=2, stage5_se=1, stage6_filters=256,
                            stage7_layers=3, stage7_act=1, stage3_se=1, resolution=480))  # fmt: skip
    return rows


@pytest.mark.parametrize("batch", [1, 8])
def test_estimate_equals_whole_network_evaluate(v100, batch):
    rows = _exactness_archs()
    est = g.estimate(np.array(rows), Target(v100, "fp16"), batch)
    assert len(est) == len(rows) and est.distinct_blocks > 0
    for i, row in enumerate(rows):
        net = g.gpunet_network(g.decode(row))
        ref = evaluate(net, Target(v100, "fp16"), batch)
        assert est.latency_s[i] == pytest.approx(ref.latency_s, rel=REL)
        assert est.throughput_img_s[i] == pytest.approx(ref.throughput_img_s, rel=REL)
        assert est.utilization[i] == pytest.approx(ref.utilization, rel=REL)
        assert est.bytes_per_batch[i] == pytest.approx(ref.total_bytes, rel=REL)
        assert est.flops_per_image[i] == pytest.approx(net.flops(), rel=REL)
        assert est.params[i] == net.params()
    assert np.all(est.measured_kernels == 0)


def test_estimate_rejects_bad_input(v100):
    with pytest.raises(RooflineError, match="batch"):
        g.estimate(np.array([MINIMAL]), Target(v100), batch=0)
    with pytest.raises(RooflineError, match="dtype"):
        g.estimate(np.array([MINIMAL]), Target(v100, "fp12"))
    with pytest.raises(RooflineError, match="integers"):
        g.estimate(np.array([MINIMAL], dtype=float), Target(v100))
    with pytest.raises(RooflineError, match="not comparable"):
        g.estimate(
            np.array([MINIMAL]), Target(v100), table=LatencyTable("a100-sxm4-80gb", "fp16", "tensorrt")
        )


@pytest.mark.parametrize("batch", [1, 8])
def test_measured_entry_changes_latency_by_exactly_its_difference(v100, batch):
    rows = np.array([MAXIMAL, MINIMAL])
    base = g.estimate(rows, Target(v100, "fp16"), batch)
    ref = evaluate(g.gpunet_network(MAXIMAL), Target(v100, "fp16"), batch)
    keys = [kernel_key(k, batch) for k in ref.fused.kernels]
    # the slowest kernel of the repeated stage-7 block: identical kernels share one key
    stage7 = [t if "stage7.5." in k.name else 0 for k, t in zip(ref.fused.kernels, ref.time_s, strict=True)]
    i = int(np.argmax(stage7))
    repeats = keys.count(keys[i])
    assert repeats == 14  # stage 7 has 15 layers; blocks 1..14 are alike
    measured_s = 3e-6
    table = LatencyTable(v100.key, "fp16", "tensorrt", {keys[i]: Entry(measured_s, "measured", 100)})
    est = g.estimate(rows, Target(v100, "fp16"), batch, table=table)
    assert est.latency_s[0] - base.latency_s[0] == pytest.approx(
        repeats * (measured_s - ref.time_s[i]), rel=REL
    )
    assert est.latency_s[0] == pytest.approx(network_latency(ref, table).latency_s, rel=REL)
    assert est.measured_kernels.tolist() == [repeats, 0]
    assert est.latency_s[1] == base.latency_s[1]


# --- latency tiers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sampled(v100):
    return g.estimate(g.sobol_sample(512, seed=11), Target(v100, "fp16"), 1)


def test_quantile_tiers_cover_every_sample_in_latency_order(sampled):
    lat = sampled.latency_s
    tiers = g.latency_tiers(lat, n_tiers=4)
    assert tiers.shape == lat.shape and set(tiers.tolist()) == {0, 1, 2, 3}
    assert np.bincount(tiers).tolist() == [128, 128, 128, 128]
    summary = g.tier_summary(lat, sampled.flops_per_image, tiers)
    assert [t.tier for t in summary] == [0, 1, 2, 3] and sum(t.count for t in summary) == len(lat)
    for lo, hi in zip(summary, summary[1:], strict=False):
        assert lo.max_latency_s <= hi.min_latency_s
    for t in summary:
        members = tiers == t.tier
        assert t.max_flops_per_image == sampled.flops_per_image[members].max()
        assert (
            tiers[t.best_index] == t.tier and sampled.flops_per_image[t.best_index] == t.max_flops_per_image
        )


def test_fixed_edge_tiers_in_ms(sampled):
    lat = sampled.latency_s
    edges_ms = (2.0, 4.0, 8.0)
    tiers = g.latency_tiers(lat, edges_ms=edges_ms)
    expected = (lat >= 2e-3).astype(int) + (lat >= 4e-3) + (lat >= 8e-3)
    assert np.array_equal(tiers, expected)
    summary = g.tier_summary(lat, sampled.flops_per_image, tiers, n_tiers=len(edges_ms) + 1)
    assert len(summary) == 4 and sum(t.count for t in summary) == len(lat)
    assert g.latency_tiers(np.array([1e-3]), edges_ms=(5.0, 6.0)).tolist() == [0]
    empty = g.tier_summary(np.array([1e-3]), np.array([1.0]), np.array([0]), n_tiers=2)[1]
    assert empty.count == 0 and empty.best_index == -1 and empty.min_latency_s is None  # null, never NaN


def test_tier_arguments_are_checked(sampled):
    lat = sampled.latency_s
    with pytest.raises(RooflineError, match="exactly one"):
        g.latency_tiers(lat)
    with pytest.raises(RooflineError, match="exactly one"):
        g.latency_tiers(lat, edges_ms=(1.0,), n_tiers=2)
    with pytest.raises(RooflineError, match="strictly increasing"):
        g.latency_tiers(lat, edges_ms=(2.0, 1.0))
    with pytest.raises(RooflineError, match="n_tiers"):
        g.latency_tiers(lat, n_tiers=0)
    with pytest.raises(RooflineError, match="positive"):
        g.latency_tiers(np.array([0.0]), n_tiers=2)


# --- benchmark -------------------------------------------------------------------------------------


def test_bench_gpunet_100k(benchmark, v100):
    """Sample 100,000 encodings and estimate them on V100 FP16 at batch 1 (target < 60 s on 2 cores)."""

    def run():
        return g.estimate(g.sobol_sample(100_000, seed=0), Target(v100, "fp16"), 1)

    est = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info["distinct_blocks"] = est.distinct_blocks
    assert len(est) == 100_000 and np.all(est.latency_s > 0)


def test_achievable_peak_and_gpu_by_name(v100):
    est = g.estimate(np.array([MAXIMAL]), Target.of("v100", "fp16", peak="achievable"), 4)
    ref = evaluate(g.gpunet_network(MAXIMAL), Target(v100, "fp16", peak="achievable"), 4)
    assert est.peak == ref.peak
    assert est.utilization[0] == pytest.approx(ref.utilization, rel=REL)
