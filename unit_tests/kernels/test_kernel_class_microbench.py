"""The kernel-class microbenchmarks without a GPU: the model's counts of each benchmark's kernels, the
derivation of each efficiency term from a (synthetic) time, clipping, the combination rule, the
calibration file's ``kernel_efficiency`` object and its round trip through ``load_calibration`` and the
model, and the torch programs (run on the CPU at small shapes). Every time here is made up from a chosen
efficiency; nothing in this file is a GPU measurement. The one test that measures needs a GPU and skips
without one."""

import json
import math
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import calibrate
from kernels import microbench as mb
from kernels.microbench import ClippedTermWarning, KernelClasses, KernelTiming
from kernels.timing import QUICK, Measurement
from roofline import RooflineError, evaluate, get_gpu
from roofline.analysis.target import Target
from roofline.files import write_text
from roofline.hardware.calibration import load_calibration
from roofline.hardware.efficiency import CALIBRATED_TERMS, efficiency_for

pytestmark = pytest.mark.analytic

H100 = get_gpu("h100")
#: Terms under which the synthetic depthwise conv (4.5 FLOP/B) is memory-bound, as the tests assume; the
#: shipped defaults move with every fit, so the tests name theirs.
MEMORY_BOUND_DW = efficiency_for(H100).replace(cuda_core_compute=0.35, depthwise_bandwidth=0.55)
ENVIRONMENT = {"host": "testhost", "date": "2026-01-02T03:04:05+00:00"}


def timing_at(network, batch, *, bytes_s=None, flops_s=None, label="k", invalid=None) -> KernelTiming:
    """A synthetic timing of ``network`` at ``batch``: the time its model counts take at the given rate."""
    counts = mb.model_counts(network, batch)
    time_s = counts.nbytes / bytes_s if bytes_s is not None else counts.flops / flops_s
    return KernelTiming(label, time_s, counts.flops, counts.nbytes, invalid)


def measurement(rate: float) -> Measurement:
    samples = (rate * 0.99, rate, rate * 1.01)
    return Measurement(
        samples=samples, host_samples=samples, launch_s=1e-3, launches_per_window=100, items_per_launch=1,
        windows_run=3, gpu_busy=0.99, enqueue_bound=False, invalid_reason=None, warmup_s=2.0,
    )  # fmt: skip


# ------------------------------------------------------------------------------------ the model's counts
def test_depthwise_and_grouped_counts_are_the_conv_formulas():
    n, c, hw = 66, 512, 56 * 56
    dw = mb.model_counts(mb.depthwise_network(), n)
    assert dw.kernels == ("dwconv3x3",)
    assert dw.flops == 2 * n * c * hw * 9  # 2 x MACs, one input channel per output channel
    assert dw.nbytes == (2 * n * c * hw + c * 9) * 2  # input + output + weights, fp16
    for g in mb.GROUPED_GROUPS:
        counts = mb.model_counts(mb.grouped_network(g), 100)
        assert counts.kernels == (f"conv3x3/g{g}",)
        assert counts.flops == 2 * 100 * 256 * 28 * 28 * (256 // g) * 9
        assert counts.nbytes == (2 * 100 * 256 * 28 * 28 + 256 * (256 // g) * 9) * 2


def test_pointwise_counts_follow_eager_torch_kernels():
    n, elems = 10, 256 * 56 * 56
    add = mb.model_counts(mb.add_network(), n)
    assert add == mb.ModelCounts(0, 3 * n * elems * 2, ("add",))  # two reads, one write
    bn = mb.model_counts(mb.bn_relu_network(), n)
    # Eager PyTorch: BN reads and writes the tensor (and its two folded vectors), ReLU does it again.
    assert bn.kernels == ("bn", "relu")
    assert bn.nbytes == (4 * n * elems + 2 * 256) * 2
    # A fusing engine would make it one kernel: the counts follow the engine, as they must.
    assert mb.model_counts(mb.bn_relu_network(), n, engine="tensorrt").nbytes == (2 * n * elems + 2 * 256) * 2


@given(
    st.integers(1, 64), st.integers(1, 32), st.sampled_from([64, 128, 256, 1024]), st.sampled_from([32, 64])
)
@settings(max_examples=25, deadline=None)
def test_attention_flops_formula_is_the_models_fused_kernel(batch, heads, seq, head_dim):
    counts = mb.model_counts(mb.attention_network(seq, heads, head_dim), batch)
    assert counts.kernels == ("matmul+softmax+matmul",)  # one fused kernel: scores never reach DRAM
    assert (
        counts.flops
        == mb.attention_flops(batch, heads, seq, head_dim)
        == 4 * batch * heads * seq**2 * head_dim
    )
    assert counts.nbytes == 4 * batch * heads * seq * head_dim * 2  # Q, K, V read, O written


def test_shape_builders_refuse_bad_shapes():
    with pytest.raises(RooflineError, match="is depthwise, not grouped"):
        mb.grouped_network(256)
    with pytest.raises(RooflineError, match="must divide both channel counts"):
        mb.grouped_network(48)
    with pytest.raises(RooflineError, match="seq must be a positive integer"):
        mb.attention_network(0)
    with pytest.raises(RooflineError, match="head_dim must be a positive integer"):
        mb.attention_flops(1, 1, 1, -64)


@given(st.integers(1, 10**9), st.integers(1, 2**30), st.integers(1, 16))
def test_batch_beyond_l2_is_the_smallest_batch_past_the_multiple(per_image, l2, multiple):
    batch = mb.batch_beyond_l2(per_image, l2, multiple)
    assert batch >= 1 and batch * per_image >= multiple * l2
    assert batch == 1 or (batch - 1) * per_image < multiple * l2


def test_default_batches_exceed_the_l2_several_times():
    h200 = get_gpu("h200")
    for network in (mb.depthwise_network(), mb.grouped_network(32), mb.add_network(), mb.bn_relu_network()):
        batch = mb.default_batch(network, h200)
        assert mb.model_counts(network, batch).nbytes >= mb.L2_MULTIPLE * h200.l2_bytes
        assert mb.model_counts(network, batch - 1).nbytes < mb.L2_MULTIPLE * h200.l2_bytes + 2 * 256 * 256 * 9
    with pytest.raises(RooflineError, match="L2 size in bytes must be a positive integer"):
        mb.batch_beyond_l2(100, 0)


# ------------------------------------------------------------------------------------------- derivations
def test_depthwise_bandwidth_and_cuda_core_lower_bound_from_a_time():
    timing = timing_at(mb.depthwise_network(), 66, bytes_s=0.6 * H100.dram_bandwidth_bytes_s)
    result = mb.depthwise_terms(timing, H100, MEMORY_BOUND_DW)
    assert result.memory_bound  # 4.5 FLOP/B, far below the CUDA-core ridge
    assert result.depthwise_bandwidth.name == "depthwise_bandwidth"
    assert result.depthwise_bandwidth.value == pytest.approx(0.6)
    lower = result.cuda_core_compute_lower_bound
    assert lower.name == "cuda_core_compute" and "lower bound" in lower.basis
    assert lower.value == pytest.approx(timing.flops / timing.time_s / 67e12)
    assert lower.value == pytest.approx(0.6 * 3350e9 * timing.flops / timing.nbytes / 67e12)


def test_a_compute_bound_depthwise_gives_no_bandwidth_term():
    # A 7x7 depthwise conv on few, small images with fat weights: push the CUDA-core term so low that
    # compute dominates, and the bytes say nothing about bandwidth.
    timing = timing_at(mb.depthwise_network(kernel=7), 4, flops_s=0.05 * 67e12)
    slow = efficiency_for(H100).replace(cuda_core_compute=0.01)
    result = mb.depthwise_terms(timing, H100, slow)
    assert not result.memory_bound and result.depthwise_bandwidth is None
    assert result.cuda_core_compute_lower_bound.value == pytest.approx(0.05)


@given(st.floats(1e-6, 1.0))
@settings(deadline=None)
def test_terms_are_the_inverse_of_the_time_and_clip_at_one(time_s):
    counts = mb.model_counts(mb.depthwise_network(), 66)
    timing = KernelTiming("dw", time_s, counts.flops, counts.nbytes)
    raw = counts.nbytes / time_s / H100.dram_bandwidth_bytes_s
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = mb.depthwise_terms(timing, H100, MEMORY_BOUND_DW)
    said = [str(w.message) for w in caught if w.category is ClippedTermWarning]
    assert any(m.startswith("depthwise_bandwidth measured") and "clipped to 1" in m for m in said) == (
        raw > 1
    )
    term = result.depthwise_bandwidth
    assert term.raw == pytest.approx(raw)
    assert term.value == pytest.approx(min(raw, 1.0))
    assert 0 < term.value <= 1
    assert term.clipped == (raw > 1)


def test_clipping_keeps_the_raw_value_and_warns():
    with pytest.warns(ClippedTermWarning, match="attention_compute measured 1.070 > 1"):
        term = mb.derive_term("attention_compute", 1.07, "made up")
    assert (term.value, term.raw, term.clipped) == (1.0, 1.07, True)
    assert term.to_dict() == {"value": 1.0, "raw": 1.07, "clipped": True, "basis": "made up"}
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(RooflineError, match="attention_compute came out"):
            mb.derive_term("attention_compute", bad, "made up")


def test_timings_refuse_impossible_figures():
    for bad in (0.0, -1e-3, math.inf, math.nan):
        with pytest.raises(RooflineError, match="time_s must be positive and finite"):
            KernelTiming("k", bad, 1, 1)
    with pytest.raises(RooflineError, match="needs flops >= 0 and bytes >= 1"):
        KernelTiming("k", 1e-3, 1, 0)
    timing = KernelTiming("k", 2e-3, 4, 6, details={"batch": 1})
    assert (timing.flops_s, timing.bytes_s, timing.stable) == (2000.0, 3000.0, True)
    with pytest.raises(TypeError):
        timing.details["batch"] = 2  # type: ignore[index]


def grouped_timings(rates_tflops, invalid=()):
    return [
        timing_at(mb.grouped_network(g), 500, flops_s=r * 1e12, label=f"g{g}",
                  invalid="unstable" if g in invalid else None)
        for g, r in zip(mb.GROUPED_GROUPS, rates_tflops, strict=True)
    ]  # fmt: skip


def test_grouped_rule_takes_the_best_width_the_cuda_cores_won():
    # g32 and g64 ran faster than the tensor-core model: CUDA-core kernels won; g128 ran slower than it.
    timings = grouped_timings([50.0, 20.0, 4.0])
    result = mb.grouped_terms(timings, [42e12, 15e12, 5e12], H100)
    assert result.cuda_core_compute.value == pytest.approx(50 / 67)
    assert "g32" in result.cuda_core_compute.basis and "2 of 3 group widths" in result.cuda_core_compute.basis
    assert result.to_dict()["on_cuda_cores"] == [True, True, False]
    # Slower than the tensor-core model no term can explain (the model takes the faster path): only g128
    # counts here, even though g32 and g64 ran at more TFLOP/s.
    result = mb.grouped_terms(grouped_timings([20.0, 12.0, 9.0]), [42e12, 15e12, 5e12], H100)
    assert result.cuda_core_compute.value == pytest.approx(9 / 67)


def test_grouped_rule_prefers_stable_widths_and_may_find_none():
    timings = grouped_timings([50.0, 20.0, 1.0], invalid=(32,))
    result = mb.grouped_terms(timings, [42e12, 15e12, 5e12], H100)
    assert result.cuda_core_compute.value == pytest.approx(20 / 67)  # the unstable 50 loses
    none = mb.grouped_terms(grouped_timings([10.0, 10.0, 1.0]), [42e12, 15e12, 5e12], H100)
    assert none.cuda_core_compute is None
    with pytest.raises(RooflineError, match="one tensor-core rate per grouped timing"):
        mb.grouped_terms(timings, [1e12], H100)


def test_tensor_core_rate_is_the_models_dense_path_alone():
    target = Target(H100, "fp16", engine="torch")
    eff = target.kernel_efficiency
    for g in mb.GROUPED_GROUPS:
        network = mb.grouped_network(g)
        tensor = mb.tensor_core_flops_s(network, 500, H100)
        assert 0 < tensor < target.roof.flops_s
        # The model's grouped time is min(tensor-core, CUDA-core): its rate is the larger of the two.
        estimate = evaluate(network, target, 500)
        model_rate = estimate.flops[0] / estimate.compute_s[0]
        assert model_rate == pytest.approx(max(tensor, 67e12 * eff.cuda_core_compute))
        # Proportional to the roof's GEMM rate.
        assert mb.tensor_core_flops_s(network, 500, H100, 2 * target.roof.flops_s) == pytest.approx(
            2 * tensor
        )
    # Narrower groups fill tensor-core tiles worse.
    rates = [mb.tensor_core_flops_s(mb.grouped_network(g), 500, H100) for g in mb.GROUPED_GROUPS]
    assert rates[0] > rates[1] > rates[2]


def test_pointwise_checks_measure_bandwidth():
    timings = [
        timing_at(mb.add_network(), 88, bytes_s=0.9 * H100.dram_bandwidth_bytes_s, label="add"),
        timing_at(mb.bn_relu_network(), 66, bytes_s=0.7 * H100.dram_bandwidth_bytes_s, label="bn+relu"),
    ]
    result = mb.pointwise_checks(timings, H100)
    assert [b.name for b in result.bandwidth] == ["bandwidth", "bandwidth"]
    assert [b.value for b in result.bandwidth] == pytest.approx([0.9, 0.7])


def attention_timings(fractions, gemm_flops_s):
    out = []
    for seq, fraction in zip(mb.ATTENTION_SEQ_LENS, fractions, strict=True):
        batch = mb.ATTENTION_TOKENS // seq
        out.append(
            timing_at(mb.attention_network(seq), batch, flops_s=fraction * gemm_flops_s, label=f"S{seq}")
        )
    return out


def test_attention_compute_is_the_best_length_over_the_gemm_rate():
    result = mb.attention_terms(attention_timings([0.55, 0.72], 800e12), 800e12, "measured fp16 GEMM")
    assert result.attention_compute.value == pytest.approx(0.72)
    assert result.attention_compute.basis.startswith("S4096")
    with pytest.raises(RooflineError, match="GEMM rate must be positive"):
        mb.attention_terms(result.timings, 0.0, "x")


def test_gemm_reference_is_the_roof_the_model_times_attention_on():
    assert mb.gemm_reference(H100, 790e12) == (790e12, "measured fp16 GEMM 790 TFLOP/s")
    rate, source = mb.gemm_reference(H100)
    assert rate == pytest.approx(989.4e12 * 0.8) == Target(H100, "fp16", engine="torch").roof.flops_s
    assert "no fp16 GEMM measured" in source
    # GeForce: FP16 with FP32 accumulation (what torch runs) is the half-rate figure.
    ada = get_gpu("rtx4090")
    assert mb.gemm_reference(ada)[0] == pytest.approx(
        ada.peak("fp16", "fp32") * efficiency_for(ada).gemm_compute
    )
    with pytest.raises(RooflineError, match="GEMM rate must be positive"):
        mb.gemm_reference(H100, -1.0)


# ---------------------------------------------------------------------------- combination and the file
GEMM_FP16 = 0.85 * 989.4e12
BATCHES = {"depthwise": 66, "grouped": 500}


def synthetic_classes(gpu=H100, grouped_tflops=(20.0, 12.0, 9.0), attention=(0.55, 0.72)) -> KernelClasses:
    depthwise = mb.depthwise_terms(
        timing_at(mb.depthwise_network(), 66, bytes_s=0.6 * gpu.dram_bandwidth_bytes_s, label="dw"),
        gpu,
        MEMORY_BOUND_DW,
    )
    tensor = [mb.tensor_core_flops_s(mb.grouped_network(g), 500, gpu, GEMM_FP16) for g in mb.GROUPED_GROUPS]
    grouped = mb.grouped_terms(grouped_timings(list(grouped_tflops)), tensor, gpu)
    pointwise = mb.pointwise_checks([
        timing_at(mb.add_network(), 88, bytes_s=0.9 * gpu.dram_bandwidth_bytes_s, label="add C256"),
        timing_at(mb.bn_relu_network(), 66, bytes_s=0.7 * gpu.dram_bandwidth_bytes_s, label="bn+relu C256"),
    ], gpu)  # fmt: skip
    att = mb.attention_terms(attention_timings(attention, GEMM_FP16), GEMM_FP16, "measured fp16 GEMM")
    return KernelClasses(gpu.key, depthwise, grouped, pointwise, att)


def test_terms_combine_grouped_and_the_depthwise_lower_bound():
    classes = synthetic_classes()
    lower = classes.depthwise.cuda_core_compute_lower_bound.raw  # ~0.135 at 60% bandwidth
    assert list(classes.terms()) == list(CALIBRATED_TERMS)
    assert classes.kernel_efficiency() == pytest.approx(
        {"cuda_core_compute": 12 / 67, "depthwise_bandwidth": 0.6, "attention_compute": 0.72}
    )
    # No grouped width won by CUDA cores: the depthwise lower bound stands in.
    slow = synthetic_classes(grouped_tflops=(5.0, 4.0, 0.5))
    assert slow.kernel_efficiency()["cuda_core_compute"] == pytest.approx(lower)
    # A grouped estimate below the lower bound loses to it: the depthwise conv did reach that rate.
    low = synthetic_classes(grouped_tflops=(5.0, 4.0, 2.0))
    assert low.kernel_efficiency()["cuda_core_compute"] == pytest.approx(lower)
    # Only what was measured.
    assert KernelClasses("h100-sxm", attention=classes.attention).kernel_efficiency() == pytest.approx(
        {"attention_compute": 0.72}
    )
    assert KernelClasses("h100-sxm").kernel_efficiency() == {}


def calibration_with(classes, gpu=H100):
    from unit_tests.kernels.test_microbench_logic import copy_result, gemm_result

    gemms = [gemm_result(gpu, "fp16", 0.85)]
    return calibrate.calibration_document(gpu, gemms, copy_result(gpu, 0.9), ENVIRONMENT, classes)


def test_the_document_writes_kernel_efficiency_next_to_the_roof(tmp_path):
    classes = synthetic_classes()
    document = calibration_with(classes)
    assert list(document)[:7] == [
        "format", "version", "gpu", "source", "dram_bytes_s", "peak_flops_s", "kernel_efficiency"
    ]  # fmt: skip
    assert set(document["kernel_efficiency"]) == set(CALIBRATED_TERMS)
    assert document["kernel_efficiency"] == classes.kernel_efficiency()
    assert all(0 < v <= 1 for v in document["kernel_efficiency"].values())
    record = document["kernel_classes"]
    defaults = efficiency_for(H100)
    assert record["defaults"] == {name: getattr(defaults, name) for name in CALIBRATED_TERMS}
    assert record["met"] == {
        name: document["kernel_efficiency"][name] >= getattr(defaults, name) for name in CALIBRATED_TERMS
    }
    assert record["pointwise"]["met"] == [True, False] and record["pointwise"]["target"] == 0.85
    assert record["terms"]["depthwise_bandwidth"]["basis"].startswith("dw: ")
    assert json.loads(json.dumps(document)) == document  # plain JSON
    # Without the kernel classes the file is what it was.
    plain = calibration_with(None)
    assert "kernel_efficiency" not in plain and "kernel_classes" not in plain
    with pytest.raises(RooflineError, match="measured on a100-sxm4-80gb, not h100-sxm"):
        calibration_with(KernelClasses("a100-sxm4-80gb"))


def test_the_file_loads_and_the_model_then_predicts_the_measured_times(tmp_path):
    """The terms, put back into the model, reproduce the (synthetic) times they were derived from."""
    classes = synthetic_classes()
    document = calibration_with(classes)
    path = tmp_path / "calibration-h100-sxm.json"
    write_text(path, json.dumps(document, indent=1) + "\n")
    loaded = load_calibration(path, H100)
    assert dict(loaded.kernel_efficiency) == pytest.approx(document["kernel_efficiency"])
    target = Target(H100, "fp16", engine="torch", calibration=loaded)
    assert target.roof.flops_s == pytest.approx(GEMM_FP16)
    overhead = target.engine.kernel_overhead_s
    dw = evaluate(mb.depthwise_network(), target, 66)
    assert dw.time_s[0] - overhead == pytest.approx(classes.depthwise.timing.time_s)
    # The grouped term is g64's rate (the best width the CUDA cores won) on the CUDA-core path.
    g64 = classes.grouped.timings[1]
    assert 67e12 * target.kernel_efficiency.cuda_core_compute == pytest.approx(g64.flops_s)
    s4096 = classes.attention.timings[1]
    att = evaluate(mb.attention_network(4096), target, mb.ATTENTION_TOKENS // 4096)
    assert att.compute_s[0] == pytest.approx(s4096.time_s, rel=1e-3)  # the wave model's q ~ 1 here


def test_a_clipped_term_is_written_as_one_and_loads(tmp_path):
    with pytest.warns(ClippedTermWarning):
        classes = synthetic_classes(attention=(0.9, 1.08))
    document = calibration_with(classes)
    assert document["kernel_efficiency"]["attention_compute"] == 1.0
    assert document["kernel_classes"]["terms"]["attention_compute"]["raw"] == pytest.approx(1.08)
    path = tmp_path / "cal.json"
    write_text(path, json.dumps(document) + "\n")
    assert load_calibration(path, H100).kernel_efficiency["attention_compute"] == 1.0
    assert "(raw 1.080, clipped)" in calibrate.summary(document)


def test_summary_reports_each_term_against_its_default():
    document = calibration_with(synthetic_classes())
    text = calibrate.summary(document)
    line = {name: next(x for x in text.splitlines() if x.startswith(name)) for name in CALIBRATED_TERMS}
    defaults = efficiency_for(H100)
    assert "g64" in line["cuda_core_compute"]
    for name, value in [
        ("cuda_core_compute", "0.179"),
        ("depthwise_bandwidth", "0.600"),
        ("attention_compute", "0.720"),
    ]:
        assert value in line[name] and f"{getattr(defaults, name):g}" in line[name]
        verdict = " met " if float(value) >= getattr(defaults, name) else "MISSED"
        assert verdict in line[name]
    bn = next(x for x in text.splitlines() if x.startswith("bn+relu C256") and "%" in x)
    assert "70.0%" in bn and "MISSED" in bn
    missed = [name for name, value in (("cuda_core_compute", 0.179), ("depthwise_bandwidth", 0.6),
              ("attention_compute", 0.72)) if value < getattr(defaults, name)]  # fmt: skip
    assert text.splitlines()[-1].startswith(f"below target: {', '.join([*missed, 'bn+relu'])}")
    partial = calibration_with(KernelClasses("h100-sxm", attention=synthetic_classes().attention))
    assert "not measured" in next(
        x for x in calibrate.summary(partial).splitlines() if x.startswith("cuda_core")
    )


def test_calibrate_has_a_switch_for_a_quick_run():
    assert calibrate.build_parser().parse_args(["--skip-kernel-classes"]).skip_kernel_classes is True
    assert calibrate.build_parser().parse_args([]).skip_kernel_classes is False


# ----------------------------------------------------------------------------------- torch, on the CPU
def cells(program):
    return dict(
        zip(program.__code__.co_freevars, (c.cell_contents for c in program.__closure__), strict=True)
    )


@pytest.mark.torch
def test_programs_run_the_ops_the_model_counts():
    torch = pytest.importorskip("torch")
    cpu = torch.device("cpu")
    with torch.inference_mode():
        for groups in (8, 2):  # depthwise, grouped
            program = mb.conv_program(2, 8, 6, 3, groups, "fp32", cpu)
            x, w = cells(program)["x"], cells(program)["w"]
            assert w.shape == (8, 8 // groups, 3, 3) and x.is_contiguous(memory_format=torch.channels_last)
            assert tuple(program().shape) == (2, 8, 6, 6)
        add = mb.add_program(2, 4, 5, "fp32", cpu)
        a, b = cells(add)["a"], cells(add)["b"]
        assert torch.equal(add(), a + b)
        bn = mb.bn_relu_program(2, 4, 5, "fp32", cpu)
        c = cells(bn)
        scale = (c["weight"] / torch.sqrt(c["var"] + 1e-5)).view(1, -1, 1, 1)
        expected = torch.relu((c["x"] - c["mean"].view(1, -1, 1, 1)) * scale + c["bias"].view(1, -1, 1, 1))
        torch.testing.assert_close(bn(), expected)
        att = mb.attention_program(2, 3, 16, 8, "fp32", cpu)
        q, k, v = (cells(att)[n] for n in "qkv")
        expected = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8), dim=-1) @ v  # non-causal, scaled
        torch.testing.assert_close(att(), expected)


@pytest.mark.torch
def test_measuring_without_cuda_says_why():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible: this checks the machine without one")
    for bench in (mb.depthwise_conv, mb.grouped_conv, mb.pointwise, mb.attention, mb.kernel_classes):
        with pytest.raises(RooflineError, match="no CUDA GPU visible.*kernel-class microbenchmarks measure"):
            bench(QUICK, gpu=H100)


# ------------------------------------------------------------------------------------- on a GPU only
@pytest.mark.gpu
def test_kernel_classes_on_this_gpu(tmp_path):
    """Measures: needs a CUDA GPU in the database, skipped (conftest) without one."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible")
    gpu = mb.device_gpu()
    gemm = mb.gemm_peak("fp16", (8192,), QUICK, gpu=gpu)
    classes = mb.kernel_classes(QUICK, gpu=gpu, gemm_flops_s=gemm.rate)
    terms = classes.kernel_efficiency()
    assert set(terms) <= set(CALIBRATED_TERMS) and {"cuda_core_compute", "attention_compute"} <= set(terms)
    assert all(0 < v <= 1 for v in terms.values())
    copy = mb.copy_bandwidth(1 << 28, QUICK, gpu=gpu)
    document = calibrate.calibration_document(gpu, [gemm], copy, ENVIRONMENT, classes)
    path = tmp_path / "cal.json"
    write_text(path, json.dumps(document) + "\n")
    assert dict(load_calibration(path, gpu).kernel_efficiency) == pytest.approx(terms)


@pytest.mark.torch
def test_the_benchmarks_plumbing_with_the_timer_replaced(monkeypatch):
    """The measuring functions end to end on the CPU at small shapes, with ``_time`` replaced by one run
    and a fixed made-up time: checks that each builds, runs and counts the op it derives from. Not a
    measurement of anything."""
    torch = pytest.importorskip("torch")
    ran = []

    def fake_time(op, items, config, progress, math_mode, cudnn_benchmark=False):
        with torch.inference_mode():
            ran.append(tuple(op().shape))
        return measurement(1e3)  # 1 ms per launch

    monkeypatch.setattr(mb, "_time", fake_time)
    monkeypatch.setattr(mb, "require_cuda", lambda: None)
    monkeypatch.setattr(mb, "_device", lambda: torch.device("cpu"))
    monkeypatch.setattr(mb, "_check_fits", lambda *args: None)
    dw = mb.depthwise_conv(QUICK, gpu=H100, channels=8, spatial=6, batch=2)
    assert ran.pop() == (2, 8, 6, 6) and dw.timing.time_s == pytest.approx(1e-3)
    assert dw.timing.flops == 2 * 2 * 8 * 36 * 9 and dw.timing.details["kernels"] == ["dwconv3x3"]
    grouped = mb.grouped_conv(QUICK, gpu=H100, groups=(2, 4), channels=8, spatial=6, batch=2)
    assert ran[-2:] == [(2, 8, 6, 6)] * 2 and len(grouped.tensor_core_flops_s) == 2
    assert [t.details["groups"] for t in grouped.timings] == [2, 4]
    pw = mb.pointwise(QUICK, gpu=H100, channels=4, spatial=5, batch=3)
    assert ran[-2:] == [(3, 4, 5, 5)] * 2
    assert [t.nbytes for t in pw.timings] == [3 * 3 * 100 * 2, (4 * 3 * 100 + 8) * 2]
    att = mb.attention(
        QUICK, gpu=H100, gemm_flops_s=800e12, seq_lens=(16, 32), heads=2, head_dim=8, tokens=64
    )
    assert ran[-2:] == [(4, 2, 16, 8), (2, 2, 32, 8)]
    assert att.timings[1].flops == mb.attention_flops(2, 2, 32, 8)
    assert att.gemm_source == "measured fp16 GEMM 800 TFLOP/s"


@pytest.mark.torch
def test_calibrate_run_writes_the_terms_with_the_gpu_calls_replaced(monkeypatch, tmp_path, capsys):
    """``python -m kernels.calibrate``'s flow (measure, write, read back, report) with every GPU call
    replaced by the synthetic results above: the file it writes carries ``kernel_efficiency`` and loads.
    No GPU runs here and nothing is measured."""
    torch = pytest.importorskip("torch")
    from unit_tests.kernels.test_microbench_logic import copy_result, gemm_result

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: (9, 0))
    seen = {}

    def fake_classes(config, progress, *, gpu, gemm_flops_s):
        seen["gemm_flops_s"] = gemm_flops_s
        warnings.warn("attention_compute measured 1.020 > 1, clipped to 1 (made up)", ClippedTermWarning, 2)
        return synthetic_classes()

    monkeypatch.setattr(mb, "device_gpu", lambda device=None: H100)
    monkeypatch.setattr(mb, "gemm_peak", lambda dtype, *a, **k: gemm_result(H100, dtype, 0.85))
    monkeypatch.setattr(mb, "copy_bandwidth", lambda *a, **k: copy_result(H100, 0.9))
    monkeypatch.setattr(mb, "kernel_classes", fake_classes)
    monkeypatch.setattr(calibrate, "fingerprint", lambda device, packages: {"gpu": "made up"})
    out = tmp_path / "cal.json"
    assert calibrate.main(["--out", str(out), "--dtypes", "fp16,bf16", "--quick"]) == 0
    stdout, stderr = capsys.readouterr()
    assert seen["gemm_flops_s"] == pytest.approx(0.85 * 989.4e12)  # the fp16 GEMM it just measured
    assert "calibrate: warning: attention_compute measured 1.020 > 1, clipped to 1" in stderr
    written = json.loads(out.read_text())
    assert written["kernel_efficiency"] == pytest.approx(synthetic_classes().kernel_efficiency())
    assert dict(load_calibration(out, H100).kernel_efficiency) == pytest.approx(written["kernel_efficiency"])
    assert "depthwise_bandwidth" in stdout and "target: default" in stdout
    # --skip-kernel-classes: no kernel-class run, no kernel_efficiency (the defaults stay).
    seen.clear()
    assert calibrate.main(["--out", str(out), "--dtypes", "fp16", "--quick", "--skip-kernel-classes"]) == 0
    assert seen == {} and "kernel_efficiency" not in json.loads(out.read_text())
