"""The NATS-Bench size search space (SSS), built without torch and evaluated whole, vectorized.

NATS-Bench (Dong, Liu, Musial, Gabrys, "NATS-Bench: Benchmarking NAS
Algorithms for Architecture Topology and Size", TPAMI 2021), size search
space: one fixed cell topology, five channel positions, each from
{8, 16, ..., 64}, so 8^5 = 32768 networks on CIFAR (32x32). DESIGN.md,
"Search spaces named by the studies" and "Utilization as a NAS filter".

The definition is the benchmark's own code, D-X-Y/AutoDL-Projects:

* ``xautodl/models/__init__.py`` (``get_cell_based_tiny_net``, config name
  ``infer.shape.tiny``): channels parsed from the "C0:C1:C2:C3:C4" string,
  ``DynamicShapeTinyNet(channels, genotype, num_classes)``;
* ``exps/NATS-Bench/main-sss.py``: the genotype ``GENOTYPE`` below, "the
  architecture with the highest accuracy on CIFAR-100" of the topology space;
* ``xautodl/models/shape_infers/InferTinyCellNet.py`` (``DynamicShapeTinyNet``):
  stem Conv3x3(3, C0, bias=False) + BN; then with N = len(channels) // 3 = 1
  positions [cell, ResNetBasicblock(stride 2), cell, ResNetBasicblock(stride 2),
  cell] taking C0..C4 in order, c_prev starting at C0; then BN + ReLU
  ("lastact"), global average pooling and Linear(C4, num_classes);
* ``xautodl/models/cell_infers/cells.py`` (``InferCell``): node j is the sum of
  op(node i) over its edges; an op on node 0 maps C_in -> C_out, the others
  C_out -> C_out; the output is the last node;
* ``xautodl/models/cell_operations.py``: ``nor_conv_3x3`` = ReLUConvBN =
  ReLU -> Conv3x3(bias=False, since affine) -> BN; ``skip_connect`` = Identity if
  stride 1 and C_in == C_out, else FactorizedReduce, which at stride 1 is
  Conv1x1(bias=False) -> BN with no ReLU (the ReLU is in its stride-2 path only);
  ``ResNetBasicblock(inplanes, planes, 2)``: conv_a = ReLUConvBN(3x3, stride 2),
  conv_b = ReLUConvBN(3x3, stride 1), downsample = AvgPool2d(2, 2) ->
  Conv1x1(bias=False), output = residual + basicblock.

Parameters counted this way (BN: weight and bias) give 11,714 for 8:8:8:8:8,
107,826 for 8:8:16:40:40 and 713,674 for 64:64:64:64:64 on CIFAR-10, the
benchmark's stored counts (0.011714, 0.107826, 0.713674 M) as quoted by a
third-party reimplementation; ``unit_tests/studies/test_nats_space.py`` checks them.

Evaluating the whole space is block-additive (``roofline.analysis.blocks``): the network
splits at kernel boundaries into stem(C0), cell0(C0 -> C0), res1(C0 -> C1),
cell2(C1 -> C2), res3(C2 -> C3), cell4(C3 -> C4), head(C4). Every boundary
tensor is read by two or more layers (a cell input by two ReLUs and the skip,
a reduction block's input by a ReLU and the AvgPool) or, at the head, by a BN
that cannot fold into a conv kernel that already has an epilogue, so no kernel
spans two blocks and the network's totals are the sums of its blocks'
(``unit_tests/studies/test_nats_space.py`` checks this against ``roofline.analysis.predict.evaluate``
for random and edge configurations).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from roofline.analysis.blocks import block_costs
from roofline.analysis.latency_table import LatencyTable
from roofline.analysis.predict import check_batch
from roofline.analysis.target import Target
from roofline.errors import RooflineError
from roofline.hardware.gpus import Roof
from roofline.model.builder import NetBuilder
from roofline.model.ir import Network
from roofline.studies.pareto import pareto_front

#: The channel counts each position may take (NATS-Bench, Section 3: {8, 16, ..., 64}).
CHANNEL_CHOICES = (8, 16, 24, 32, 40, 48, 56, 64)
#: Channel positions: cell, reduction, cell, reduction, cell (``DynamicShapeTinyNet`` with N = 1).
POSITIONS = 5
#: The fixed cell of the size space (``exps/NATS-Bench/main-sss.py``).
GENOTYPE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
#: True where a position is a stride-2 ResNetBasicblock (``layer_reductions`` with N = 1).
REDUCTIONS = (False, True, False, True, False)
#: Number of networks in the space, 8^5.
SPACE_SIZE = len(CHANNEL_CHOICES) ** POSITIONS
#: ``SpaceSweep.frontier`` kinds.
FRONTIER_KINDS = ("throughput-utilization", "throughput-flops")

Cell = tuple[tuple[tuple[str, int], ...], ...]


def parse_genotype(arch: str) -> Cell:
    """A cell string ``|op~i|+|op~i|op~j|+...`` as nodes of (op, input node) edges.

    The format of ``Structure.str2structure`` in
    ``xautodl/models/cell_searchs/genotypes.py``: nodes separated by ``+``, each
    edge ``op~i`` taking node i (node 0 = the cell input).
    """
    nodes = []
    for j, node in enumerate(arch.split("+"), start=1):
        edges = []
        for edge in filter(None, node.split("|")):
            op, _, src = edge.partition("~")
            if not src.isdigit() or int(src) >= j:
                raise RooflineError(f"bad cell edge {edge!r} in {arch!r}: write op~i with i < {j}")
            edges.append((op, int(src)))
        nodes.append(tuple(edges))
    return tuple(nodes)


CELL = parse_genotype(GENOTYPE)


def channel_string(channels: Sequence[int]) -> str:
    """The benchmark's name for a network, e.g. ``8:16:24:32:40``."""
    return ":".join(str(int(c)) for c in channels)


def check_channels(channels: Sequence[int] | str) -> tuple[int, ...]:
    """``channels`` as 5 ints from ``CHANNEL_CHOICES``; a "C0:...:C4" string is accepted too."""
    if isinstance(channels, str):
        try:
            channels = [int(c) for c in channels.split(":")]
        except ValueError:
            raise RooflineError(
                f"bad channel string {channels!r}: write 5 numbers like 8:16:24:32:40"
            ) from None
    values = tuple(channels)
    if len(values) != POSITIONS or not all(
        isinstance(c, int | np.integer) and not isinstance(c, bool) and int(c) in CHANNEL_CHOICES
        for c in values
    ):
        raise RooflineError(
            f"NATS-Bench size-space channels must be {POSITIONS} ints, each one of "
            f"{', '.join(map(str, CHANNEL_CHOICES))}; got {values!r}"
        )
    return tuple(int(c) for c in values)


def _check_resolution(resolution: int) -> None:
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 4 or resolution % 4:
        raise RooflineError(
            f"resolution must be a positive multiple of 4 (two stride-2 blocks), got {resolution!r}"
        )


# --- The layers, in the order the benchmark's forward() runs them ---------------------------


def _relu_conv_bn(b: NetBuilder, x: str, c_out: int, kernel: int, stride: int) -> str:
    """``ReLUConvBN``: ReLU -> Conv(kernel, stride, padding kernel // 2, no bias) -> BN."""
    return b.bn(b.conv(b.act(x, "relu"), c_out, kernel, stride))


def _op(b: NetBuilder, name: str, x: str, c_out: int) -> str:
    """One cell edge at stride 1 (``OPS`` in ``cell_operations.py``)."""
    if name == "nor_conv_3x3":
        return _relu_conv_bn(b, x, c_out, 3, 1)
    if name == "nor_conv_1x1":
        return _relu_conv_bn(b, x, c_out, 1, 1)
    if name == "skip_connect":
        if b.channels(x) == c_out:
            return x  # Identity
        return b.bn(b.conv(x, c_out, 1))  # FactorizedReduce at stride 1: conv1x1 -> BN, no ReLU
    raise RooflineError(f"cell op {name!r} is not in the size space's cell; it uses {GENOTYPE}")


def stem(b: NetBuilder, x: str, c: int) -> str:
    """``stem``: Conv3x3(3, C0, padding 1, no bias) -> BN."""
    with b.scope("stem"):
        return b.bn(b.conv(x, c, 3))


def cell(b: NetBuilder, x: str, c_out: int, cell_nodes: Cell = CELL) -> str:
    """``InferCell(genotype, C_in, C_out, stride 1)``: node j = sum of its edges' ops, left to right.

    Python's ``sum`` starts from 0; ``0 + t`` is a no-op and is left out.
    """
    nodes = [x]
    for j, edges in enumerate(cell_nodes, start=1):
        total = None
        for k, (name, src) in enumerate(edges):
            with b.scope(f"node{j}.edge{k}"):
                y = _op(b, name, nodes[src], c_out)
                total = y if total is None else b.add(total, y)
        nodes.append(total)
    return nodes[-1]


def reduction(b: NetBuilder, x: str, c_out: int) -> str:
    """``ResNetBasicblock(inplanes, planes, stride 2)``: residual + conv_b(conv_a(x))."""
    with b.scope("conv_a"):
        y = _relu_conv_bn(b, x, c_out, 3, 2)
    with b.scope("conv_b"):
        y = _relu_conv_bn(b, y, c_out, 3, 1)
    with b.scope("downsample"):
        residual = b.conv(b.pool(x, "avg", 2, 2), c_out, 1)
    return b.add(residual, y)


def head(b: NetBuilder, x: str, num_classes: int) -> str:
    """``lastact`` (BN -> ReLU), global average pooling, ``classifier`` Linear(C4, classes)."""
    with b.scope("lastact"):
        y = b.act(b.bn(x), "relu")
    return b.linear(b.global_pool(y), num_classes)


def nats_network(channels: Sequence[int] | str, num_classes: int = 10, resolution: int = 32) -> Network:
    """The size-space network with ``channels`` (C0..C4), at batch 1, named ``nats_sss_C0:...:C4``.

    CIFAR-10 is ``num_classes=10``, CIFAR-100 ``100``; ImageNet16-120 is
    ``num_classes=120, resolution=16``.
    """
    ch = check_channels(channels)
    _check_resolution(resolution)
    b = NetBuilder(
        f"nats_sss_{channel_string(ch)}", (1, 3, resolution, resolution),
        source=f"NATS-Bench size space, channels {channel_string(ch)}, cell {GENOTYPE}",
    )  # fmt: skip
    x = stem(b, b.input, ch[0])
    for i, (c, reduce) in enumerate(zip(ch, REDUCTIONS, strict=True)):
        with b.scope(f"cells.{i}"):
            x = reduction(b, x, c) if reduce else cell(b, x, c)
    head(b, x, num_classes)
    return b.network(resolution=resolution)


# --- Block-additive evaluation of the whole space -------------------------------------------


def _block(name: str, shape: tuple[int, ...], body: Callable[[NetBuilder, str], str]) -> Network:
    b = NetBuilder(name, shape)
    body(b, b.input)
    return b.network()


@cache
def _blocks(num_classes: int, resolution: int) -> tuple[tuple[Network, ...], tuple[np.ndarray, ...]]:
    """Every distinct block of the space and, per block position, an index table into them.

    Positions: stem[i0], cell0[i0], res1[i0, i1], cell2[i1, i2], res3[i2, i3],
    cell4[i3, i4], head[i4], with i_k the index of C_k in ``CHANNEL_CHOICES``.
    Each block's input is the tensor entering it at batch 1.
    """
    r, n = resolution, len(CHANNEL_CHOICES)
    blocks: list[Network] = []

    def add(net: Network) -> int:
        blocks.append(net)
        return len(blocks) - 1

    def one(fn: Callable[[int], Network]) -> np.ndarray:
        return np.array([add(fn(c)) for c in CHANNEL_CHOICES])

    def two(fn: Callable[[int, int], Network]) -> np.ndarray:
        return np.array([add(fn(a, c)) for a, c in itertools.product(CHANNEL_CHOICES, repeat=2)]).reshape(
            n, n
        )

    tables = (
        one(lambda c: _block(f"stem_{c}", (1, 3, r, r), lambda b, x: stem(b, x, c))),
        one(lambda c: _block(f"cell0_{c}", (1, c, r, r), lambda b, x: cell(b, x, c))),
        two(lambda a, c: _block(f"res1_{a}_{c}", (1, a, r, r), lambda b, x: reduction(b, x, c))),
        two(lambda a, c: _block(f"cell2_{a}_{c}", (1, a, r // 2, r // 2), lambda b, x: cell(b, x, c))),
        two(lambda a, c: _block(f"res3_{a}_{c}", (1, a, r // 2, r // 2), lambda b, x: reduction(b, x, c))),
        two(lambda a, c: _block(f"cell4_{a}_{c}", (1, a, r // 4, r // 4), lambda b, x: cell(b, x, c))),
        one(lambda c: _block(f"head_{c}", (1, c, r // 4, r // 4), lambda b, x: head(b, x, num_classes))),
    )
    return tuple(blocks), tables


def _gather(per_block: np.ndarray, tables: tuple[np.ndarray, ...], idx: np.ndarray) -> np.ndarray:
    """Sum a per-block quantity over each network's seven blocks (``idx``: (networks, 5) choice indices)."""
    i0, i1, i2, i3, i4 = idx.T
    stem_t, cell0_t, res1_t, cell2_t, res3_t, cell4_t, head_t = tables
    return (
        per_block[stem_t[i0]]
        + per_block[cell0_t[i0]]
        + per_block[res1_t[i0, i1]]
        + per_block[cell2_t[i1, i2]]
        + per_block[res3_t[i2, i3]]
        + per_block[cell4_t[i3, i4]]
        + per_block[head_t[i4]]
    )


def choice_indices() -> np.ndarray:
    """(32768, 5) indices into ``CHANNEL_CHOICES``, in ``itertools.product`` order (position 0 slowest).

    Row k is the network whose base-8 digits, position 0 first, spell k: the order of
    ``traverse_net`` in ``exps/NATS-Bench/main-sss.py``, which numbers the benchmark's
    architectures, so row k is NATS-Bench size-space index k.
    """
    n = len(CHANNEL_CHOICES)
    return np.indices((n,) * POSITIONS).reshape(POSITIONS, -1).T


@dataclass(frozen=True)
class SpaceSweep:
    """Every network of the size space on one target at one batch; arrays are aligned by row.

    Figures are those of ``roofline.analysis.predict.evaluate`` for each network (module
    doc of ``roofline.analysis.predict``): ``flops`` is per image (2 x MACs),
    ``bytes`` the fused DRAM traffic of one batch, ``latency_s`` one batch's,
    ``throughput_img_s`` = batch / latency, ``utilization`` = flops x
    throughput / ``peak.flops_s`` and ``arithmetic_intensity`` = flops x batch
    / bytes.
    """

    channels: np.ndarray  # (32768, 5) int
    flops: np.ndarray  # per image
    params: np.ndarray
    bytes: np.ndarray  # per batch
    latency_s: np.ndarray  # per batch
    throughput_img_s: np.ndarray
    utilization: np.ndarray
    arithmetic_intensity: np.ndarray
    measured_kernels: np.ndarray  # kernels timed from a latency table's measured entries
    target: Target
    batch: int
    num_classes: int
    resolution: int

    @property
    def networks(self) -> int:
        return len(self.channels)

    @property
    def peak(self) -> Roof:
        """The roof utilization and CMR refer to."""
        return self.target.reference

    @property
    def cmr(self) -> float:
        return self.peak.cmr

    @property
    def peak_flops_s(self) -> float:
        return self.peak.flops_s

    def names(self, rows: Sequence[int] | np.ndarray | None = None) -> list[str]:
        """Channel strings of ``rows`` (all rows by default)."""
        chosen = self.channels if rows is None else self.channels[np.asarray(rows)]
        return [channel_string(c) for c in chosen]

    def index(self, channels: Sequence[int] | str) -> int:
        """The row of a network: its choice indices read as a base-8 number, position 0 first."""
        digits = [CHANNEL_CHOICES.index(c) for c in check_channels(channels)]
        return int(np.ravel_multi_index(digits, (len(CHANNEL_CHOICES),) * POSITIONS))

    def frontier(self, kind: str = "throughput-utilization") -> np.ndarray:
        """Row indices of a Pareto frontier (``roofline.studies.pareto.pareto_front``), ascending.

        * ``throughput-utilization``: maximize both; needs no training (the
          utilization study's filter, DESIGN.md "Utilization as a NAS filter").
        * ``throughput-flops``: maximize both, FLOPs standing in for accuracy
          (more FLOPs ~ more accurate): the most FLOPs at each throughput, the
          baseline the study compares the filter with (144 vs 255 networks).
        """
        columns = {"throughput-utilization": self.utilization, "throughput-flops": self.flops}
        if kind not in columns:
            raise RooflineError(f"unknown frontier {kind!r}: choose one of {', '.join(FRONTIER_KINDS)}")
        return pareto_front(np.column_stack([self.throughput_img_s, columns[kind]]), [True, True])

    def row(self, i: int) -> dict[str, Any]:
        """One network's figures."""
        return {
            "channels": channel_string(self.channels[i]),
            "flops_per_image": float(self.flops[i]),
            "params": int(self.params[i]),
            "bytes": float(self.bytes[i]),
            "arithmetic_intensity": float(self.arithmetic_intensity[i]),
            "latency_s": float(self.latency_s[i]),
            "throughput_img_s": float(self.throughput_img_s[i]),
            "utilization": float(self.utilization[i]),
        }

    def to_dict(self, top: int = 5, frontiers: bool = False) -> dict[str, Any]:
        """A summary: frontier sizes and the ``top`` networks by throughput and by utilization.

        ``frontiers=True`` adds each frontier's members (rows, by throughput,
        fastest first); per-network arrays are never listed whole.
        """
        fronts = {kind: self.frontier(kind) for kind in FRONTIER_KINDS}

        def ranked(rows: np.ndarray, key: np.ndarray) -> list[dict[str, Any]]:
            return [self.row(i) for i in rows[np.argsort(-key[rows], kind="stable")]]

        every = np.arange(self.networks)
        out: dict[str, Any] = {
            "space": "nats-bench-sss",
            "cell": GENOTYPE,
            "gpu": self.target.gpu.key,
            "dtype": self.target.dtype,
            "batch": self.batch,
            "resolution": self.resolution,
            "num_classes": self.num_classes,
            "networks": self.networks,
            "peak": self.peak.to_dict(),
            "model_roof": self.target.roof.to_dict(),
            "frontier_sizes": {kind: len(rows) for kind, rows in fronts.items()},
            "best_throughput": ranked(every, self.throughput_img_s)[:top],
            "best_utilization": ranked(every, self.utilization)[:top],
        }
        if frontiers:
            out["frontiers"] = {kind: ranked(rows, self.throughput_img_s) for kind, rows in fronts.items()}
        return out


def sweep(
    target: Target,
    batch: int = 256,
    table: LatencyTable | None = None,
    *,
    num_classes: int = 10,
    resolution: int = 32,
) -> SpaceSweep:
    """Predict all 32768 networks of the size space at once (block-additive, ``roofline.analysis.blocks``).

    The 280 distinct blocks (8 stems, 8 first cells, 4 x 64 two-channel
    blocks, 8 heads) are fused and timed in one ``block_costs`` call; each
    network's latency, FLOPs, bytes and parameters are then the sums of its
    seven blocks', gathered with numpy. ``target`` and ``table`` act as in
    ``roofline.analysis.predict.evaluate`` and ``latency_table.network_latency``.
    """
    check_batch(batch)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise RooflineError(f"num_classes must be a positive integer, got {num_classes!r}")
    _check_resolution(resolution)
    blocks, tables = _blocks(num_classes, resolution)
    costs = block_costs(blocks, target, batch, table)
    idx = choice_indices()
    latency_s = _gather(costs.time_s, tables, idx)
    flops_batch = _gather(costs.flops, tables, idx)
    nbytes = _gather(costs.bytes, tables, idx)
    flops = flops_batch / batch
    throughput = batch / latency_s
    return SpaceSweep(
        channels=np.asarray(CHANNEL_CHOICES)[idx],
        flops=flops,
        params=_gather(costs.params, tables, idx).astype(np.int64),
        bytes=nbytes,
        latency_s=latency_s,
        throughput_img_s=throughput,
        utilization=flops * throughput / target.reference.flops_s,
        arithmetic_intensity=flops_batch / nbytes,
        measured_kernels=_gather(costs.measured_kernels, tables, idx),
        target=target,
        batch=batch,
        num_classes=num_classes,
        resolution=resolution,
    )
