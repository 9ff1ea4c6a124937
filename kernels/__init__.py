"""Code that runs on a GPU: timing, calibration microbenchmarks, runtime backends
(TensorRT, ONNX Runtime, PyTorch) and NVML telemetry.

Empty for now: the measurement harness is a later issue. It will write the
calibration files that ``roofline.gpus.load_calibration`` reads.
"""
