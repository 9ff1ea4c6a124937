"""Batch size (issue 4): live activations, the largest batch that fits, the CMR crossing, the sweep."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from roofline import DTYPE_BYTES, FusedNetwork, RooflineError, evaluate, get_gpu
from roofline.analysis.batch import (
    RESERVED_BYTES,
    WORKSPACE_BYTES,
    batch_sweep,
    cmr_crossing_batch,
    live_activation_elems,
    memory_fit,
    resolve_batch,
    sweep_batches,
)
from roofline.analysis.target import Target
from roofline.model import ir, zoo
from roofline.model.builder import NetBuilder
from roofline.model.ir import numel
from unit_tests.helpers import conv, ew, network

pytestmark = pytest.mark.analytic

V100 = get_gpu("v100")
X = (1, 8, 16, 16)
HW = 16 * 16


def _fused(layers, outputs=None):
    return FusedNetwork.of(network(layers, [("x", X)], outputs))


def _concat(name, srcs, shapes):
    out = (1, sum(s[1] for s in shapes), *shapes[0][2:])
    return ir.Concat(name=name, inputs=tuple(srcs), output=name, input_shapes=tuple(shapes), output_shape=out)


# --- live_activation_elems ------------------------------------------------------------------------------


def test_live_activations_of_a_chain():
    # x(8) -> a(64) -> b(16) -> c(4): each kernel holds its input and its output, nothing else.
    a = conv("a", "x", X, 64, 3)
    b = conv("b", "a", a.output_shape, 16, 1)
    c = conv("c", "b", b.output_shape, 4, 1)
    fused = _fused([a, b, c])
    assert [k.name for k in fused.kernels] == ["a", "b", "c"]
    by_kernel = [(8 + 64) * HW, (64 + 16) * HW, (16 + 4) * HW]
    assert live_activation_elems(fused) == max(by_kernel) == 80 * HW


def test_live_activations_of_a_residual_block():
    # x(8) -> conv1(16) -> conv2(16) -> add(conv2, conv1): the add runs in conv2's epilogue, so conv1's
    # output is alive while conv2 writes the sum.
    c1 = conv("c1", "x", X, 16, 3)
    c2 = conv("c2", "c1", c1.output_shape, 16, 3)
    add = ew("add", "add", ["c2", "c1"], [c2.output_shape, c1.output_shape])
    fused = _fused([c1, c2, add])
    assert [(k.name, k.output) for k in fused.kernels] == [("c1", "c1"), ("c2", "add")]
    at_c1 = (8 + 16) * HW  # x, c1
    at_c2 = (16 + 16) * HW  # c1, add (c2 itself never reaches DRAM)
    assert live_activation_elems(fused) == max(at_c1, at_c2) == 8192


def test_live_activations_keep_a_skip_alive_across_kernels():
    # x -> c1 -> c2 -> c3 -> add(c3, c1): c1 lives through c2 and c3.
    c1 = conv("c1", "x", X, 16, 3)
    c2 = conv("c2", "c1", c1.output_shape, 16, 3)
    c3 = conv("c3", "c2", c2.output_shape, 16, 3)
    add = ew("add", "add", ["c3", "c1"], [c3.output_shape, c1.output_shape])
    fused = _fused([c1, c2, c3, add])
    assert len(fused.kernels) == 3
    assert live_activation_elems(fused) == 3 * 16 * HW  # c1, c2 and the sum during the last kernel


def test_live_activations_keep_concat_inputs_alive_while_the_join_is_read():
    # a, b from x; cat = [a, b] is never materialized separately: c reads it, so a and b live until c.
    a = conv("a", "x", X, 8, 3)
    b = conv("b", "x", X, 8, 3)
    cat = _concat("cat", ["a", "b"], [a.output_shape, b.output_shape])
    c = conv("c", "cat", cat.output_shape, 32, 1)
    fused = _fused([a, b, cat, c])
    assert [k.name for k in fused.kernels] == ["a", "b", "c"]
    during_b = (8 + 8 + 8) * HW  # x, a, b
    during_c = (8 + 8 + 32) * HW  # a, b (the joined tensor), c
    assert live_activation_elems(fused) == max(during_b, during_c) == 12288


def test_live_activations_of_nested_concats():
    a = conv("a", "x", X, 8, 3)
    b = conv("b", "x", X, 8, 3)
    cat1 = _concat("cat1", ["a", "b"], [a.output_shape, b.output_shape])
    c = conv("c", "cat1", cat1.output_shape, 8, 1)
    cat2 = _concat("cat2", ["cat1", "c"], [cat1.output_shape, c.output_shape])
    d = conv("d", "cat2", cat2.output_shape, 4, 1)
    fused = _fused([a, b, cat1, c, cat2, d])
    assert live_activation_elems(fused) == (8 + 8 + 8 + 4) * HW  # a, b, c and d while d runs


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 64), min_size=1, max_size=6))
def test_live_activations_of_random_chains(widths):
    layers, src, shape = [], "x", X
    for i, w in enumerate(widths):
        layer = conv(f"c{i}", src, shape, w, 1)
        layers.append(layer)
        src, shape = layer.output, layer.output_shape
    channels = [X[1], *widths]
    expected = max(channels[i] + channels[i + 1] for i in range(len(widths))) * HW
    assert live_activation_elems(_fused(layers)) == expected


@pytest.mark.parametrize("name", ["resnet50", "efficientnet_b0", "vgg16", "dpn68", "hrnet_w18_small"])
def test_live_activations_bounded_by_kernels_and_by_all_tensors(name):
    fused = FusedNetwork.of(zoo.load(name))
    live = live_activation_elems(fused)
    every_tensor = sum(numel(s) for _, s in fused.network.inputs) + sum(
        numel(k.output_shape) for k in fused.kernels
    )
    assert fused.activation_elems.max() <= live < every_tensor


# --- memory_fit -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gpu", ["v100", "t4", "h100", "jetson-nano", "a100-80gb"])
@pytest.mark.parametrize("name", ["resnet50", "efficientnet_b0", "vgg16", "cifar_resnet56"])
@pytest.mark.parametrize("dtype", ["fp16", "fp32"])
def test_memory_fit_is_the_largest_batch_that_fits(name, gpu, dtype):
    g = get_gpu(gpu)
    fused = FusedNetwork.of(zoo.load(name))
    fit = memory_fit(fused, Target(g, dtype))
    assert fit.max_batch >= 1
    assert fit.bytes_at(fit.max_batch) <= g.memory_bytes < fit.bytes_at(fit.max_batch + 1)
    assert fit.weight_bytes == int(fused.weight_elems.sum()) * DTYPE_BYTES[dtype]
    assert fit.live_bytes_per_image == live_activation_elems(fused) * DTYPE_BYTES[dtype]
    assert (fit.workspace_bytes, fit.reserved_bytes) == (WORKSPACE_BYTES, RESERVED_BYTES)
    assert fit.to_dict()["max_batch"] == fit.max_batch
    assert resolve_batch("max", fused, Target(g, dtype)) == fit.max_batch
    assert resolve_batch(7, fused, Target(g, dtype)) == 7


def test_narrower_dtype_fits_at_least_twice_the_batch():
    fused = FusedNetwork.of(zoo.load("resnet50"))
    assert (
        memory_fit(fused, Target(V100, "fp16")).max_batch
        >= 2 * memory_fit(fused, Target(V100, "fp32")).max_batch
    )


def _huge_linear():
    b = NetBuilder("huge", (1, 1 << 17, 1, 1))
    b.linear(b.input, 1 << 16, bias=False)  # 2^33 weights: 16 GiB in fp16
    return b.network()


def test_model_that_cannot_fit_batch_1_raises():
    fused = FusedNetwork.of(_huge_linear())
    assert fused.weight_elems.sum() == 2**33
    with pytest.raises(RooflineError, match="does not fit on NVIDIA T4"):
        memory_fit(fused, Target.of("t4", "fp16"))
    with pytest.raises(RooflineError, match="does not fit"):
        resolve_batch("max", fused, Target.of("t4", "fp16"))
    # 16 GiB of int8 weights fit on an 80 GB H100, with room for a large batch.
    assert memory_fit(fused, Target.of("h100", "int8")).max_batch > 1000


# --- cmr_crossing_batch -----------------------------------------------------------------------------------


def test_resnet50_on_v100_crosses_the_cmr_at_batch_25():
    fused = FusedNetwork.of(zoo.load("resnet50"))
    sweep = batch_sweep(fused, Target(V100, "fp16"))
    assert sweep.cmr_crossing_batch == 25
    assert evaluate(fused, Target(V100, "fp16"), 24).arithmetic_intensity < sweep.cmr
    assert evaluate(fused, Target(V100, "fp16"), 25).arithmetic_intensity >= sweep.cmr
    assert sweep.to_dict()["cmr_crossing_fits"] is True


@pytest.mark.parametrize("gpu", ["v100", "t4", "a100", "h100"])
@pytest.mark.parametrize("name", ["resnet50", "resnet18", "vgg16", "wide_resnet50_2", "repvgg_b1", "dpn92"])
def test_crossing_is_the_smallest_batch_reaching_the_cmr(name, gpu):
    g = get_gpu(gpu)
    fused = FusedNetwork.of(zoo.load(name))
    sweep = batch_sweep(fused, Target(g, "fp16"))
    n = sweep.cmr_crossing_batch
    if n is None:
        assert sweep.ai_limit <= sweep.cmr
        return
    assert evaluate(fused, Target(g, "fp16"), n).arithmetic_intensity >= sweep.cmr
    if n > 1:
        assert evaluate(fused, Target(g, "fp16"), n - 1).arithmetic_intensity < sweep.cmr


def test_efficientnet_b0_never_crosses():
    sweep = batch_sweep(FusedNetwork.of(zoo.load("efficientnet_b0")), Target(V100, "fp16"))
    assert sweep.ai_limit <= sweep.cmr and sweep.cmr_crossing_batch is None
    d = sweep.to_dict()
    assert d["cmr_crossing_batch"] is None and d["cmr_crossing_fits"] is False
    assert max(p["arithmetic_intensity"] for p in d["points"]) < sweep.cmr


def _brute_force_crossing(f, a, w, cmr, limit):
    n = np.arange(1, limit + 1, dtype=np.int64)
    hit = np.flatnonzero(n * f >= cmr * (n * a + w))
    return int(n[hit[0]]) if hit.size else None


@settings(max_examples=200, deadline=None)
@given(f=st.integers(1, 2000), a=st.integers(1, 200), w=st.integers(0, 5000), cmr=st.integers(1, 200))
def test_crossing_formula_matches_brute_force(f, a, w, cmr):
    assume(not (w == 0 and f == cmr * a))  # the degenerate tie: test_weightless_tie_reaches_the_cmr
    got = cmr_crossing_batch(f, a, w, cmr)
    if f <= cmr * a:
        assert got is None
        assert _brute_force_crossing(f, a, w, cmr, 10_000) is None
    else:
        # At N = cmr w + 1, N (f - cmr a) >= cmr w + 1 > cmr w: the search always ends in range.
        assert got == _brute_force_crossing(f, a, w, cmr, cmr * w + 1)


def test_weightless_tie_reaches_the_cmr():
    assert cmr_crossing_batch(100.0, 1.0, 0.0, 100.0) == 1


# --- batch_sweep ------------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 1 << 20))
def test_sweep_batches_are_powers_of_two_then_the_max(max_batch):
    batches = sweep_batches(max_batch)
    assert batches[-1] == max_batch
    assert all(x < y for x, y in zip(batches, batches[1:], strict=False))
    powers = [1 << i for i in range(max_batch.bit_length())]
    assert batches[: len(powers)] == powers
    assert len(batches) == len(powers) + (max_batch not in powers)


@pytest.mark.parametrize("name", ["resnet50", "efficientnet_b0", "cifar_resnet56", "mobilenetv2_100"])
def test_batch_sweep(name):
    fused = FusedNetwork.of(zoo.load(name))
    sweep = batch_sweep(fused, Target(V100, "fp16"))
    fit = memory_fit(fused, Target(V100, "fp16"))
    assert sweep.fit == fit
    batches = [e.batch for e in sweep.estimates]
    assert batches == sweep_batches(fit.max_batch)
    assert batches[: batches.index(1 << (fit.max_batch.bit_length() - 1)) + 1] == [
        1 << i for i in range(fit.max_batch.bit_length())
    ]
    ai = [e.arithmetic_intensity for e in sweep.estimates]
    assert all(x <= y for x, y in zip(ai, ai[1:], strict=False))
    assert ai[-1] < sweep.ai_limit
    # F / A from the fused arrays, independent of the sweep's own arithmetic.
    flops = sum(k.flops() for k in fused.kernels)
    act = sum(sum(numel(s) for _, s in k.inputs) + numel(k.output_shape) for k in fused.kernels)
    assert sweep.ai_limit == pytest.approx(flops / (2 * act), rel=1e-12)
    expected = cmr_crossing_batch(
        flops, 2 * act, 2 * float(fused.weight_elems.sum()), V100.datasheet_roof("fp16").cmr
    )
    assert sweep.cmr_crossing_batch == expected

    d = sweep.to_dict(layers=False)
    assert {"model", "gpu", "dtype", "max_batch", "ai_limit", "cmr_crossing_batch", "points"} <= set(d)
    assert (d["model"], d["gpu"], d["dtype"]) == (name, "v100-sxm2", "fp16")
    assert d["max_batch"] == fit.max_batch and d["ai_limit"] == sweep.ai_limit
    assert [p["batch"] for p in d["points"]] == batches
    for p, e in zip(d["points"], sweep.estimates, strict=True):
        assert {"batch", "arithmetic_intensity", "throughput_img_s", "utilization"} <= set(p)
        assert p["arithmetic_intensity"] == e.arithmetic_intensity
        assert p["throughput_img_s"] == e.throughput_img_s and p["utilization"] == e.utilization
        assert p["memory_bytes"] <= V100.memory_bytes
        assert "layer_arithmetic_intensity" not in p
    assert "layers" not in d
    with_layers = sweep.to_dict(layers=True)
    assert len(with_layers["layers"]) == len(fused.kernels)
    assert all(len(p["layer_arithmetic_intensity"]) == len(fused.kernels) for p in with_layers["points"])


def test_kernel_ai_limits_bound_every_kernel():
    fused = FusedNetwork.of(zoo.load("resnet50"))
    sweep = batch_sweep(fused, Target(V100, "fp16"))
    for e in sweep.estimates:
        assert np.all(e.kernel_ai() <= sweep.kernel_ai_limit * (1 + 1e-12))
    assert math.isfinite(sweep.ai_limit)
