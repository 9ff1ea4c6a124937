"""Analytic GPU roofline model for CNNs: FLOPs, bytes, AI, and predicted utilization.

Importing this package needs only numpy and tabulate; the torch and ONNX
frontends import their libraries when called.
"""

from roofline.analysis.predict import Estimate, FusedNetwork, evaluate
from roofline.analysis.target import Target
from roofline.dtypes import DTYPE_BYTES
from roofline.errors import RooflineError
from roofline.hardware.gpus import GPU, Roof, all_gpus, get_gpu
from roofline.model.fusion import Kernel, fuse
from roofline.model.ir import Layer, Network

__version__ = "0.1.0"

__all__ = [
    "DTYPE_BYTES", "GPU", "Estimate", "FusedNetwork", "Kernel", "Layer", "Network",
    "Roof", "RooflineError", "Target", "all_gpus", "evaluate", "fuse", "get_gpu",
]  # fmt: skip
