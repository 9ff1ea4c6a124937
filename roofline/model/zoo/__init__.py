"""The embedded model zoo: committed IR files, so the CLI works without torch.

Each ``<name>.json`` holds one ``roofline-ir`` network at batch 1 and the
model's default input size. ``python -m roofline.model.zoo.build`` regenerates them
from timm (and from ``roofline.model.builtin.cifar`` for the CIFAR pair).
"""

from __future__ import annotations

import difflib
import json
from functools import cache
from importlib import resources

from roofline.errors import RooflineError
from roofline.model.ir import Network
from roofline.model.ir_file import read_network

#: zoo name -> where ``build`` traces it from.
ZOO_SOURCES: dict[str, str] = {
    **{
        name: f"timm:{name}"
        for name in (
            "resnet18 resnet50 wide_resnet50_2 resnext50_32x4d resnext101_32x8d seresnet50 "
            "seresnext50_32x4d regnetx_002 regnetx_004 regnetx_016 regnetx_032 regnety_004 "
            "regnety_016 regnety_032 efficientnet_b0 efficientnet_b1 efficientnet_b2 "
            "efficientnetv2_s efficientnetv2_m mixnet_s mixnet_m mobilenetv2_100 "
            "mobilenetv3_large_100 dla34 dla60x_c dpn68 dpn92 hrnet_w18_small hrnet_w32 "
            "repvgg_a2 repvgg_b1 gernet_s gernet_m gernet_l tresnet_m cspresnet50 resnetrs50 vgg16"
        ).split()
    },
    "cifar_resnet56": "cifar:cifar_resnet56",
    "cifar_vgg16": "cifar:cifar_vgg16",
}


def zoo_names() -> list[str]:
    return list(ZOO_SOURCES)


@cache
def _load(name: str) -> Network:
    text = resources.files(__name__).joinpath(f"{name}.json").read_text()
    return read_network(json.loads(text), source=f"zoo file {name}.json")


def load(name: str) -> Network:
    """The committed IR of zoo model ``name``."""
    if name not in ZOO_SOURCES:
        close = difflib.get_close_matches(name, ZOO_SOURCES, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise RooflineError(
            f"unknown model {name!r}: {hint}run `roofline zoo` for the embedded models, "
            "or name one as timm:NAME, torchvision:NAME, or a path to an .onnx file"
        )
    return _load(name)


def dumps(network: Network) -> str:
    """JSON with one layer per line, so regenerated files diff readably."""
    doc = network.to_dict()
    layers = doc.pop("layers")
    head = json.dumps(doc, separators=(",", ":"))[:-1]
    body = ",\n".join(json.dumps(layer, separators=(",", ":")) for layer in layers)
    return f'{head},"layers":[\n{body}\n]}}\n'
