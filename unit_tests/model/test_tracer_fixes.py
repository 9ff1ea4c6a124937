"""Torch-frontend fixes: constants passed into submodules, weight-only work, data-movement ops, --reparam.

The invariant behind most of these: every FLOP ``torch.utils.flop_counter`` counts is either in a
layer (``Network.flops()``) or in the once-per-network weight-only work, never silently dropped.
"""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from torch import nn  # noqa: E402

from roofline.errors import RooflineError  # noqa: E402
from roofline.model import zoo  # noqa: E402
from roofline.model.frontends import pytorch  # noqa: E402
from roofline.model.ir_file import read_network  # noqa: E402

pytestmark = [pytest.mark.analytic, pytest.mark.torch]


def traced(module, shape):
    """The network of ``module`` at ``shape``, checked against the FLOP counter and the IR round trip."""
    net = pytorch.trace_module(module, shape, name=type(module).__name__)
    assert net.flops() + net.weight_only_flops == pytorch.flop_counter_total(module, shape)
    assert read_network(net.to_dict()) == net
    return net


def check_timm(name, **kwargs):
    net = pytorch.from_timm(name, **kwargs)
    module, shape = pytorch.timm_model(name)
    if kwargs.get("reparam"):
        module = pytorch.reparameterized(module)
    assert net.flops() + net.weight_only_flops == pytorch.flop_counter_total(module, shape)
    assert read_network(net.to_dict()) == net
    return net


# -- 1. a parameter passed straight into a submodule ---------------------------------------------


class _Scores(nn.Module):
    def forward(self, q, x):
        return q @ x.transpose(-2, -1)


class _QueryIntoChild(nn.Module):
    """An attention-pool head in small: a learned query, expanded, handed to a child module."""

    def __init__(self):
        super().__init__()
        self.query = nn.Parameter(torch.zeros(1, 1, 8))
        self.proj = nn.Linear(8, 8)
        self.scores = _Scores()

    def forward(self, x):
        return self.scores(self.query.expand(x.shape[0], -1, -1), self.proj(x))


def test_a_parameter_passed_into_a_submodule_traces_and_the_module_is_untouched():
    with torch.device("meta"):  # the crash needed meta parameters (timm models are built there)
        module = _QueryIntoChild()
    net = traced(module, (1, 5, 8))
    proj, scores = net.layers
    # query (1, 1, 8) @ keys^T (1, 8, 5): M=1, K=8, N=5, not K=5 (a constant first operand).
    assert scores.op == "matmul" and scores.macs() == 1 * 8 * 5
    assert all(p.requires_grad for p in module.parameters())


@pytest.mark.parametrize("name", ["cait_xxs24_224", "pit_ti_224", "vit_base_patch16_siglip_224"])
def test_timm_models_that_pass_parameters_into_submodules_trace(name):
    net = check_timm(name)
    assert not net.unsupported_ops and net.flops() > 1e9


@pytest.mark.parametrize("name", ["coat_lite_tiny", "coat_tiny"])
def test_models_with_tied_parameters_trace(name):
    # CoaT shares its positional convs across blocks: the meta stand-ins must stay one tensor per tie.
    net = check_timm(name)
    assert net.flops() > 1e9


# -- 2. work on weights and constants alone ----------------------------------------------------------


class _PositionBias(nn.Module):
    """Swin v2's continuous position bias in small: an MLP over a constant table, added to the logits."""

    def __init__(self, tokens=6, heads=2):
        super().__init__()
        self.register_buffer("table", torch.zeros(tokens * tokens, 2))
        self.mlp = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, heads, bias=False))
        self.tokens, self.heads = tokens, heads

    def forward(self, x):  # x: (N, heads, tokens, tokens) attention logits
        bias = self.mlp(self.table).t().reshape(self.heads, self.tokens, self.tokens)
        return (x + bias).softmax(-1)


def test_weight_only_work_is_counted_once_not_dropped():
    net = traced(_PositionBias(), (1, 2, 6, 6))
    assert [layer.describe() for layer in net.layers] == ["add", "softmax"]
    assert net.weight_only_ops == {"addmm": 1, "relu": 1, "mm": 1}
    assert net.weight_only_flops == 2 * 36 * 2 * 16 + 2 * 36 * 16 * 2
    assert net.flops() == 0
    wide = net.with_batch(8)
    assert (wide.weight_only_ops, wide.weight_only_flops) == (net.weight_only_ops, net.weight_only_flops)


def test_swin_v2_position_bias_mlp_is_reported():
    net = check_timm("swinv2_tiny_window8_256")
    assert net.weight_only_flops > 0 and net.weight_only_ops["addmm"] == net.weight_only_ops["mm"] == 12
    # Cosine attention normalizes q and k: a reduction no layer kind times yet, so it is listed.
    assert net.unsupported_ops == {"linalg_vector_norm": 24}


def test_weight_only_fields_are_optional_in_ir_files():
    doc = zoo.load("resnet50").to_dict()
    assert "weight_only_ops" not in doc and "weight_only_flops" not in doc  # old files stay as they were
    net = read_network(doc)
    assert net.weight_only_ops == {} and net.weight_only_flops == 0
    doc = {**doc, "weight_only_ops": {"addmm": 2}, "weight_only_flops": 640}
    net = read_network(doc)
    assert (net.weight_only_ops, net.weight_only_flops) == ({"addmm": 2}, 640)
    assert read_network(net.to_dict()) == net


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [
        ("weight_only_ops", {"addmm": -1}, "weight_only_ops.addmm"),
        ("weight_only_ops", ["addmm"], "weight_only_ops"),
        ("weight_only_flops", "many", "weight_only_flops"),
        ("weight_only_flops", -5, "weight_only_flops"),
    ],
)
def test_bad_weight_only_fields_are_one_line_errors(field, value, where):
    doc = {**zoo.load("resnet18").to_dict(), field: value}
    with pytest.raises(RooflineError, match=where) as info:
        read_network(doc, source="net.json")
    assert "\n" not in str(info.value)


# -- 3. ops that only move data are layers, not unsupported ---------------------------------------


class _ClassToken(nn.Module):
    def __init__(self):
        super().__init__()
        self.cls = nn.Parameter(torch.zeros(1, 1, 8))
        self.proj = nn.Linear(8, 8)

    def forward(self, x):
        x = self.proj(x)
        return torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1)


def test_class_token_cat_is_a_copy_reading_the_token_as_a_weight():
    net = traced(_ClassToken(), (1, 4, 8))
    assert not net.unsupported_ops
    cat = net.layers[-1]
    assert (cat.op, cat.fn, cat.weights) == ("elementwise", "cat", ((1, 1, 8),))
    assert cat.input_shapes == ((1, 4, 8),) and cat.output_shape == (1, 5, 8)
    assert cat.bytes(2) == (4 * 8 + 8 + 5 * 8) * 2


class _Reductions(nn.Module):
    def forward(self, x):  # (N, H, W, C), channels last as swin's head
        shifted = torch.roll(x, shifts=(1, 1), dims=(1, 2))
        pooled = shifted.mean((1, 2))  # (N, C)
        tokens = shifted.flatten(1, 2).mean(1)  # a ViT's token mean over (N, L, C)
        out = torch.relu(pooled + tokens)
        out.as_strided_(out.shape, out.stride())  # ConvNeXt's head restrides in place
        return out


def test_roll_mean_and_in_place_restride_are_layers_or_views():
    net = traced(_Reductions(), (2, 4, 6, 8))
    assert not net.unsupported_ops
    kinds = [layer.describe() for layer in net.layers]
    assert kinds == ["roll", "global_avgpool", "global_avgpool", "add", "relu"]
    roll, pooled, tokens = net.layers[:3]
    assert roll.output_shape == (2, 4, 6, 8) and roll.elementwise_ops() == 2 * 4 * 6 * 8
    assert (pooled.kernel, pooled.output_shape) == ((4, 6), (2, 8))
    assert (tokens.kernel, tokens.input_shapes, tokens.output_shape) == ((24,), ((2, 24, 8),), (2, 8))
    assert pooled.elementwise_ops() == tokens.elementwise_ops() == 2 * 4 * 6 * 8  # every input read once


class _BatchMean(nn.Module):
    def forward(self, x):
        return torch.relu(x).mean(0)


def test_a_mean_over_the_batch_stays_unsupported():
    assert traced(_BatchMean(), (2, 3)).unsupported_ops == {"mean(batch)": 1}


#: The transformers' unsupported ops before these fixes: cat(constant) x1 (vit, deit),
#: roll x10 + mean(non-spatial) x1 (swin), as_strided_ x1 (convnext).
@pytest.mark.parametrize(
    "name",
    ["vit_base_patch16_224", "deit_small_patch16_224", "swin_tiny_patch4_window7_224", "convnext_tiny"],
)
def test_common_transformers_have_no_unsupported_ops_left(name):
    net = check_timm(name)
    assert net.unsupported_ops == {}


# -- 4. --reparam -------------------------------------------------------------------------------


def test_reparam_fuses_repvgg_branches():
    trained = pytorch.from_timm("repvgg_a2")
    deployed = check_timm("repvgg_a2", reparam=True)
    assert len(deployed.layers) < len(trained.layers) and deployed.flops() < trained.flops()
    kinds = {layer.describe() for layer in deployed.layers}
    # One 3x3 conv and a ReLU per block: no parallel 1x1 branch, no identity BN, no branch sum.
    assert kinds == {"conv3x3", "relu", "global_avgpool", "linear"}
    assert {"conv1x1", "bn", "add"} <= {layer.describe() for layer in trained.layers}
    assert "reparameterized" in deployed.source and deployed.name == trained.name


def test_reparam_leaves_a_model_without_branches_unchanged():
    trained = pytorch.from_timm("resnet18")
    deployed = pytorch.from_timm("resnet18", reparam=True)
    assert deployed.layers == trained.layers and deployed.flops() == trained.flops()
