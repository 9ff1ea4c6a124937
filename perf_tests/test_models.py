"""GPU benchmarks of the manifest's models: one per model x batch x backend.

Each measures images/s per window (kernels.timing), converts it to TFLOP/s and
utilization with roofline's FLOPs per image and the GPU's datasheet and
achievable peaks, records the analytic prediction and its error and the NVML
telemetry, and gates it against the committed baseline (see conftest.py).
Skips without a GPU; a backend that is not installed skips unless required
with ``--backend``. In the CPU mode (``--perf-device cpu``) the CPU manifest's
models run here too, with host timers and no utilization (not a GPU figure).
"""

import pytest

pytestmark = pytest.mark.gpu
KINDS = ("model",)


def test_model_throughput(bench_spec, perf):
    entry = perf(bench_spec)
    assert entry.median > 0
    if bench_spec.device == "cpu":
        assert entry.utilization is None and entry.extra["device"] == "cpu", (
            "a CPU run must not look like a GPU's"
        )
        return
    assert 0 < entry.utilization < 1, "utilization above the datasheet peak: wrong FLOPs or peak"
