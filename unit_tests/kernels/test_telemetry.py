"""kernels.telemetry: reason decoding, the validity policy and summary statistics on plain data.

NVML itself is not mocked: the policy is a pure function of ``Sample`` records, tested here on hand-built
ones; the NVML queries run on GPU machines. What is checked against this machine is the degraded path
(no driver, or no pynvml) that CPU CI takes.
"""

import json
import threading
import time

import pytest

from kernels import telemetry
from kernels.telemetry import (
    GpuProcess,
    Sample,
    Sampler,
    Telemetry,
    decode_reasons,
    summarize,
    unavailable_reason,
)

pytestmark = pytest.mark.analytic

OWN = 1000

# Bit values as printed in NVML API Reference, "NvmlClocksEventReasons" (R550 and current).
DOCUMENTED_BITS = {
    "gpu_idle": 0x1,
    "applications_clocks_setting": 0x2,
    "sw_power_cap": 0x4,
    "hw_slowdown": 0x8,
    "sync_boost": 0x10,
    "sw_thermal_slowdown": 0x20,
    "hw_thermal_slowdown": 0x40,
    "hw_power_brake_slowdown": 0x80,
    "display_clock_setting": 0x100,
}
PYNVML_SUFFIX = {
    "gpu_idle": "GpuIdle",
    "applications_clocks_setting": "ApplicationsClocksSetting",
    "sw_power_cap": "SwPowerCap",
    "hw_slowdown": "HwSlowdown",
    "sync_boost": "SyncBoost",
    "sw_thermal_slowdown": "SwThermalSlowdown",
    "hw_thermal_slowdown": "HwThermalSlowdown",
    "hw_power_brake_slowdown": "HwPowerBrakeSlowdown",
    "display_clock_setting": "DisplayClockSetting",
}


ALONE = ((GpuProcess(OWN),),)  # every sample lists only this process


def make_samples(masks, processes=ALONE, **fields):
    """One sample per mask; ``processes`` cycles over the samples."""
    return [
        Sample(t_s=0.1 * i, reasons_mask=mask, processes=processes[i % len(processes)], **fields)
        for i, mask in enumerate(masks)
    ]


def run(samples, **kwargs):
    return summarize(samples, own_pids={OWN}, energy_j=kwargs.pop("energy_j", 10.0), duration_s=1.0, **kwargs)


# --- decode_reasons -------------------------------------------------------------------------------------


def test_decode_reasons_against_pynvml_constants():
    pynvml = pytest.importorskip("pynvml", reason="nvidia-ml-py not installed: no constants to compare")
    for name, suffix in PYNVML_SUFFIX.items():
        value = getattr(pynvml, "nvmlClocksEventReason" + suffix, None)
        if value is None:
            value = getattr(pynvml, "nvmlClocksThrottleReason" + suffix)
        assert decode_reasons(value) == (name,), suffix
    every = 0
    for suffix in PYNVML_SUFFIX.values():
        every |= getattr(pynvml, "nvmlClocksThrottleReason" + suffix)
    assert decode_reasons(every) == tuple(PYNVML_SUFFIX)


def test_decode_reasons_documented_values():
    for name, bit in DOCUMENTED_BITS.items():
        assert decode_reasons(bit) == (name,)
    assert decode_reasons(0) == ()
    # Bit order, whatever order the bits were set in; unknown bits are reported, not dropped.
    assert decode_reasons(0x40 | 0x4 | 0x1) == ("gpu_idle", "sw_power_cap", "hw_thermal_slowdown")
    assert decode_reasons(0x8 | (1 << 20)) == ("hw_slowdown", "unknown_0x100000")
    with pytest.raises(ValueError):
        decode_reasons(-1)


# --- validity policy --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reason", ["hw_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown", "sw_thermal_slowdown"]
)
def test_throttling_invalidates(reason):
    result = run(make_samples([0] * 7 + [DOCUMENTED_BITS[reason]]))
    assert result.invalid_reasons == (
        f"thermal/hardware throttling during measurement: {reason} in 12% of samples (1 of 8)",
    )
    assert result.invalid and not result.verified
    assert result.reason_fractions == {reason: 1 / 8}


def test_power_cap_is_reported_not_invalidating_unless_strict():
    samples = make_samples([0x4] * 3 + [0] * 7)
    relaxed = run(samples)
    assert relaxed.invalid_reasons == ()
    assert relaxed.verified
    assert any("sw_power_cap in 30% of samples (3 of 10)" in w for w in relaxed.warnings)
    assert relaxed.reason_fractions == {"sw_power_cap": 0.3}

    strict = run(samples, strict_power=True)
    assert strict.invalid_reasons == (
        "power capping during measurement (strict_power): sw_power_cap in 30% of samples (3 of 10)",
    )
    assert not any("sw_power_cap" in w for w in strict.warnings)


def test_gpu_idle_is_not_throttling():
    result = run(make_samples([0x1] * 5))
    assert result.invalid_reasons == ()
    assert result.warnings == ()
    assert result.reason_fractions == {"gpu_idle": 1.0}
    assert result.verified


def test_several_reasons_one_message_each_in_bit_order():
    result = run(make_samples([0x40 | 0x8, 0x8, 0x4, 0]), strict_power=True)
    assert [r.split(": ")[1].split(" in ")[0] for r in result.invalid_reasons] == [
        "sw_power_cap",
        "hw_slowdown",
        "hw_thermal_slowdown",
    ]
    assert result.reason_fractions == {"sw_power_cap": 0.25, "hw_slowdown": 0.5, "hw_thermal_slowdown": 0.25}


def test_unfamiliar_reason_is_warned_not_invalidating():
    result = run(make_samples([0x200, 1 << 20]))
    assert result.invalid_reasons == ()
    assert any("board_limit" in w for w in result.warnings)
    assert any("unknown_0x100000" in w for w in result.warnings)


def test_foreign_process_invalidates():
    stranger = GpuProcess(4242, name="python3", used_memory_bytes=3 * 2**30)
    result = run(make_samples([0] * 4, processes=[(GpuProcess(OWN),), (GpuProcess(OWN), stranger)]))
    assert result.foreign_processes == (stranger,)
    assert result.invalid_reasons == (
        "other processes on the GPU during measurement: pid 4242 (python3, 3.00 GiB)",
    )


def test_foreign_process_seen_in_several_samples_is_merged():
    a = GpuProcess(77, name=None, used_memory_bytes=100, kind="compute")
    b = GpuProcess(77, name="Xorg", used_memory_bytes=300, kind="graphics")
    result = run(make_samples([0, 0], processes=[(GpuProcess(OWN), a), (GpuProcess(OWN), b)]))
    assert result.foreign_processes == (
        GpuProcess(77, name="Xorg", used_memory_bytes=300, kind="compute+graphics"),
    )


def test_container_single_process_is_assumed_ours():
    # NVML lists host PIDs: inside a container our own pid (OWN) is not among them.
    host_pid = GpuProcess(5555, name=None, used_memory_bytes=2**30)
    result = run(make_samples([0] * 3, processes=[(host_pid,)]))
    assert result.invalid_reasons == ()
    assert result.foreign_processes == ()
    (note,) = result.warnings
    assert "pid 5555" in note and f"pid {OWN}" in note and "assuming" in note


def test_container_several_processes_are_all_foreign():
    one, two = GpuProcess(5555), GpuProcess(6666)
    result = run(make_samples([0] * 4, processes=[(one,), (one, two)]))
    assert result.foreign_processes == (one, two)
    (reason,) = result.invalid_reasons
    assert "pid 5555, pid 6666" in reason and f"(pid {OWN}) is not among them" in reason


def test_confirmation_rerun_in_a_container_expects_its_parent_too():
    # The re-run's parent (the pytest process) holds a CUDA context on the same GPU.
    one, two, three = GpuProcess(5555), GpuProcess(6666), GpuProcess(7777)
    samples = make_samples([0] * 3, processes=[(one, two)])
    rerun = summarize(samples, own_pids={OWN, OWN + 1}, energy_j=1.0, duration_s=1.0)
    assert rerun.invalid_reasons == () and "assuming" in rerun.warnings[0]
    crowded = make_samples([0] * 3, processes=[(one, two, three)])
    assert summarize(crowded, own_pids={OWN, OWN + 1}, energy_j=1.0, duration_s=1.0).invalid_reasons


def test_unreadable_or_empty_process_list_is_a_warning():
    unreadable = run(make_samples([0] * 3, processes=[None]))
    assert unreadable.invalid_reasons == ()
    assert any("process list could not be read" in w for w in unreadable.warnings)

    empty = run(make_samples([0] * 3, processes=[()]))
    assert empty.invalid_reasons == ()
    assert any("listed no process" in w for w in empty.warnings)


def test_unreadable_reasons_and_energy_are_warnings():
    result = run(make_samples([None] * 3), energy_j=None)
    assert result.invalid_reasons == ()
    assert result.reason_fractions == {}
    assert any("clock event reasons could not be read" in w for w in result.warnings)
    assert any("energy counter" in w for w in result.warnings)


def test_no_samples_is_not_a_clean_run():
    result = summarize([], own_pids={OWN}, energy_j=None, duration_s=0.01)
    assert result.available and result.n_samples == 0
    assert not result.verified
    assert any("no samples" in w for w in result.warnings)


def test_sampler_errors_become_warnings():
    result = run(make_samples([0] * 3), sampler_errors=("nvmlDeviceGetPowerUsage: Unknown Error (x3)",))
    assert "sampler: nvmlDeviceGetPowerUsage: Unknown Error (x3)" in result.warnings


# --- statistics ---------------------------------------------------------------------------------------------


def test_summary_statistics():
    samples = [
        Sample(0.0, 1980, 2619, 0, 100, 40, 690.0, 61, (GpuProcess(OWN),)),
        Sample(0.1, 1755, 2619, 0x4, 98, 44, 700.0, 63, (GpuProcess(OWN),)),
        Sample(0.2, 1980, 2619, 0x4, 99, 42, 698.0, 64, (GpuProcess(OWN),)),
        Sample(0.3, 1890, 1593, 0, 97, 38, 620.0, 62, (GpuProcess(OWN),)),
        Sample(0.4, None, None, None, None, None, None, None, (GpuProcess(OWN),)),  # nothing readable
    ]
    result = summarize(samples, own_pids={OWN}, energy_j=540.0, duration_s=0.8, items=1200, interval_s=0.1)
    assert result.n_samples == 5
    assert (result.sm_clock_mhz_median, result.sm_clock_mhz_min, result.sm_clock_mhz_max) == (
        1935.0,
        1755,
        1980,
    )
    assert (result.mem_clock_mhz_median, result.mem_clock_mhz_min, result.mem_clock_mhz_max) == (
        2619,
        1593,
        2619,
    )
    assert result.gpu_util_pct_mean == pytest.approx(98.5)
    assert result.mem_util_pct_mean == pytest.approx(41.0)
    assert result.power_w_mean == pytest.approx(677.0)
    assert result.power_w_max == 700.0
    assert result.temperature_c_max == 64
    assert result.energy_j == 540.0
    assert result.energy_per_item_j == pytest.approx(0.45)
    assert result.reason_fractions == {"sw_power_cap": 0.5}  # over the 4 samples with a readable mask
    assert result.interval_s == 0.1 and result.duration_s == 0.8
    assert result.verified


def test_energy_per_item_needs_items_and_energy():
    assert run(make_samples([0] * 3)).energy_per_item_j is None
    assert run(make_samples([0] * 3), energy_j=None, items=10).energy_per_item_j is None


def test_to_dict_json_round_trip():
    stranger = GpuProcess(4242, name="python3", used_memory_bytes=2**30, kind="compute")
    result = run(make_samples([0x4, 0x40, 0], processes=[(GpuProcess(OWN), stranger)]), items=64)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["foreign_processes"] == [
        {"pid": 4242, "name": "python3", "used_memory_bytes": 2**30, "kind": "compute"}
    ]
    assert data["reason_fractions"] == {
        "sw_power_cap": pytest.approx(1 / 3),
        "hw_thermal_slowdown": pytest.approx(1 / 3),
    }
    assert len(data["invalid_reasons"]) == 2
    assert Telemetry.from_dict(data) == result
    unavailable = Telemetry.unavailable("no driver", duration_s=1.5)
    assert Telemetry.from_dict(json.loads(json.dumps(unavailable.to_dict()))) == unavailable


def test_telemetry_is_frozen():
    result = run(make_samples([0]))
    with pytest.raises(AttributeError):
        result.energy_j = 0.0
    with pytest.raises(TypeError):
        result.reason_fractions["gpu_idle"] = 1.0


# --- the sampling thread (plain callables, no NVML) --------------------------------------------------------


def test_sampling_thread_records_exceptions_and_keeps_going():
    calls = []

    def read():
        calls.append(None)
        if len(calls) == 2:
            raise OSError("transient")
        return Sample(t_s=float(len(calls)))

    thread = telemetry._SamplingThread(read, interval_s=0.005)
    thread.start()
    time.sleep(0.1)
    samples, errors = thread.stop(timeout_s=5.0)
    assert errors == ("OSError: transient",)
    assert len(samples) == len(calls) - 1 >= 3
    assert not any(t.name == "gpu-telemetry" and t.is_alive() for t in threading.enumerate())


def test_sampling_thread_samples_at_once():
    thread = telemetry._SamplingThread(lambda: Sample(t_s=0.0), interval_s=60.0)
    thread.start()
    samples, errors = thread.stop(timeout_s=5.0)  # stop interrupts the 60 s wait
    assert len(samples) == 1 and errors == ()


# --- this machine: degraded paths ---------------------------------------------------------------------------


def test_unavailable_reason_is_one_line_or_none():
    reason = unavailable_reason()
    assert reason is None or (isinstance(reason, str) and reason and "\n" not in reason)


def test_without_pynvml(monkeypatch):
    monkeypatch.setattr(telemetry, "pynvml", None)
    reason = unavailable_reason()
    assert "nvidia-ml-py is not installed" in reason
    check_degraded_sampler(reason)


def test_without_nvml_on_this_machine():
    reason = unavailable_reason()
    if reason is None:
        pytest.skip("NVML works on this machine: the degraded path is tested where it does not")
    check_degraded_sampler(reason)


def check_degraded_sampler(reason):
    with Sampler(interval_s=0.01) as sampler:
        time.sleep(0.03)
    assert not sampler.available and sampler.samples == ()
    result = sampler.telemetry(items=8)
    assert result.available is False
    assert result.unavailable_reason == reason
    assert result.invalid_reasons == ()
    assert not result.verified
    assert len(result.warnings) == 1 and "not checked" in result.warnings[0] and reason in result.warnings[0]
    assert result.duration_s >= 0.03 and result.items == 8 and result.energy_j is None


def test_telemetry_before_exit_is_an_error():
    with Sampler(interval_s=0.01) as sampler:
        with pytest.raises(RuntimeError, match="exited"):
            sampler.telemetry()


def test_environment_without_any_gpu_raises(monkeypatch):
    monkeypatch.setattr(telemetry, "pynvml", None)
    monkeypatch.setattr(telemetry, "_torch_device", lambda index: (None, "torch is not installed"))
    with pytest.raises(RuntimeError, match="torch is not installed; nvidia-ml-py is not installed"):
        telemetry.environment(0)


def test_environment_on_this_machine():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available() or unavailable_reason() is None:
        pytest.skip("this machine has a GPU: environment() is exercised by the GPU suite")
    with pytest.raises(RuntimeError, match="no GPU to describe"):
        telemetry.environment(0)


def test_sampler_rejects_bad_interval():
    with pytest.raises(ValueError):
        Sampler(interval_s=0)
