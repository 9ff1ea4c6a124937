"""GPU microbenchmarks that calibrate the roofline: large-GEMM peak per dtype and D2D copy bandwidth.

Gated like the models. The fraction of the datasheet figure each reaches is
reported (extra_info ``utilization``); ``python -m kernels.calibrate`` turns the
best of them into the achievable roof that roofline's reports use.
"""

import pytest

pytestmark = pytest.mark.gpu
KINDS = ("gemm", "copy")


def test_microbenchmark(bench_spec, perf, perf_session):
    from kernels.microbench import gemm_dtypes

    if bench_spec.kind == "gemm":
        cc = perf_session.environment["compute_capability"]
        if bench_spec.dtype not in gemm_dtypes(cc):
            pytest.skip(f"{bench_spec.dtype} GEMM needs a newer GPU than compute capability {cc}")
    entry = perf(bench_spec)
    assert 0 < entry.utilization < 1.05, "faster than the datasheet: wrong FLOP/byte count or peak"
