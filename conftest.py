"""Project-wide pytest configuration: markers and GPU detection.

``gpu``-marked tests (perf_tests/) skip with a reason when no NVIDIA GPU is
visible, so ``pytest`` passes on CPU-only CI; ``analytic`` tests never need
one. Markers are declared in pyproject.toml.
"""

from __future__ import annotations

import functools

import pytest


@functools.cache
def gpu_unavailable_reason() -> str | None:
    """None if an NVIDIA GPU is usable, else why not."""
    try:
        import torch
    except ImportError:
        return "torch is not installed (pip install -e '.[torch]')"
    if not torch.cuda.is_available():
        return "no CUDA GPU visible (torch.cuda.is_available() is False)"
    return None


def pytest_collection_modifyitems(config, items):
    reason = None
    for item in items:
        if "gpu" in item.keywords:
            reason = reason or gpu_unavailable_reason()
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))
