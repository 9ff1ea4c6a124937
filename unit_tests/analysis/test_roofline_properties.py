"""Hypothesis properties of the roofline, the fusion pass and the IR format."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roofline import all_gpus, fuse
from roofline.analysis.predict import FusedNetwork, evaluate
from roofline.analysis.target import Target
from roofline.model import ir, zoo
from roofline.model.ir_file import read_network
from unit_tests.helpers import bn, conv, ew, network

pytestmark = pytest.mark.analytic

ZOO = st.sampled_from(zoo.zoo_names())
GPU_DTYPES = st.sampled_from([(g, d) for g in all_gpus() for d in g.peak_flops_s])


@settings(max_examples=60, deadline=None)
@given(name=ZOO, b1=st.integers(1, 4096), b2=st.integers(1, 4096))
def test_ai_is_monotone_in_batch_and_bounded_by_its_limit(name, b1, b2):
    lo, hi = sorted((b1, b2))
    fused = FusedNetwork.of(zoo.load(name))
    gpu = all_gpus()[0]
    ai = [evaluate(fused, Target(gpu, "fp32"), b).arithmetic_intensity for b in (lo, hi)]
    # With weights read once per batch, AI(N) = N F / (N A + W) -> F / A.
    limit = fused.flops.sum() / (fused.activation_elems.sum() * 4)
    assert ai[0] <= ai[1] * (1 + 1e-12)
    assert ai[1] <= limit * (1 + 1e-12)


@settings(max_examples=60, deadline=None)
@given(name=ZOO, gpu_dtype=GPU_DTYPES, batch=st.integers(1, 1024), ai=st.floats(0, 1e6))
def test_attainable_never_exceeds_peak(name, gpu_dtype, batch, ai):
    gpu, dtype = gpu_dtype
    est = evaluate(zoo.load(name), Target(gpu, dtype), batch)
    assert est.model_roof.attainable_flops_s(ai) <= est.model_roof.flops_s
    assert np.all(est.flops / est.time_s <= est.model_roof.flops_s * (1 + 1e-12))
    assert est.achieved_flops_s <= est.peak.flops_s
    assert 0 < est.utilization <= 1


SHAPE = (1, 16, 8, 8)


@st.composite
def random_graphs(draw):
    """Random DAGs of same-shaped tensors: branching gives multi-reader tensors."""
    tensors, layers = ["x"], []
    for i in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(["conv", "dw", "bn", "relu", "add", "mul", "pool", "cat"]))
        src = draw(st.sampled_from(tensors))
        name = f"l{i}"
        if kind == "conv":
            layers.append(conv(name, src, SHAPE, 16, draw(st.sampled_from([1, 3])), bias=draw(st.booleans())))
        elif kind == "dw":
            layers.append(conv(name, src, SHAPE, 16, 3, groups=16))
        elif kind == "bn":
            layers.append(bn(name, src, SHAPE))
        elif kind == "relu":
            layers.append(ew(name, "relu", [src], [SHAPE]))
        elif kind in ("add", "mul"):
            other = draw(st.sampled_from(tensors))
            layers.append(ew(name, kind, [src, other], [SHAPE, SHAPE]))
        elif kind == "pool":
            layers.append(ir.Pool(name=name, inputs=(src,), output=name, input_shapes=(SHAPE,),
                                  output_shape=SHAPE, mode="max", kernel=(3, 3), padding=(1, 1)))  # fmt: skip
        else:
            half = (1, 8, 8, 8)
            other = draw(st.sampled_from(tensors))
            layers.append(ir.Concat(name=name, inputs=(src, other), output=name,
                                    input_shapes=(half, half), output_shape=SHAPE))  # fmt: skip
        tensors.append(name)
    outputs = draw(st.lists(st.sampled_from(tensors[1:]), min_size=1, max_size=3, unique=True))
    return network(layers, [("x", SHAPE)], outputs=outputs)


@settings(max_examples=200, deadline=None)
@given(net=random_graphs(), dtype_bytes=st.sampled_from([1, 2, 4]))
def test_fusion_never_increases_bytes_and_keeps_flops(net, dtype_bytes):
    kernels = fuse(net)
    assert sum(k.bytes(dtype_bytes) for k in kernels) <= sum(layer.bytes(dtype_bytes) for layer in net.layers)
    assert sum(k.flops() for k in kernels) == net.flops()
    placed = [layer.name for k in kernels for layer in k.layers]
    assert sorted(placed) == sorted(layer.name for layer in net.layers if layer.op != "concat")


@settings(max_examples=100, deadline=None)
@given(net=random_graphs())
def test_ir_round_trips_through_the_zoo_format(net):
    assert read_network(json.loads(zoo.dumps(net))) == net


@pytest.mark.parametrize("name", zoo.zoo_names())
def test_committed_zoo_files_round_trip(name):
    net = zoo.load(name)
    assert read_network(json.loads(zoo.dumps(net))) == net
    assert net.batch == 1 and net.flops() > 0 and not net.unsupported_ops
