"""NATS-Bench size search space: the architecture, and the block-additive sweep of all 32768 networks."""

from __future__ import annotations

import functools
import operator
import re
import time

import numpy as np
import pytest

from roofline import RooflineError, evaluate, get_gpu
from roofline.analysis.latency_table import Entry, LatencyTable, kernel_key, network_latency
from roofline.analysis.target import Target
from roofline.studies.spaces import nats
from roofline.studies.spaces.nats import (
    CHANNEL_CHOICES,
    FRONTIER_KINDS,
    SPACE_SIZE,
    channel_string,
    nats_network,
    sweep,
)

pytestmark = pytest.mark.analytic

_RNG = np.random.default_rng(20240611)
EDGE = [
    (8, 8, 8, 8, 8),
    (64, 64, 64, 64, 64),
    (8, 64, 64, 8, 8),  # C1 == C2, C3 == C4: both later cells' skips are Identity
    (64, 8, 16, 16, 24),  # C1 != C2: FactorizedReduce skip in cell 2; C3 != C4 in cell 4
    (16, 16, 16, 16, 16),
]
RANDOM = [tuple(int(c) for c in _RNG.choice(CHANNEL_CHOICES, 5)) for _ in range(20)]


@functools.cache
def _sweep(gpu: str, dtype: str, batch: int):
    return sweep(Target.of(gpu, dtype), batch)


@pytest.mark.parametrize(
    ("gpu", "dtype", "batch"), [("v100", "fp16", 256), ("v100", "fp16", 1), ("a100", "fp32", 7)]
)
@pytest.mark.parametrize("channels", EDGE + RANDOM, ids=channel_string)
def test_sweep_equals_whole_network_evaluation(gpu, dtype, batch, channels):
    """Blocks fuse exactly as the whole network: the sums equal ``evaluate`` of the full IR."""
    s = _sweep(gpu, dtype, batch)
    i = s.index(channels)
    assert tuple(s.channels[i]) == channels
    est = evaluate(nats_network(channels), Target.of(gpu, dtype), batch)
    assert s.latency_s[i] == pytest.approx(est.latency_s, rel=1e-9)
    assert s.throughput_img_s[i] == pytest.approx(est.throughput_img_s, rel=1e-9)
    assert s.flops[i] * batch == pytest.approx(est.total_flops, rel=1e-9)
    assert s.bytes[i] == pytest.approx(est.total_bytes, rel=1e-9)
    assert s.utilization[i] == pytest.approx(est.utilization, rel=1e-9)
    assert s.arithmetic_intensity[i] == pytest.approx(est.arithmetic_intensity, rel=1e-9)
    assert s.params[i] == est.network.params()
    assert s.peak == est.peak


@pytest.mark.parametrize(
    ("channels", "params"),
    # The benchmark's stored counts (0.011714, 0.107826, 0.713674 M parameters, CIFAR-10).
    [("8:8:8:8:8", 11_714), ("8:8:16:40:40", 107_826), ("64:64:64:64:64", 713_674)],
)
def test_params_match_the_benchmark(channels, params):
    assert nats_network(channels).params() == params


def test_network_shape_and_name():
    net = nats_network([8, 16, 24, 32, 40], num_classes=100)
    assert net.name == "nats_sss_8:16:24:32:40"
    assert net.layers[-1].output_shape == (1, 100)
    assert net.resolution == 32
    convs = [layer for layer in net.layers if layer.op == "conv"]
    # stem + 3 cells x (5 conv3x3 [+ 1 conv1x1 skip where C_in != C_out]) + 2 res blocks x 3 convs
    assert len(convs) == 1 + 15 + 2 + 6  # cells 2 and 4 change width (16 -> 24, 32 -> 40)
    assert nats_network([8] * 5, resolution=16).layers[-1].input_shapes[0] == (1, 8)


@pytest.mark.parametrize(
    "bad", [[8, 16, 24, 32], [8, 16, 24, 32, 41], [8, 16, 24, 32, 72], [8.0] * 5, [True] * 5, "8:16:x:32:40"]
)
def test_bad_channels_raise(bad):
    with pytest.raises(RooflineError, match="channel"):
        nats_network(bad)


def test_bad_arguments_raise():
    gpu = get_gpu("v100")
    for kwargs in ({"batch": 0}, {"resolution": 30}, {"num_classes": 0}):
        with pytest.raises(RooflineError):
            sweep(Target(gpu), **kwargs)
    for options in ({"dtype": "fp64"}, {"peak": "x"}):  # the target refuses these itself
        with pytest.raises(RooflineError):
            sweep(Target(gpu, **options))
    with pytest.raises(RooflineError, match="frontier"):
        _sweep("v100", "fp16", 256).frontier("utilization-flops")


def test_space_rows_and_ranges():
    s = _sweep("v100", "fp16", 256)
    assert s.networks == SPACE_SIZE == 32768
    assert len({tuple(c) for c in s.channels}) == SPACE_SIZE
    assert set(np.unique(s.channels)) == set(CHANNEL_CHOICES)
    assert np.all((s.utilization > 0) & (s.utilization <= 1))
    assert np.all(s.throughput_img_s > 0) and np.all(s.arithmetic_intensity > 0)
    assert s.index("64:64:64:64:64") == SPACE_SIZE - 1 and s.index([8] * 5) == 0
    assert s.names([1]) == ["8:8:8:8:16"]


def test_flops_and_params_monotone_in_every_position():
    s = _sweep("v100", "fp16", 256)
    grid = (len(CHANNEL_CHOICES),) * 5
    for values in (s.flops, s.params):
        cube = values.reshape(grid)
        for axis in range(5):
            assert np.all(np.diff(cube, axis=axis) > 0)


@pytest.mark.parametrize("batch", [1, 256])
@pytest.mark.parametrize("kind", FRONTIER_KINDS)
def test_frontiers_are_exactly_the_non_dominated(kind, batch):
    s = _sweep("v100", "fp16", batch)
    other = s.utilization if kind == "throughput-utilization" else s.flops
    points = np.column_stack([s.throughput_img_s, other])
    front = s.frontier(kind)
    assert len(front) > 0
    for i in front:
        assert not np.any(np.all(points >= points[i], axis=1) & np.any(points > points[i], axis=1))
    members = points[front]
    rest = np.setdiff1d(np.arange(len(points)), front)
    for i in rest:  # every other network is dominated by a frontier member
        assert np.any(np.all(members >= points[i], axis=1) & np.any(members > points[i], axis=1))
    # the fastest network is on both frontiers
    assert np.argmax(s.throughput_img_s) in front


def test_to_dict_summary():
    s = _sweep("v100", "fp16", 256)
    d = s.to_dict(top=3)
    assert d["networks"] == SPACE_SIZE and d["gpu"] == "v100-sxm2" and d["batch"] == 256
    assert d["frontier_sizes"] == {k: len(s.frontier(k)) for k in FRONTIER_KINDS}
    assert len(d["best_throughput"]) == 3 and "frontiers" not in d
    best = d["best_utilization"][0]
    assert best["utilization"] == pytest.approx(s.utilization.max())
    assert best["channels"] == channel_string(s.channels[np.argmax(s.utilization)])
    assert d["peak"]["kind"] == "datasheet" and d["peak"]["cmr"] == pytest.approx(s.cmr)
    full = s.to_dict(frontiers=True)
    assert len(full["frontiers"]["throughput-flops"]) == d["frontier_sizes"]["throughput-flops"]


def test_measured_table_entries_replace_the_model():
    """With a table, each network's latency is ``network_latency``'s; blocks share measured kernels."""
    gpu = get_gpu("v100")
    est = evaluate(nats_network("16:32:32:48:8"), Target(gpu, "fp16"), 64)
    entries = {
        kernel_key(k, 64): Entry(float(t) * 3, "measured", 10)
        for k, t in zip(est.fused.kernels, est.time_s, strict=True)
    }
    table = LatencyTable(gpu.key, "fp16", "tensorrt", entries)
    s = sweep(Target(gpu, "fp16"), 64, table=table)
    for ch in ("16:32:32:48:8", "16:32:32:48:64", "8:8:8:8:8", "16:8:8:8:8"):
        e = evaluate(nats_network(ch), Target(gpu, "fp16"), 64)
        i = s.index(ch)
        want = network_latency(e, table)
        assert s.latency_s[i] == pytest.approx(want.latency_s, rel=1e-9)
        assert s.measured_kernels[i] == want.measured
    assert s.measured_kernels[s.index("16:32:32:48:8")] == len(est.fused.kernels)
    with pytest.raises(RooflineError, match="not comparable"):
        sweep(Target(gpu, "fp32"), 64, table=table)


# --- Against the benchmark's own definition, in torch ----------------------------------------


def _torch_nats(channels, num_classes=10):
    """The xautodl classes (DynamicShapeTinyNet, InferCell, ReLUConvBN, ResNetBasicblock,
    FactorizedReduce at stride 1), written out from ``xautodl/models/...`` for this test.

    A node's sum is written a + b + c rather than Python's ``sum`` (which adds a no-op ``0 +``).
    """
    from torch import nn

    def relu_conv_bn(c_in, c_out, k, stride):
        return nn.Sequential(
            nn.ReLU(), nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out)
        )

    def op(name, c_in, c_out):
        if name == "nor_conv_3x3":
            return relu_conv_bn(c_in, c_out, 3, 1)
        if c_in == c_out:
            return nn.Identity()
        return nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))

    genotype = [
        [("nor_conv_3x3", 0)],
        [("nor_conv_3x3", 0), ("nor_conv_3x3", 1)],
        [("skip_connect", 0), ("nor_conv_3x3", 1), ("nor_conv_3x3", 2)],
    ]

    class InferCell(nn.Module):
        def __init__(self, c_in, c_out):
            super().__init__()
            self.edges = nn.ModuleList(
                nn.ModuleList(op(name, c_in if src == 0 else c_out, c_out) for name, src in node)
                for node in genotype
            )

        def forward(self, x):
            nodes = [x]
            for node, ops in zip(genotype, self.edges, strict=True):
                nodes.append(
                    functools.reduce(
                        operator.add, (f(nodes[src]) for (_, src), f in zip(node, ops, strict=True))
                    )
                )
            return nodes[-1]

    class ResNetBasicblock(nn.Module):
        def __init__(self, c_in, c_out):
            super().__init__()
            self.conv_a = relu_conv_bn(c_in, c_out, 3, 2)
            self.conv_b = relu_conv_bn(c_out, c_out, 3, 1)
            self.downsample = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

        def forward(self, x):
            basicblock = self.conv_b(self.conv_a(x))
            return self.downsample(x) + basicblock

    class DynamicShapeTinyNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(
                nn.Conv2d(3, channels[0], 3, padding=1, bias=False), nn.BatchNorm2d(channels[0])
            )
            c_prev, cells = channels[0], []
            for c, reduce in zip(channels, (False, True, False, True, False), strict=True):
                cells.append(ResNetBasicblock(c_prev, c) if reduce else InferCell(c_prev, c))
                c_prev = c
            self.cells = nn.ModuleList(cells)
            self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU())
            self.global_pooling = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Linear(c_prev, num_classes)

        def forward(self, x):
            x = self.stem(x)
            for c in self.cells:
                x = c(x)
            x = self.global_pooling(self.lastact(x))
            return self.classifier(x.view(x.size(0), -1))

    return DynamicShapeTinyNet()


def _pool(op: str) -> str:
    return re.sub(r"(global_)?avgpool(\d+x\d+)?", "avgpool", op)


@pytest.mark.torch
@pytest.mark.parametrize("channels", ["8:8:8:8:8", "8:16:24:32:40", "64:8:8:56:24", "64:64:64:64:64"])
def test_matches_the_torch_definition(channels):
    """Parameters, flop_counter FLOPs, and the traced network's prediction equal the builder's."""
    torch = pytest.importorskip("torch")
    from roofline.model.frontends.pytorch import flop_counter_total, trace_module

    ch = [int(c) for c in channels.split(":")]
    with torch.device("meta"):
        model = _torch_nats(ch, num_classes=100)
    ours = nats_network(ch, num_classes=100)
    assert sum(p.numel() for p in model.parameters()) == ours.params()
    assert flop_counter_total(model, (1, 3, 32, 32)) == ours.flops()
    traced = trace_module(model, (1, 3, 32, 32), name="traced")
    gpu = get_gpu("v100")
    for batch in (1, 256):
        a, b = evaluate(traced, Target(gpu, "fp16"), batch), evaluate(ours, Target(gpu, "fp16"), batch)
        assert a.latency_s == pytest.approx(b.latency_s, rel=1e-12)
        assert a.total_bytes == pytest.approx(b.total_bytes, rel=1e-12)
        # The builder's head pool is the equivalent 8x8 window (see roofline.studies.spaces.nats.head).
        assert [_pool(k.describe()) for k in a.fused.kernels] == [
            _pool(k.describe()) for k in b.fused.kernels
        ]


def test_bench_nats_sweep(benchmark):
    """All 32768 networks on V100 FP16 at batch 256 (target: < 5 s on 2 cores); prints the frontiers."""
    gpu = get_gpu("v100")

    def run():
        nats._blocks.cache_clear()  # build the 280 block networks too, as a first call does
        return sweep(Target(gpu, "fp16"), 256)

    start = time.perf_counter()
    s = benchmark(run)
    sizes = {kind: len(s.frontier(kind)) for kind in FRONTIER_KINDS}
    print(
        f"\nNATS-Bench SSS, V100 fp16 batch 256: frontier sizes {sizes}, {time.perf_counter() - start:.2f} s"
    )
    assert s.networks == SPACE_SIZE
