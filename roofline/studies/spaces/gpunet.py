"""The GPUNet search space: encoding, Sobol sampling, networks, and fast estimates of many samples.

Source: Wang et al., "Searching the Deployable Convolution Neural Networks for
GPUs" (GPUNet), CVPR 2022, Table 1 (DESIGN.md, "Search spaces named by the
studies"). Layers in a stage share one configuration; only the first layer of
a stage has the stride; E = expansion ratio; R = ReLU, S = Swish (IR fn
``"silu"``); filters [min, max, step]:

=====  ====================  ======  =====  =======  =====  =====  ===============  =====
stage  type                  stride  k      #layers  act    E      filters          SE
=====  ====================  ======  =====  =======  =====  =====  ===============  =====
0      Conv                  2       3      1        S      -      [24, 32, 8]      -
1      Conv                  1       [3,5]  [1,4]    [R,S]  -      = stage 0        -
2      Fused-IRB             2       [3,5]  [1,8]    [R,S]  [2,6]  [32, 80, 16]     [0,1]
3      Fused-IRB             2       [3,5]  [1,8]    [R,S]  [2,6]  [48, 112, 16]    [0,1]
4      IRB                   2       [3,5]  [1,10]   [R,S]  [2,6]  [96, 192, 16]    [0,1]
5      IRB                   1       [3,5]  [0,15]   [R,S]  [2,6]  [112, 224, 16]   [0,1]
6      IRB                   2       [3,5]  [1,15]   [R,S]  [2,6]  [128, 416, 32]   [0,1]
7      IRB                   1       [3,5]  [0,15]   [R,S]  [2,6]  [256, 832, 64]   [0,1]
8      Conv1x1 + pool + FC   -       1      1        R      -      1792             -
=====  ====================  ======  =====  =======  =====  =====  ===============  =====

Input resolution: 224 to 512 in steps of 32; 1000 classes.

**Encoding** (``CHOICES``, ``POSITION_NAMES``): 41 integers, in this order:
resolution (1); stage 0 filters (1); stage 1 kernel, act, #layers (3); stages
2-7, each: filters, kernel, E, SE, act, #layers (6 x 6). A position holds the
*value* itself, not an index into its choices (filters 48, kernel 5,
resolution 320), except that act is coded 0 = ReLU, 1 = Swish (``ACT_CODES``)
and SE 0 = off, 1 = on. A stage with 0 layers (stages 5 and 7 may have none)
still carries valid values in its other positions; they do not change the
network, so several encodings can name one network.

**Assumptions** (where Table 1 leaves a choice open):

* E is an integer in {2, 3, 4, 5, 6} ("[2, 6]" read as integer steps, as in
  the released GPUNet configs, which use 2-6). The hidden width of an IRB or
  Fused-IRB is E x its input channels, exactly: timm's ``make_divisible(C E, 8)``
  in NVIDIA's code is the identity here, since every C is a multiple of 8.
* Stage 0 has no kernel or act position in the 41-integer encoding, so its
  kernel is 3 and its act Swish, as in NVIDIA's ``Prologue`` (conv 3x3 s2, act
  ``layerConfig.get("act", "swish")``) that builds every released GPUNet.
* Stage 1 has the filters of stage 0 and no residual (NVIDIA's ``ConvBnAct``
  has ``skip=False`` by default and the builder never sets it).
* The head's act is ReLU (NVIDIA's ``Epilogue`` default; its builder passes none).
* SE reduces to round(C_in / 4) channels, C_in being the *block input*
  channels (EfficientNet convention: ``se_ratio = 0.25`` of the block input;
  NVIDIA/timm write it as rd_ratio = 0.25 / E of the expanded tensor, the same
  number), with the block's act after the reduce conv and a sigmoid gate. Its
  1x1 convs have biases.

**Blocks** (after NVIDIA's reference implementation,
``NVIDIA/DeepLearningExamples: PyTorch/Classification/GPUNet/models/gpunet_modules.py``:
``Prologue``, ``ConvBnAct``, ``EdgeResidual``, ``InvertedResidual``,
``SqueezeExcite``, ``Epilogue``), with BN after every conv:

* Conv: conv k x k (stride) -> C_out, BN, act.
* Fused-IRB (Fused-MBConv; Tan & Le, "EfficientNetV2: Smaller Models and
  Faster Training", ICML 2021, Fig. 2; NVIDIA's ``EdgeResidual``): conv k x k
  (stride) C_in -> E C_in, BN, act; [SE on the expanded tensor]; conv 1x1 ->
  C_out, BN; residual add if stride 1 and C_in = C_out.
* IRB (MBConv; Sandler et al., "MobileNetV2", CVPR 2018, Table 1; Tan & Le,
  "EfficientNet", ICML 2019; NVIDIA's ``InvertedResidual``): conv 1x1 C_in ->
  E C_in, BN, act; depthwise k x k (stride), BN, act; [SE]; conv 1x1 -> C_out,
  BN; residual add if stride 1 and C_in = C_out.
* SE (Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018; NVIDIA's
  ``SqueezeExcite``): global average pool, conv 1x1 (bias) -> round(C_in / 4),
  act, conv 1x1 (bias) -> E C_in, sigmoid, multiply.
* Head (NVIDIA's ``Epilogue``): conv 1x1 -> 1792, BN, ReLU, global average
  pool, FC 1792 -> 1000 (bias).

Padding is k // 2 (PyTorch "same" for odd k at stride 1). NVIDIA's Fused-IRB
uses TF "SAME" padding, asymmetric at stride 2; the output size, ceil(H / 2),
and hence every count here are the same.

**Fast estimates** (``estimate``): kernels never fuse across a block boundary,
because every block starts with a convolution (``roofline.analysis.blocks``), so a
sample's latency, FLOPs, bytes and parameters are sums over its blocks. A
sample is cut into the stem, per stage its first block (which has the stride
and the channel change) and its repeated block (x (#layers - 1)), and the
head. The distinct blocks of all samples are found with ``np.unique`` on an
integer key (type, C_in, C_out, k, E, SE, act, stride, input size), each is
built and fused once, all their kernels are timed in one call of
``roofline.analysis.blocks.block_costs``, and per-sample totals are weighted sums
(``np.bincount``). The tests check the result against ``roofline.analysis.predict.evaluate``
of the whole network.

**Latency tiers** (``latency_tiers``, ``tier_summary``): the study samples the
space with Sobol sequences and stratifies it by latency before searching
(DESIGN.md, "Latency lookup table"; GPUNet's model hub is "tiered by their
inference latency"). Tiers are either fixed edges in ms (``GPUNET_TARGETS_MS``
holds the targets of the released models) or n quantile tiers of equal size.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from roofline.analysis.blocks import block_costs
from roofline.analysis.latency_table import LatencyTable
from roofline.analysis.predict import check_batch
from roofline.analysis.target import Target
from roofline.errors import RooflineError
from roofline.hardware.gpus import Roof
from roofline.model.builder import NetBuilder
from roofline.model.ir import Network

SOURCE = (
    'GPUNet search space (Wang et al., "Searching the Deployable Convolution Neural Networks for GPUs", '
    "CVPR 2022, Table 1)"
)

#: Act codes of the encoding: 0 = R (ReLU), 1 = S (Swish, i.e. SiLU).
ACT_CODES = ("relu", "silu")
STAGE_KINDS = ("conv", "conv", "fused_irb", "fused_irb", "irb", "irb", "irb", "irb")
STAGE_STRIDES = (2, 1, 2, 2, 2, 1, 2, 1)
N_STAGES = len(STAGE_KINDS)
STEM_KERNEL, STEM_ACT = 3, "silu"  # NVIDIA's Prologue: conv 3x3 s2, default act "swish"
HEAD_CHANNELS, HEAD_ACT, NUM_CLASSES = 1792, "relu", 1000  # Table 1 stage 8; NVIDIA's Epilogue
SE_DIVISOR = 4  # SE width = round(C_in / 4) of the block input (EfficientNet's se_ratio 0.25)

#: Target latencies (ms) of the released GPUNet models on a GV100 at batch 1 (TensorRT, FP16), from
#: NVIDIA/DeepLearningExamples PyTorch/Classification/GPUNet/configs/batch1/GV100/*.json file names.
GPUNET_TARGETS_MS = (0.5, 0.65, 0.8, 0.85, 1.25, 1.75, 2.25)


def _steps(lo: int, hi: int, step: int = 1) -> tuple[int, ...]:
    return tuple(range(lo, hi + 1, step))


RESOLUTIONS = _steps(224, 512, 32)
KERNELS = (3, 5)
EXPANSIONS = _steps(2, 6)
STAGE_FILTERS = {
    0: _steps(24, 32, 8),
    2: _steps(32, 80, 16),
    3: _steps(48, 112, 16),
    4: _steps(96, 192, 16),
    5: _steps(112, 224, 16),
    6: _steps(128, 416, 32),
    7: _steps(256, 832, 64),
}
STAGE_LAYERS = {1: _steps(1, 4), 2: _steps(1, 8), 3: _steps(1, 8), 4: _steps(1, 10)}
STAGE_LAYERS |= {5: _steps(0, 15), 6: _steps(1, 15), 7: _steps(0, 15)}
_SEARCHED_FIELDS = ("filters", "kernel", "expansion", "se", "act", "layers")  # stages 2-7, in order


def _positions() -> tuple[tuple[str, tuple[int, ...]], ...]:
    out = [
        ("resolution", RESOLUTIONS),
        ("stage0.filters", STAGE_FILTERS[0]),
        ("stage1.kernel", KERNELS),
        ("stage1.act", (0, 1)),
        ("stage1.layers", STAGE_LAYERS[1]),
    ]
    for s in range(2, N_STAGES):
        values = {"filters": STAGE_FILTERS[s], "kernel": KERNELS, "expansion": EXPANSIONS}
        values |= {"se": (0, 1), "act": (0, 1), "layers": STAGE_LAYERS[s]}
        out += [(f"stage{s}.{name}", values[name]) for name in _SEARCHED_FIELDS]
    return tuple(out)


_POSITIONS = _positions()
#: Name of each of the 41 positions, e.g. "stage3.expansion".
POSITION_NAMES: tuple[str, ...] = tuple(name for name, _ in _POSITIONS)
#: Allowed values of each of the 41 positions (the values themselves; act and SE as 0/1 codes).
CHOICES: tuple[tuple[int, ...], ...] = tuple(values for _, values in _POSITIONS)
N_POSITIONS = len(CHOICES)
assert N_POSITIONS == 41
_WIDTH = max(map(len, CHOICES))
# CHOICES as a padded (41, max choices) matrix, and the count per position, for vectorized lookups.
_TABLE = np.array([c + (c[-1],) * (_WIDTH - len(c)) for c in CHOICES], dtype=np.int64)
_COUNTS = np.array([len(c) for c in CHOICES], dtype=np.int64)


def _base(stage: int) -> int:
    """Index of the first position of stage 2..7 (its filters)."""
    return 5 + 6 * (stage - 2)


@dataclass(frozen=True)
class Stage:
    """One stage: ``layers`` blocks of type ``kind``, the first with ``stride``.

    ``expansion`` and ``se`` are 1 and False for the Conv stages 0 and 1.
    """

    kind: str  # "conv", "fused_irb" or "irb"
    stride: int
    filters: int
    layers: int
    kernel: int
    act: str  # IR fn: "relu" or "silu"
    expansion: int = 1
    se: bool = False


@dataclass(frozen=True)
class GPUNetArch:
    """One point of the space: the input resolution and stages 0-7 (the head is fixed)."""

    resolution: int
    stages: tuple[Stage, ...]

    def __post_init__(self) -> None:
        if len(self.stages) != N_STAGES:
            raise RooflineError(f"a GPUNet arch has {N_STAGES} stages (0-7), got {len(self.stages)}")
        for i, st in enumerate(self.stages):
            if (st.kind, st.stride) != (STAGE_KINDS[i], STAGE_STRIDES[i]):
                raise RooflineError(
                    f"stage {i} is a {STAGE_KINDS[i]} stage with stride {STAGE_STRIDES[i]}, "
                    f"got {st.kind} with stride {st.stride}"
                )
            if st.act not in ACT_CODES:
                raise RooflineError(f"stage {i} act must be one of {ACT_CODES}, got {st.act!r}")
        s0, s1 = self.stages[0], self.stages[1]
        fixed = (s0.layers, s0.kernel, s0.act, s0.expansion, s0.se, s1.filters, s1.expansion, s1.se)
        if fixed != (1, STEM_KERNEL, STEM_ACT, 1, False, s0.filters, 1, False):
            raise RooflineError(
                f"stage 0 is fixed at 1 layer, kernel {STEM_KERNEL}, act {STEM_ACT}, and stage 1 has "
                "stage 0's filters; neither has E or SE (build archs with decode)"
            )
        _check_values(self.encode())

    def encode(self) -> tuple[int, ...]:
        """The 41 integers of the module doc's encoding (values, not indices)."""
        s = self.stages
        out = [self.resolution, s[0].filters, s[1].kernel, ACT_CODES.index(s[1].act), s[1].layers]
        for st in s[2:]:
            out += [st.filters, st.kernel, st.expansion, int(st.se), ACT_CODES.index(st.act), st.layers]
        return tuple(out)

    @property
    def depth(self) -> int:
        """Number of blocks in stages 0-7."""
        return sum(st.layers for st in self.stages)


def _check_values(seq: Sequence) -> None:
    if len(seq) != N_POSITIONS:
        raise RooflineError(f"a GPUNet encoding has {N_POSITIONS} integers, got {len(seq)}")
    for i, (value, allowed) in enumerate(zip(seq, CHOICES, strict=True)):
        ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
        if not ok or int(value) not in allowed:
            raise RooflineError(
                f"GPUNet position {i} ({POSITION_NAMES[i]}) must be one of {list(allowed)}, got {value!r}"
            )


def decode(seq: Sequence[int]) -> GPUNetArch:
    """The arch of a 41-integer encoding; RooflineError names any bad position and its allowed values."""
    seq = list(seq) if not isinstance(seq, np.ndarray) else seq.tolist()
    _check_values(seq)
    f0 = seq[1]
    stages = [
        Stage("conv", 2, f0, 1, STEM_KERNEL, STEM_ACT),
        Stage("conv", 1, f0, seq[4], seq[2], ACT_CODES[seq[3]]),
    ]
    for s in range(2, N_STAGES):
        f, k, e, se, act, n = seq[_base(s) : _base(s) + 6]
        stages.append(Stage(STAGE_KINDS[s], STAGE_STRIDES[s], f, n, k, ACT_CODES[act], e, bool(se)))
    return GPUNetArch(seq[0], tuple(stages))


def sobol_sample(n: int, seed: int = 0) -> np.ndarray:
    """``n`` encodings (an (n, 41) int64 array of values) from a scrambled Sobol sequence.

    Sobol (Sobol', "On the distribution of points in a cube ...", USSR Comput.
    Math. 1967) via ``scipy.stats.qmc.Sobol(d=41, scramble=True, seed=seed)``;
    a unit coordinate u of position i picks choice floor(u x len(CHOICES[i])).
    ``random_base2`` draws n = 2^m points; any other n uses ``random(n)``,
    whose balance warning is silenced: a prefix of the sequence is still a
    valid, deterministic sample, only less evenly spread.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise RooflineError(f"n must be a positive integer, got {n!r}")
    from scipy.stats import qmc

    sampler = qmc.Sobol(d=N_POSITIONS, scramble=True, seed=seed)
    if n & (n - 1) == 0:
        u = sampler.random_base2(int(n).bit_length() - 1)
    else:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The balance properties of Sobol", category=UserWarning)
            u = sampler.random(int(n))
    index = np.minimum((u * _COUNTS).astype(np.int64), _COUNTS - 1)
    return _TABLE[np.arange(N_POSITIONS), index]


def check_samples(samples) -> np.ndarray:
    """``samples`` as an (n, 41) int64 array, every value checked against ``CHOICES``."""
    arr = np.asarray(samples)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != N_POSITIONS:
        raise RooflineError(f"GPUNet samples must have shape (n, {N_POSITIONS}), got {np.shape(samples)}")
    if arr.dtype.kind not in "iu":
        raise RooflineError(f"GPUNet samples must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    for i, allowed in enumerate(CHOICES):
        bad = ~np.isin(arr[:, i], allowed)
        if bad.any():
            row = int(np.argmax(bad))
            raise RooflineError(
                f"GPUNet sample {row}, position {i} ({POSITION_NAMES[i]}) must be one of {list(allowed)}, "
                f"got {arr[row, i]}"
            )
    return arr


# --- blocks (shared by the whole network and the block-additive estimate) -------------------------


def _conv_bn_act(b: NetBuilder, x: str, c_out: int, kernel: int, stride: int, act: str) -> str:
    return b.act(b.bn(b.conv(x, c_out, kernel, stride)), act)


def _se(b: NetBuilder, x: str, reduced: int, act: str) -> str:
    """Squeeze-and-excitation on ``x`` (NVIDIA's ``SqueezeExcite``): pool, 1x1 + act, 1x1 + sigmoid, mul."""
    with b.scope("se"):
        s = b.global_pool(x)
        s = b.act(b.conv(s, reduced, 1, bias=True), act)
        s = b.act(b.conv(s, b.channels(x), 1, bias=True), "sigmoid")
        return b.mul(x, s)


def se_channels(c_in: int) -> int:
    """SE width: round(C_in / 4) of the block input (Tan & Le, EfficientNet, ICML 2019: se_ratio 0.25)."""
    return round(c_in / SE_DIVISOR)


def _mbconv(b: NetBuilder, x: str, kind: str, c_out: int, k: int, stride: int, e: int, se: bool, act: str):
    """A Fused-IRB or IRB (module doc); the hidden width is E x C_in."""
    c_in = b.channels(x)
    hidden = e * c_in
    if kind == "fused_irb":
        y = _conv_bn_act(b, x, hidden, k, stride, act)
    else:
        y = _conv_bn_act(b, x, hidden, 1, 1, act)
        y = b.act(b.bn(b.conv(y, hidden, k, stride, groups=hidden)), act)
    if se:
        y = _se(b, y, se_channels(c_in), act)
    y = b.bn(b.conv(y, c_out, 1))
    if stride == 1 and c_in == c_out:
        y = b.add(y, x)
    return y


def _head(b: NetBuilder, x: str) -> str:
    y = _conv_bn_act(b, x, HEAD_CHANNELS, 1, 1, HEAD_ACT)
    return b.linear(b.global_pool(y), NUM_CLASSES, bias=True)


def _block(b: NetBuilder, x: str, kind: str, c_out: int, k: int, stride: int, e: int, se: bool, act: str):
    if kind == "conv":
        return _conv_bn_act(b, x, c_out, k, stride, act)
    if kind == "head":
        return _head(b, x)
    return _mbconv(b, x, kind, c_out, k, stride, e, se, act)


def gpunet_network(arch: GPUNetArch | Sequence[int], batch: int = 1) -> Network:
    """The IR network of ``arch`` (or of its 41-integer encoding); stages with 0 layers are skipped."""
    if not isinstance(arch, GPUNetArch):
        arch = decode(arch)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise RooflineError(f"batch must be a positive integer, got {batch!r}")
    name = "gpunet_" + "-".join(map(str, arch.encode()))
    b = NetBuilder(name, (batch, 3, arch.resolution, arch.resolution), source=SOURCE)
    x = b.input
    for i, st in enumerate(arch.stages):
        for j in range(st.layers):
            with b.scope("stem" if i == 0 else f"stage{i}.{j}"):
                stride = st.stride if j == 0 else 1
                x = _block(b, x, st.kind, st.filters, st.kernel, stride, st.expansion, st.se, st.act)
    with b.scope("head"):
        _head(b, x)
    return b.network(resolution=arch.resolution)


# --- block-additive estimate of many samples -------------------------------------------------------

_KINDS = ("conv", "fused_irb", "irb", "head")  # block type codes in the key
_KEY_FIELDS = ("type", "c_in", "c_out", "kernel", "expansion", "se", "act", "stride", "size")
# Radices that pack a key into one int64 (np.ravel_multi_index): each field's largest value + 1.
_KEY_DIMS = (len(_KINDS), max(STAGE_FILTERS[7]) + 1, HEAD_CHANNELS + 1, 6, 7, 2, 2, 3, max(RESOLUTIONS) + 1)


def _out_size(size: np.ndarray, stride: int) -> np.ndarray:
    """Output size of an odd-k conv with padding k // 2: floor((H - 1) / s) + 1 (``torch.nn.Conv2d`` doc)."""
    return (size - 1) // stride + 1


def _slots(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample block slots: keys (slots, 9 fields, n) and how many times each slot's block runs (slots, n).

    Slots: the stem; stage 1 (every layer alike); for stages 2-7 the first
    block and the repeated block; the head. Fields a block type does not use
    hold canonical values (E 1, SE 0) so that equal blocks get equal keys.
    """
    n = len(arr)
    one = np.ones(n, np.int64)
    conv, head = _KINDS.index("conv"), _KINDS.index("head")
    keys, counts = [], []

    def slot(kind, c_in, c_out, k, e, se, act, stride, size, count):
        fields = (kind, c_in, c_out, k, e, se, act, stride, size)
        keys.append(np.stack([np.broadcast_to(np.asarray(f, np.int64), (n,)) for f in fields]))
        counts.append(np.broadcast_to(np.asarray(count, np.int64), (n,)))

    size, f0 = arr[:, 0], arr[:, 1]
    slot(conv, 3, f0, STEM_KERNEL, 1, 0, ACT_CODES.index(STEM_ACT), 2, size, one)
    size = _out_size(size, 2)
    slot(conv, f0, f0, arr[:, 2], 1, 0, arr[:, 3], 1, size, arr[:, 4])
    c = f0
    for s in range(2, N_STAGES):
        f, k, e, se, act, layers = (arr[:, _base(s) + j] for j in range(6))
        kind, stride = _KINDS.index(STAGE_KINDS[s]), STAGE_STRIDES[s]
        out = _out_size(size, stride)
        slot(kind, c, f, k, e, se, act, stride, size, (layers > 0).astype(np.int64))
        slot(kind, f, f, k, e, se, act, 1, out, np.maximum(layers - 1, 0))
        present = layers > 0
        c, size = np.where(present, f, c), np.where(present, out, size)
    slot(head, c, HEAD_CHANNELS, 1, 1, 0, ACT_CODES.index(HEAD_ACT), 1, size, one)
    return np.stack(keys), np.stack(counts)


def _block_network(key: Sequence[int]) -> Network:
    kind, c_in, c_out, k, e, se, act, stride, size = (int(v) for v in key)
    b = NetBuilder("gpunet_block", (1, c_in, size, size), source=SOURCE)
    _block(b, b.input, _KINDS[kind], c_out, k, stride, e, bool(se), ACT_CODES[act])
    return b.network(resolution=size)


@dataclass(frozen=True)
class SampleEstimates:
    """Roofline estimates of n GPUNet samples on one target at one batch; arrays have length n.

    Same definitions as ``roofline.analysis.predict.Estimate``: latency_s = sum of kernel
    times, throughput = batch / latency, utilization = FLOPs x throughput / peak.
    """

    target: Target
    batch: int
    latency_s: np.ndarray
    throughput_img_s: np.ndarray
    flops_per_image: np.ndarray
    bytes_per_batch: np.ndarray  # DRAM bytes of one batch after fusion
    params: np.ndarray
    utilization: np.ndarray  # achieved FLOP/s / peak FLOP/s
    measured_kernels: np.ndarray  # kernels timed from a measured latency-table entry
    distinct_blocks: int  # blocks built and fused to cover all samples

    def __len__(self) -> int:
        return len(self.latency_s)

    @property
    def peak(self) -> Roof:
        """The roof utilization refers to."""
        return self.target.reference


def estimate(samples, target: Target, batch: int = 1, table: LatencyTable | None = None) -> SampleEstimates:
    """Block-additive roofline estimates of every sample (module doc, "Fast estimates").

    ``samples`` is an (n, 41) array of encodings (``sobol_sample``). Equal to
    ``roofline.analysis.predict.evaluate(gpunet_network(decode(row)), ...)`` per row up
    to float rounding; with ``table``, a kernel with a measured entry takes
    the measured latency, as in ``roofline.analysis.latency_table.network_latency``.
    """
    check_batch(batch)
    batch = int(batch)
    arr = check_samples(samples)
    n = len(arr)
    if n == 0:
        raise RooflineError("estimate needs at least one GPUNet sample")
    keys, counts = _slots(arr)  # (S, 9, n), (S, n): rows below run slot-major, sample-minor
    keys, counts = keys.transpose(0, 2, 1).reshape(-1, len(_KEY_FIELDS)), counts.reshape(-1)
    sample = np.tile(np.arange(n), len(keys) // n)
    used = counts > 0
    keys, counts, sample = keys[used], counts[used], sample[used]
    packed = np.ravel_multi_index(tuple(keys.T), _KEY_DIMS)
    _, first, inverse = np.unique(packed, return_index=True, return_inverse=True)
    blocks = [_block_network(row) for row in keys[first]]
    costs = block_costs(blocks, target, batch, table)

    def total(per_block: np.ndarray) -> np.ndarray:
        return np.bincount(sample, weights=per_block[inverse] * counts, minlength=n)

    latency_s, flops = total(costs.time_s), total(costs.flops)
    reference = target.reference
    return SampleEstimates(
        target=target,
        batch=batch,
        latency_s=latency_s,
        throughput_img_s=batch / latency_s,
        flops_per_image=flops / batch,
        bytes_per_batch=total(costs.bytes),
        params=total(costs.params),
        utilization=flops / latency_s / reference.flops_s,
        measured_kernels=np.rint(total(costs.measured_kernels.astype(np.float64))).astype(np.int64),
        distinct_blocks=len(blocks),
    )


# --- latency tiers ---------------------------------------------------------------------------------


def latency_tiers(latency_s, edges_ms: Sequence[float] | None = None, n_tiers: int | None = None):
    """Tier index per sample (0 = fastest), from fixed edges in ms or from latency quantiles.

    With ``edges_ms`` (strictly increasing, e.g. ``GPUNET_TARGETS_MS``), tier
    i holds edges[i-1] <= latency < edges[i] (in ms): len(edges) + 1 tiers,
    the last open-ended. With ``n_tiers``, the edges are the latency quantiles
    j / n_tiers, j = 1 .. n_tiers - 1 (``np.quantile``, linear), so the tiers
    have equal counts up to ties. Give exactly one of the two.
    """
    lat = np.asarray(latency_s, dtype=np.float64)
    if lat.ndim != 1 or not np.all(np.isfinite(lat)) or np.any(lat <= 0):
        raise RooflineError("latency_s must be a 1-d array of positive, finite seconds")
    if (edges_ms is None) == (n_tiers is None):
        raise RooflineError("give exactly one of edges_ms (tier edges in ms) or n_tiers (quantile tiers)")
    if edges_ms is not None:
        edges_s = np.asarray(edges_ms, dtype=np.float64) / 1e3
        if edges_s.ndim != 1 or len(edges_s) == 0 or np.any(np.diff(edges_s) <= 0) or edges_s[0] <= 0:
            raise RooflineError(f"edges_ms must be positive and strictly increasing, got {list(edges_ms)}")
    else:
        if isinstance(n_tiers, bool) or not isinstance(n_tiers, (int, np.integer)) or n_tiers < 1:
            raise RooflineError(f"n_tiers must be a positive integer, got {n_tiers!r}")
        edges_s = np.quantile(lat, np.arange(1, n_tiers) / n_tiers) if len(lat) else np.zeros(n_tiers - 1)
    return np.searchsorted(edges_s, lat, side="right")


@dataclass(frozen=True)
class Tier:
    """One latency tier's samples: count, latency range, and its most-FLOPs sample (None and -1 if empty)."""

    tier: int
    count: int
    min_latency_s: float | None
    max_latency_s: float | None
    max_flops_per_image: float | None  # the "best" sample of a tier: most compute within its latency budget
    best_index: int


def tier_summary(latency_s, flops_per_image, tiers, n_tiers: int | None = None) -> tuple[Tier, ...]:
    """One ``Tier`` per tier index 0 .. n_tiers - 1 (default: max index + 1), empty tiers included."""
    lat, flops, tiers = (np.asarray(a) for a in (latency_s, flops_per_image, tiers))
    if not lat.shape == flops.shape == tiers.shape or lat.ndim != 1:
        raise RooflineError("latency_s, flops_per_image and tiers must be 1-d arrays of one length")
    count = int(tiers.max()) + 1 if n_tiers is None and len(tiers) else int(n_tiers or 0)
    out = []
    for t in range(count):
        idx = np.flatnonzero(tiers == t)
        if len(idx) == 0:
            out.append(Tier(t, 0, None, None, None, -1))
            continue
        best = int(idx[np.argmax(flops[idx])])
        lo, hi = float(lat[idx].min()), float(lat[idx].max())
        out.append(Tier(t, len(idx), lo, hi, float(flops[best]), best))
    return tuple(out)
