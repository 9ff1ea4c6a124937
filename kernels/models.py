"""Instantiate a benchmark's model in torch: ``timm:NAME`` or ``torchvision:NAME``, random weights.

Weights do not change the kernels an engine runs or their time, so benchmarks
never download pretrained checkpoints (the GPU runners may have no network).
"""

from __future__ import annotations

import torch


def instantiate(source: str) -> torch.nn.Module:
    """The model named by ``source`` in eval mode on the CPU; ValueError names a bad source."""
    kind, _, name = source.partition(":")
    if kind == "timm":
        import timm

        if not timm.is_model(name):
            raise ValueError(f"unknown timm model {name!r}: see timm.list_models()")
        model = timm.create_model(name, pretrained=False)
    elif kind == "torchvision":
        import torchvision

        if name not in torchvision.models.list_models():
            raise ValueError(f"unknown torchvision model {name!r}: see torchvision.models.list_models()")
        model = torchvision.models.get_model(name, weights=None)
    else:
        raise ValueError(f"model source {source!r} must be timm:NAME or torchvision:NAME")
    return model.eval()
