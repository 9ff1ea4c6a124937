"""Channel groups and width rewriting, on hand-built blocks and the zoo."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roofline.model import ir, zoo
from roofline.model.channels import channel_groups, resize, scale_widths
from roofline.model.fusion import fuse
from unit_tests.helpers import bn, conv, ew, network

pytestmark = pytest.mark.analytic

X = (1, 16, 32, 32)


def residual_net():
    """Stem conv, one basic block (c1 inner, c2 added to the stem), a 1x1 head."""
    stem = conv("stem", "x", (1, 3, 32, 32), 16, 3)
    layers = [
        stem, bn("b0", "stem", X), ew("r0", "relu", ["b0"], [X]),
        conv("c1", "r0", X, 16, 3), bn("b1", "c1", X), ew("r1", "relu", ["b1"], [X]),
        conv("c2", "r1", X, 16, 3), bn("b2", "c2", X),
        ew("add", "add", ["b2", "r0"], [X, X]), ew("r2", "relu", ["add"], [X]),
        conv("head", "r2", X, 10, 1),
    ]  # fmt: skip
    return network(layers, [("x", (1, 3, 32, 32))])


def by_producer(groups, name):
    (group,) = [g for g in groups if name in g.producers]
    return group


def views(net: ir.Network) -> set[str]:
    """The reads through a channel slice or flatten, as channel_groups names them (TENSOR@READER)."""
    return {t for g in channel_groups(net) for t in g.tensors if "@" in t}


def consistent(net: ir.Network, allowed: set[str] = frozenset()) -> None:
    """Every read has the channel count its producer wrote (bar ``allowed`` views); widths agree."""
    channels = {n: s[1] for n, s in net.inputs}
    for layer in net.layers:
        for name, shape in zip(layer.inputs, layer.input_shapes, strict=True):
            if len(shape) >= 2 and f"{name}@{layer.name}" not in allowed:
                assert shape[1] == channels[name], (layer.name, name)
        if isinstance(layer, ir.Norm):
            assert layer.channels == layer.output_shape[1]
        if isinstance(layer, ir.Conv):
            assert layer.in_channels % layer.groups == 0 and layer.out_channels % layer.groups == 0
        if len(layer.output_shape) >= 2:
            channels[layer.output] = layer.output_shape[1]


def test_residual_block_groups():
    net = residual_net()
    groups = channel_groups(net)
    assert [g.producers for g in groups] == [(), ("stem", "c2"), ("c1",), ("head",)]
    x, stage, inner, head = groups
    assert (x.width, x.fixed, x.reason) == (3, True, "network input")
    assert stage.tensors == ("stem", "b0", "r0", "c2", "b2", "add", "r2")
    assert inner.tensors == ("c1", "b1", "r1") and not inner.fixed and not stage.fixed
    assert (head.width, head.fixed, head.reason) == (10, True, "network output")

    wide = resize(net, {stage.id: 24, inner.id: 40})
    layer = {layer.name: layer for layer in wide.layers}
    assert layer["b0"].channels == layer["b2"].channels == 24 and layer["b1"].channels == 40
    assert layer["add"].input_shapes == ((1, 24, 32, 32),) * 2
    assert layer["head"].input_shapes == ((1, 24, 32, 32),) and layer["head"].output_shape == (1, 10, 32, 32)
    assert layer["c2"].weight_shapes() == ((24, 40, 3, 3),)


def test_cifar_resnet56_groups():
    groups = channel_groups(zoo.load("cifar_resnet56"))
    assert len(groups) == 32
    free = [g for g in groups if not g.fixed and g.producers]
    assert len(free) == 30 and all(not g.fixed for g in groups[1:-1])
    # 27 blocks: each conv1 writes a group only its BN, ReLU and conv2 read.
    inner = [g for g in free if len(g.producers) == 1]
    assert [g.producers[0] for g in inner] == [f"layer{s}.{b}.conv1" for s in (1, 2, 3) for b in range(9)]
    assert all(len(g.tensors) == 3 for g in inner)
    # Per stage, the residual adds tie every block's conv2. Stage 1 also holds the stem conv1. Stages 2
    # and 3 start with an option-A shortcut: layer{2,3}.0.pad zero-pads the previous stage (16 -> 32,
    # 32 -> 64 channels) and is added to conv2, so the pad output lands in the new stage's group,
    # which must stay at least as wide as the previous stage's.
    stages = [g for g in free if len(g.producers) > 1]
    assert [(g.width, g.producers[0], len(g.producers)) for g in stages] == [
        (16, "conv1", 10), (32, "layer2.0.conv2", 9), (64, "layer3.0.conv2", 9),
    ]  # fmt: skip
    assert "layer2.0.pad" in stages[1].tensors and "layer3.0.pad" in stages[2].tensors
    assert "pool" in stages[2].tensors  # the fc reads the pool's (N, 64) flatten: same group
    assert (groups[0].width, groups[0].fixed, groups[0].reason) == (3, True, "network input")
    assert (groups[-1].producers, groups[-1].width, groups[-1].reason) == (("fc",), 10, "network output")


def test_cifar_vgg16_groups():
    net = zoo.load("cifar_vgg16")
    groups = channel_groups(net)
    convs = [layer.name for layer in net.layers if isinstance(layer, ir.Conv)]
    assert len(convs) == 13 and len(groups) == 15
    assert [g.producers for g in groups[1:14]] == [(c,) for c in convs]
    assert [g.width for g in groups[1:14]] == [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    assert not any(g.fixed for g in groups[1:14])
    assert (groups[14].producers, groups[14].width, groups[14].fixed) == (("classifier",), 10, True)
    # The last conv's group reaches through the pool into the classifier's in_features.
    fc = resize(net, {13: 256}).layers[-1]
    assert fc.input_shapes == ((1, 256),) and fc.params() == 256 * 10 + 10


def test_resize_round_trip_and_exact_flops():
    net = zoo.load("cifar_resnet56")
    groups = channel_groups(net)
    assert resize(net, {g.id: g.width for g in groups}) == net
    inner = by_producer(groups, "layer1.0.conv1")
    wide = resize(net, {inner.id: 32})
    # layer1.0.conv1 (16 -> 32 outputs) and layer1.0.conv2 (16 -> 32 inputs) each double:
    # 32 x 32 pixels x 16 x 16 x 9 MACs.
    per_conv = 32 * 32 * 16 * 16 * 9
    assert wide.macs() - net.macs() == 2 * per_conv
    assert wide.flops() - net.flops() == 4 * per_conv
    # Two 16x16x3x3 weights double and the BN gains 2 x 16 values.
    assert wide.params() - net.params() == 2 * 16 * 16 * 9 + 2 * 16
    assert len(fuse(wide)) == len(fuse(net))
    assert [g.tensors for g in channel_groups(wide)] == [g.tensors for g in groups]
    assert net == zoo.load("cifar_resnet56")  # not mutated


def test_depthwise_ties_and_groups_follow():
    a, b = (1, 16, 32, 32), (1, 64, 32, 32)
    layers = [
        conv("stem", "x", (1, 3, 32, 32), 16, 3),
        conv("pw1", "stem", a, 64, 1), bn("bn1", "pw1", b), ew("a1", "relu6", ["bn1"], [b]),
        conv("dw", "a1", b, 64, 3, groups=64), bn("bn2", "dw", b), ew("a2", "relu6", ["bn2"], [b]),
        conv("pw2", "a2", b, 24, 1), conv("head", "pw2", (1, 24, 32, 32), 10, 1),
    ]  # fmt: skip
    net = network(layers, [("x", (1, 3, 32, 32))])
    group = by_producer(channel_groups(net), "pw1")
    assert group.producers == ("pw1",) and group.tensors == ("pw1", "bn1", "a1", "dw", "bn2", "a2")
    dw = {layer.name: layer for layer in resize(net, {group.id: 96}).layers}["dw"]
    assert (dw.groups, dw.in_channels, dw.out_channels, dw.weight_shapes()) == (96, 96, 96, ((96, 1, 3, 3),))


def test_se_gate_ties_and_concat_is_the_sum():
    y, s, z = (1, 32, 32, 32), (1, 32, 1, 1), (1, 16, 32, 32)
    pool = ir.Pool(name="sq", inputs=("c1",), output="sq", input_shapes=(y,), output_shape=s,
                   mode="avg", kernel=(32, 32), kind="global")  # fmt: skip
    cat = ir.Concat(name="cat", inputs=("gate", "c2"), output="cat", input_shapes=(y, z),
                    output_shape=(1, 48, 32, 32))  # fmt: skip
    layers = [
        conv("c1", "x", X, 32, 3), pool, conv("red", "sq", s, 8, 1), conv("exp", "red", (1, 8, 1, 1), 32, 1),
        ew("gate", "mul", ["c1", "exp"], [y, s]), conv("c2", "x", X, 16, 3), cat,
        bn("bn", "cat", (1, 48, 32, 32)), conv("head", "bn", (1, 48, 32, 32), 10, 1),
    ]  # fmt: skip
    net = network(layers, [("x", X)])
    groups = channel_groups(net)
    gate = by_producer(groups, "c1")
    assert gate.producers == ("c1", "exp")  # the SE expand conv must match what it scales
    assert gate.tensors == ("c1", "sq", "exp", "gate")
    (joined,) = [g for g in groups if "cat" in g.tensors]
    assert joined.tensors == ("cat", "bn") and joined.fixed and joined.reason.startswith("concat cat")
    out = {layer.name: layer for layer in resize(net, {gate.id: 40, by_producer(groups, "c2").id: 24}).layers}
    assert out["cat"].output_shape == (1, 64, 32, 32) and out["bn"].channels == 64
    assert out["head"].input_shapes == ((1, 64, 32, 32),)
    assert out["gate"].input_shapes == ((1, 40, 32, 32), (1, 40, 1, 1))
    assert out["red"].input_shapes == ((1, 40, 1, 1),) and out["exp"].output_shape == (1, 40, 1, 1)


def test_errors():
    net = zoo.load("cifar_resnet56")
    groups = channel_groups(net)
    with pytest.raises(ValueError, match="fixed .network input"):
        resize(net, {0: 4})
    with pytest.raises(ValueError, match="fixed .network output"):
        resize(net, {groups[-1].id: 100})
    with pytest.raises(ValueError, match="unknown channel group 999"):
        resize(net, {999: 8})
    with pytest.raises(ValueError, match="width must be >= 1"):
        resize(net, {1: 0})
    # Stage 1 wider than stage 2: layer2.0.pad would have to drop channels.
    with pytest.raises(ValueError, match="pad layer2.0.pad would shrink 48 channels to 32"):
        resize(net, {1: 48})
    assert resize(net, {1: 32}).layers[0].output_shape == (1, 32, 32, 32)  # equal widths are fine
    assert resize(net, {0: 3}) == net  # a fixed group may be given its own width


@pytest.mark.parametrize("name", zoo.zoo_names())
def test_every_zoo_model(name):
    net = zoo.load(name)
    groups = channel_groups(net)
    assert [g.id for g in groups] == list(range(len(groups)))
    assert resize(net, {}) == net
    allowed = views(net)
    consistent(net, allowed)
    if not any(g.producers and not g.fixed for g in groups):
        pytest.skip("no free group")
    wide = scale_widths(net, 2.0)
    consistent(wide, allowed)
    assert views(wide) == allowed
    assert len(fuse(wide)) == len(fuse(net))
    assert wide.flops() > net.flops()


RESNET56 = zoo.load("cifar_resnet56")
FREE = [g.id for g in channel_groups(RESNET56) if not g.fixed]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 16).map(lambda k: 8 * k), min_size=len(FREE), max_size=len(FREE)))
def test_random_widths_follow_groups(widths):
    try:
        net = resize(RESNET56, dict(zip(FREE, widths, strict=True)))
    except ValueError as err:
        assert "pad" in str(err)
        return
    consistent(net)
    groups = channel_groups(net)
    group_of = {t: g for g in groups for t in g.tensors}
    for layer in net.layers:
        assert layer.output_shape[1] == group_of[layer.output].width
    assert [g.width for g in groups if not g.fixed] == widths
    assert net.flops() > 0
