"""Code that runs on a GPU: timing (``timing``), runtime backends (``backends``: TensorRT,
ONNX Runtime, PyTorch), NVML telemetry (``telemetry``), the microbenchmarks that calibrate the
roofline (``microbench``, ``python -m kernels.calibrate``), and the regression suite's session
(``manifest``, ``benchmark``, ``suite``). Importing it needs no GPU; measuring does.
"""
