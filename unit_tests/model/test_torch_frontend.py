"""The torch frontend against torch.utils.flop_counter, for every zoo model."""

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from roofline.cli.main import main  # noqa: E402
from roofline.model import zoo  # noqa: E402
from roofline.model.builtin import cifar  # noqa: E402
from roofline.model.frontends import pytorch  # noqa: E402
from roofline.model.zoo.build import trace  # noqa: E402

pytestmark = [pytest.mark.analytic, pytest.mark.torch]

BN_STATS = ("running_mean", "running_var", "num_batches_tracked")


def module_and_shape(name):
    kind, _, target = zoo.ZOO_SOURCES[name].partition(":")
    if kind == "timm":
        return pytorch.timm_model(target)
    build, shape = cifar.MODELS[target]
    return build(), shape


@pytest.mark.parametrize("name", zoo.zoo_names())
def test_trace_matches_flop_counter_and_committed_zoo(name):
    module, shape = module_and_shape(name)
    net = trace(name)
    assert net.flops() == pytorch.flop_counter_total(module, shape)
    # IR params are the weights layers read: parameters, plus constant buffers
    # used as weights (TResNet's anti-aliasing filter); BN statistics fold away.
    params = sum(p.numel() for p in module.parameters())
    params += sum(b.numel() for n, b in module.named_buffers() if not n.endswith(BN_STATS))
    assert net.params() == params
    assert not net.unsupported_ops
    committed = zoo.load(name)
    assert (net.flops(), net.params(), len(net.layers)) == (
        committed.flops(), committed.params(), len(committed.layers),
    )  # fmt: skip
    assert net.layers == committed.layers


def test_unsupported_ops_are_reported_by_name():
    class Odd(torch.nn.Module):
        def forward(self, x):
            return torch.erf(torch.nn.functional.relu(x)).cumsum(1)

    net = pytorch.trace_module(Odd(), (1, 4, 8, 8), name="odd")
    assert net.unsupported_ops == {"erf": 1, "cumsum": 1}
    assert [layer.op for layer in net.layers] == ["elementwise", "unsupported", "unsupported"]


def test_trace_leaves_the_module_untouched():
    model = cifar.CifarVGG()
    before = model.features[0].weight.clone()
    model.train()
    net = pytorch.trace_module(model, (1, 3, 32, 32), name="vgg")
    assert model.training and model.features[0].weight.device.type == "cpu"
    assert torch.equal(model.features[0].weight, before)
    assert net.layers[0].name == "features.0"


def test_analyze_timm_resnet50_acceptance(capsys):
    assert (
        main(["analyze", "timm:resnet50", "--gpu", "v100", "--dtype", "fp16", "--batch", "256", "--json"])
        == 0
    )
    (result,) = json.loads(capsys.readouterr().out)
    assert result["flops_per_image"] == 8_178_368_512  # 8.18 GFLOPs at 224x224
    assert result["resolution"] == 224
    assert 100 <= result["arithmetic_intensity"] <= 150


def test_resolution_and_torchvision(capsys):
    assert main(["analyze", "timm:resnet18", "--resolution", "160", "--json", "--summary"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["resolution"] == 160
    # Conv FLOPs scale with output pixels: (80/112)^2 of the 224 figure at every layer but the fc.
    assert result["flops_per_image"] < zoo.load("resnet18").flops() * (160 / 224) ** 2 * 1.01
    pytest.importorskip("torchvision")
    assert main(["analyze", "torchvision:resnet18", "--json", "--summary"]) == 0
    (tv,) = json.loads(capsys.readouterr().out)
    assert tv["flops_per_image"] == zoo.load("resnet18").flops()


def test_unknown_timm_model_is_one_line(capsys):
    assert main(["analyze", "timm:resnet_nope"]) == 2
    assert "unknown timm model" in capsys.readouterr().err


def test_weight_times_activation_matmul_is_a_linear():
    class LeftMul(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(32, 16))

        def forward(self, x):
            return self.w @ x  # (32, 16) @ (16, 8)

    (layer,) = pytorch.trace_module(LeftMul(), (16, 8), name="left").layers
    assert layer.op == "linear" and layer.params() == 32 * 16
    assert layer.macs() == 32 * 16 * 8


def test_torchvision_segmentation_model_traces_without_downloading_its_backbone(capsys, monkeypatch):
    pytest.importorskip("torchvision")

    def offline(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr("torch.hub.load_state_dict_from_url", offline)
    assert main(["analyze", "torchvision:deeplabv3_mobilenet_v3_large", "--batch", "1", "--summary"]) == 0
    assert "deeplabv3_mobilenet_v3_large" in capsys.readouterr().out
