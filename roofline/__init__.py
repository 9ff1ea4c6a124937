"""Analytic GPU roofline model for CNNs: FLOPs, bytes, AI, and predicted utilization.

Importing this package needs only numpy and tabulate; the torch and ONNX
frontends import their libraries when called.
"""

from .errors import RooflineError
from .fusion import Kernel, fuse
from .gpus import GPU, Roof, all_gpus, get_gpu
from .ir import DTYPE_BYTES, Layer, Network
from .predict import Estimate, FusedNetwork, evaluate

__version__ = "0.1.0"

__all__ = [
    "DTYPE_BYTES", "GPU", "Estimate", "FusedNetwork", "Kernel", "Layer", "Network",
    "Roof", "RooflineError", "all_gpus", "evaluate", "fuse", "get_gpu",
]  # fmt: skip
