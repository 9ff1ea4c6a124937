"""Analytic GPU roofline model for CNNs: FLOPs, bytes, AI, and predicted utilization.

Importing this package needs only numpy and tabulate; the torch and ONNX
frontends import their libraries when called. The public names below load on
first use (PEP 562), so ``import roofline.perf.gate`` or ``roofline.errors``
does not pay for the analysis packages.
"""

import importlib

__version__ = "0.1.0"

#: Public name -> the module that defines it (README, "Architecture").
_EXPORTS = {
    "Estimate": "roofline.analysis.predict",
    "FusedNetwork": "roofline.analysis.predict",
    "evaluate": "roofline.analysis.predict",
    "Target": "roofline.analysis.target",
    "DTYPE_BYTES": "roofline.dtypes",
    "RooflineError": "roofline.errors",
    "GPU": "roofline.hardware.gpus",
    "Roof": "roofline.hardware.gpus",
    "all_gpus": "roofline.hardware.gpus",
    "get_gpu": "roofline.hardware.gpus",
    "Kernel": "roofline.model.fusion",
    "fuse": "roofline.model.fusion",
    "Layer": "roofline.model.ir",
    "Network": "roofline.model.ir",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'roofline' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
