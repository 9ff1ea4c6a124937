"""GPU telemetry through NVML (nvidia-ml-py): the environment fingerprint, and a sampler that checks a run.

DESIGN.md, "Measuring on a GPU": every result records the environment it was measured in (GPU, compute
capability, SMs, memory, driver, CUDA, clock ceilings, power limit), and a run is checked for clock event
(throttle) reasons and for other processes on the GPU. ``environment()`` gives the first, ``Sampler`` the
second; ``decode_reasons`` and ``summarize`` hold the validity policy as pure functions of plain data, so it
is tested without a GPU.

Sources: NVIDIA, *NVML API Reference Guide* (docs.nvidia.com/deploy/nvml-api), sections "Initialization and
Cleanup", "System Queries", "Device Queries", "NvmlClocksEventReasons", structs ``nvmlUtilization_t`` and
``nvmlProcessInfo_t``. nvidia-ml-py (module ``pynvml``) wraps those C functions one to one and raises
``NVMLError_<Code>`` for a non-success return. The reference states NVML is thread-safe and that
``nvmlInit``/``nvmlShutdown`` are reference counted, which is what lets the sampler thread query while
``environment()`` or another sampler holds its own session.
"""

from __future__ import annotations

import os
import platform
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from roofline.errors import RooflineError
from roofline.hardware.gpus import match_device

try:
    import pynvml
except ImportError:  # the `gpu` extra is optional: CPU machines run the analytic suite without it
    pynvml = None


# --- clock event reasons ------------------------------------------------------------------------------


def _reason_bit(suffix: str, documented: int) -> int:
    """pynvml's value for one reason bit, else the value documented in NVML's "NvmlClocksEventReasons".

    NVML renamed ``nvmlClocksThrottleReason*`` to ``nvmlClocksEventReason*``; the R550 reference still
    lists the hardware slowdown bits under the old name only, and pynvml versions differ in which names they
    define, so both are tried.
    """
    for prefix in ("nvmlClocksEventReason", "nvmlClocksThrottleReason"):
        value = getattr(pynvml, prefix + suffix, None) if pynvml is not None else None
        if value is not None:
            return int(value)
    return documented


# (name, bit), in bit order. Values: NVML API Reference, "NvmlClocksEventReasons" (board_limit and
# reliability are the two newest, 0x200 and 0x400, in cuda.bindings.nvml.ClocksEventReasons).
REASON_BITS: tuple[tuple[str, int], ...] = (
    ("gpu_idle", _reason_bit("GpuIdle", 0x1)),
    ("applications_clocks_setting", _reason_bit("ApplicationsClocksSetting", 0x2)),
    ("sw_power_cap", _reason_bit("SwPowerCap", 0x4)),
    ("hw_slowdown", _reason_bit("HwSlowdown", 0x8)),
    ("sync_boost", _reason_bit("SyncBoost", 0x10)),
    ("sw_thermal_slowdown", _reason_bit("SwThermalSlowdown", 0x20)),
    ("hw_thermal_slowdown", _reason_bit("HwThermalSlowdown", 0x40)),
    ("hw_power_brake_slowdown", _reason_bit("HwPowerBrakeSlowdown", 0x80)),
    ("display_clock_setting", _reason_bit("DisplayClockSetting", 0x100)),
    ("board_limit", _reason_bit("BoardLimit", 0x200)),
    ("reliability", _reason_bit("Reliability", 0x400)),
)
_REASON_ORDER = {name: i for i, (name, _) in enumerate(REASON_BITS)}

# Heat or hardware protection slowed the clocks: the run measured a degraded GPU, not the configuration.
INVALIDATING_REASONS = frozenset(
    {"hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown"}
)
# Tensor-core-heavy kernels reach the board power limit by design on A100/H100; the limit is in the
# fingerprint, so runs under one cap compare. Invalidating only with strict_power=True.
POWER_CAP_REASON = "sw_power_cap"
# Set when nothing runs between kernels or in the gaps around a window: idling is not throttling.
IDLE_REASON = "gpu_idle"
# Settings that are part of the fingerprint or harmless: recorded, not warned about.
_QUIET_REASONS = frozenset(
    {IDLE_REASON, "applications_clocks_setting", "sync_boost", "display_clock_setting"}
)


def decode_reasons(mask: int) -> tuple[str, ...]:
    """Names of the clock event reasons set in an NVML reasons bitmask, in bit order.

    The mask is what ``nvmlDeviceGetCurrentClocksEventReasons`` returns (NVML API Reference, "Device
    Queries"; bits in "NvmlClocksEventReasons"). Bits this module does not know come out as
    ``unknown_0x...`` so a reason added by a newer driver is reported rather than dropped.
    """
    if mask < 0:
        raise ValueError(f"a reasons bitmask is unsigned, got {mask}")
    names = []
    known = 0
    for name, bit in REASON_BITS:
        known |= bit
        if mask & bit:
            names.append(name)
    unknown = mask & ~known
    bit = 1
    while unknown:
        if unknown & bit:
            names.append(f"unknown_{bit:#x}")
            unknown &= ~bit
        bit <<= 1
    return tuple(names)


# --- samples and their summary -----------------------------------------------------------------------


@dataclass(frozen=True)
class GpuProcess:
    """A process NVML lists on the GPU (``nvmlProcessInfo_t``: pid, usedGpuMemory).

    ``pid`` is in the host's PID namespace; ``name`` is None where ``nvmlSystemGetProcessName`` cannot
    resolve it (typically a pid from outside our container); ``used_memory_bytes`` is None where NVML
    reports it as not available. ``kind`` is "compute", "graphics" or "compute+graphics".
    """

    pid: int
    name: str | None = None
    used_memory_bytes: int | None = None
    kind: str = "compute"

    def describe(self) -> str:
        parts = [p for p in (self.name, _gib(self.used_memory_bytes)) if p]
        return f"pid {self.pid}" + (f" ({', '.join(parts)})" if parts else "")


@dataclass(frozen=True)
class Sample:
    """One reading of the GPU by the sampler; None where the query is not supported on this GPU.

    ``processes`` is None when no process list could be read at all (distinct from an empty list).
    Utilization is NVML's (as nvidia-smi shows it): the percent of the last sample period, 1/6 s to 1 s
    depending on the product, during which a kernel ran / device memory was read or written
    (``nvmlUtilization_t``), so it lags a window by up to a second.
    """

    t_s: float
    sm_clock_mhz: int | None = None
    mem_clock_mhz: int | None = None
    reasons_mask: int | None = None
    gpu_util_pct: int | None = None
    mem_util_pct: int | None = None
    power_w: float | None = None
    temperature_c: int | None = None
    processes: tuple[GpuProcess, ...] | None = ()

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(p.pid for p in self.processes or ())


@dataclass(frozen=True)
class Telemetry:
    """What the sampler saw during one measured run, and whether that run is valid.

    ``invalid_reasons`` empty means telemetry found nothing wrong, which is not the same as a checked run:
    ``available`` False (no NVML) has no invalid reasons but says so in ``warnings``. ``verified`` is the
    positive statement. Clock statistics are over the samples that could read them; ``reason_fractions``
    maps each reason seen to the fraction of samples (with a readable mask) that had it set.
    """

    available: bool
    unavailable_reason: str | None = None
    n_samples: int = 0
    interval_s: float | None = None
    duration_s: float | None = None
    sm_clock_mhz_median: float | None = None
    sm_clock_mhz_min: int | None = None
    sm_clock_mhz_max: int | None = None
    mem_clock_mhz_median: float | None = None
    mem_clock_mhz_min: int | None = None
    mem_clock_mhz_max: int | None = None
    gpu_util_pct_mean: float | None = None
    mem_util_pct_mean: float | None = None
    power_w_mean: float | None = None
    power_w_max: float | None = None
    temperature_c_max: int | None = None
    energy_j: float | None = None
    items: int | None = None
    energy_per_item_j: float | None = None
    reason_fractions: Mapping[str, float] = field(default_factory=dict)
    foreign_processes: tuple[GpuProcess, ...] = ()
    invalid_reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Read-only and ordered by bit, so equal telemetry compares equal whatever order it was built in.
        ordered = sorted(
            self.reason_fractions.items(), key=lambda kv: _REASON_ORDER.get(kv[0], len(REASON_BITS))
        )
        object.__setattr__(self, "reason_fractions", MappingProxyType(dict(ordered)))
        object.__setattr__(self, "foreign_processes", tuple(self.foreign_processes))
        object.__setattr__(self, "invalid_reasons", tuple(self.invalid_reasons))
        object.__setattr__(self, "warnings", tuple(self.warnings))

    @classmethod
    def unavailable(cls, reason: str, duration_s: float | None = None, items: int | None = None) -> Telemetry:
        """No telemetry: reported as a warning, never as a clean run."""
        return cls(
            available=False,
            unavailable_reason=reason,
            duration_s=duration_s,
            items=items,
            warnings=(
                f"no GPU telemetry: {reason}; throttling and other processes on the GPU were not checked",
            ),
        )

    @property
    def invalid(self) -> bool:
        return bool(self.invalid_reasons)

    @property
    def verified(self) -> bool:
        """True only when telemetry was read during the run and found nothing invalidating."""
        return self.available and self.n_samples > 0 and not self.invalid_reasons

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: plain dicts, lists, numbers, strings and None."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name == "reason_fractions":
                value = dict(value)
            elif name == "foreign_processes":
                value = [vars(p).copy() for p in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Telemetry:
        """Inverse of ``to_dict`` (for results files read back); unknown keys are an error."""
        data = dict(data)
        data["foreign_processes"] = tuple(GpuProcess(**p) for p in data.get("foreign_processes", ()))
        return cls(**data)


def _gib(n_bytes: int | None) -> str | None:
    return None if n_bytes is None else f"{n_bytes / 2**30:.2f} GiB"


def _share(count: int, total: int) -> str:
    return f"{100 * count / total:.0f}% of samples ({count} of {total})"


def _known(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def _merge_processes(samples: Sequence[Sample]) -> dict[int, GpuProcess]:
    """Every process seen in any sample, by pid: first name found, peak memory, union of kinds."""
    merged: dict[int, GpuProcess] = {}
    for sample in samples:
        for p in sample.processes or ():
            old = merged.get(p.pid)
            if old is None:
                merged[p.pid] = p
                continue
            memory = _known([old.used_memory_bytes, p.used_memory_bytes])
            kinds = sorted(set(old.kind.split("+")) | set(p.kind.split("+")))
            merged[p.pid] = GpuProcess(
                pid=p.pid,
                name=old.name or p.name,
                used_memory_bytes=max(memory) if memory else None,
                kind="+".join(kinds),
            )
    return merged


def _foreign_processes(
    samples: Sequence[Sample], own_pids: Collection[int]
) -> tuple[tuple[GpuProcess, ...], list[str], list[str]]:
    """(foreign processes, invalid reasons, warnings) under the process rule.

    NVML reports host PIDs (``nvmlProcessInfo_t.pid``), so inside a container our own pid usually does not
    appear. Rule: if one of ``own_pids`` is listed, every other pid is foreign. If none is, and no more pids
    were listed over the whole run than ``own_pids`` holds (one, or two for a confirmation re-run whose
    parent also holds a CUDA context), they are taken to be ours (the assumption is stated in a warning).
    If more were listed, none can be told apart as ours, so all are foreign: the run is invalid rather than
    silently trusted.
    """
    readable = [s for s in samples if s.processes is not None]
    if not readable:
        return (), [], ["the process list could not be read: other processes on the GPU were not checked"]
    seen = _merge_processes(readable)
    own = set(own_pids)
    warnings = []
    detail = ""
    if own & seen.keys():
        foreign = [p for pid, p in sorted(seen.items()) if pid not in own]
    elif not seen:
        foreign = []
        warnings.append(
            "NVML listed no process on the GPU during the run, not even this one (a container's PID "
            "namespace can hide them): other processes on the GPU could not be ruled out"
        )
    elif len(seen) <= max(1, len(own)):
        listed = ", ".join(p.describe() for p in seen.values())
        foreign = []
        warnings.append(
            f"this process (pid {_pids(own)}) is not in NVML's process list, which holds host PIDs (a "
            f"container's pids differ); assuming the processes listed, {listed}, are ours"
        )
    else:
        foreign = [p for _, p in sorted(seen.items())]
        detail = (
            f"; this process (pid {_pids(own)}) is not among them (container PID namespace?), "
            "so none can be told apart as ours"
        )
    invalid = []
    if foreign:
        listed = ", ".join(p.describe() for p in foreign)
        invalid.append(f"other processes on the GPU during measurement: {listed}{detail}")
    return tuple(foreign), invalid, warnings


def _pids(pids: Collection[int]) -> str:
    return "/".join(str(p) for p in sorted(pids)) or "unknown"


def summarize(
    samples: Sequence[Sample],
    own_pids: Collection[int],
    energy_j: float | None,
    duration_s: float,
    *,
    items: int | None = None,
    strict_power: bool = False,
    interval_s: float | None = None,
    sampler_errors: Sequence[str] = (),
) -> Telemetry:
    """Statistics of a run's samples and the validity verdict (DESIGN.md, "Measuring on a GPU").

    INVALID when any sample has ``hw_slowdown``, ``hw_thermal_slowdown``, ``hw_power_brake_slowdown`` or
    ``sw_thermal_slowdown`` set (NVML "NvmlClocksEventReasons": heat or hardware protection lowered the
    clocks), when ``strict_power`` and any sample has ``sw_power_cap``, or when a process other than ours is
    on the GPU (rule in ``_foreign_processes``). ``sw_power_cap`` alone is only a warning; ``gpu_idle`` is
    not throttling and is ignored. ``energy_j`` is the energy counter's difference over the run (None when
    unsupported); with ``items`` (images, queries) it also gives energy per item.
    """
    warnings = [f"sampler: {e}" for e in sampler_errors]
    invalid: list[str] = []
    if not samples:
        warnings.append("no samples were taken: throttling and other processes were not checked")
    elif len(samples) < 3:
        warnings.append(f"only {len(samples)} samples: the run is short next to the sampling interval")

    masks = [s.reasons_mask for s in samples if s.reasons_mask is not None]
    counts = Counter(name for mask in masks for name in decode_reasons(mask))
    fractions = {name: counts[name] / len(masks) for name in counts}
    if samples and not masks:
        warnings.append("clock event reasons could not be read: throttling was not checked")
    for name in sorted(counts, key=lambda n: _REASON_ORDER.get(n, len(REASON_BITS))):
        share = _share(counts[name], len(masks))
        if name in INVALIDATING_REASONS:
            invalid.append(f"thermal/hardware throttling during measurement: {name} in {share}")
        elif name == POWER_CAP_REASON and strict_power:
            invalid.append(f"power capping during measurement (strict_power): {name} in {share}")
        elif name == POWER_CAP_REASON:
            warnings.append(
                f"{name} in {share}: clocks held to the power limit (normal for tensor-core-heavy kernels; "
                "invalidating only with strict_power)"
            )
        elif name not in _QUIET_REASONS:
            warnings.append(f"clock event reason {name} in {share} (not part of the validity policy)")

    foreign, process_invalid, process_warnings = (
        _foreign_processes(samples, own_pids) if samples else ((), [], [])
    )
    invalid += process_invalid
    warnings += process_warnings
    if energy_j is None and samples:
        warnings.append("the energy counter is not supported on this GPU: no energy figure")

    def stats(values: list[float]) -> tuple[float | None, float | None, float | None]:
        return (float(statistics.median(values)), min(values), max(values)) if values else (None, None, None)

    sm = stats(_known([s.sm_clock_mhz for s in samples]))
    mem = stats(_known([s.mem_clock_mhz for s in samples]))
    gpu_util = _known([s.gpu_util_pct for s in samples])
    mem_util = _known([s.mem_util_pct for s in samples])
    power = _known([s.power_w for s in samples])
    temperature = _known([s.temperature_c for s in samples])
    return Telemetry(
        available=True,
        n_samples=len(samples),
        interval_s=interval_s,
        duration_s=duration_s,
        sm_clock_mhz_median=sm[0],
        sm_clock_mhz_min=sm[1],
        sm_clock_mhz_max=sm[2],
        mem_clock_mhz_median=mem[0],
        mem_clock_mhz_min=mem[1],
        mem_clock_mhz_max=mem[2],
        gpu_util_pct_mean=statistics.fmean(gpu_util) if gpu_util else None,
        mem_util_pct_mean=statistics.fmean(mem_util) if mem_util else None,
        power_w_mean=statistics.fmean(power) if power else None,
        power_w_max=max(power) if power else None,
        temperature_c_max=max(temperature) if temperature else None,
        energy_j=energy_j,
        items=items,
        energy_per_item_j=energy_j / items if energy_j is not None and items else None,
        reason_fractions=fractions,
        foreign_processes=foreign,
        invalid_reasons=tuple(invalid),
        warnings=tuple(warnings),
    )


# --- NVML access ---------------------------------------------------------------------------------------


class _NvmlUnavailable(RuntimeError):
    """NVML cannot be used here; the message (one line) says why."""


class _Errors:
    """NVML errors met while querying, each message kept once with a count (a sampler repeats them)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def add(self, message: str) -> None:
        self._counts[message] = self._counts.get(message, 0) + 1

    def messages(self) -> tuple[str, ...]:
        return tuple(m if n == 1 else f"{m} (x{n})" for m, n in list(self._counts.items()))


def _nvml_errors() -> tuple[type[BaseException], ...]:
    return (pynvml.NVMLError,) if pynvml is not None else ()


def _missing_function_errors() -> tuple[type[BaseException], ...]:
    names = ("NVMLError_FunctionNotFound", "NVMLLibraryMismatchError")
    return tuple(getattr(pynvml, n) for n in names if pynvml is not None and hasattr(pynvml, n))


def _query(names: str | tuple[str, ...], *args: Any, errors: _Errors) -> Any:
    """Call the first of ``names`` that this pynvml and driver have; None where NVML can't answer.

    ``NVMLError_NotSupported`` (the GPU lacks the feature, e.g. the energy counter before Volta) is a plain
    None. A function missing from the driver or pynvml falls through to the next name (the deprecated
    ``...ClocksThrottleReasons`` for drivers older than ``...ClocksEventReasons``). Any other NVML error is
    recorded in ``errors`` and also gives None, so one failing query never loses the others.
    """
    names = (names,) if isinstance(names, str) else names
    for name in names:
        function = getattr(pynvml, name, None)
        if function is None:
            continue
        try:
            return function(*args)
        except pynvml.NVMLError_NotSupported:
            return None
        except _missing_function_errors():
            continue
        except pynvml.NVMLError as error:
            errors.add(f"{name}: {error}")
            return None
    errors.add(f"{names[0]}: not available in this driver/pynvml")
    return None


@contextmanager
def _nvml_session() -> Iterator[None]:
    """nvmlInit ... nvmlShutdown (reference counted by NVML), or _NvmlUnavailable saying why."""
    if pynvml is None:
        raise _NvmlUnavailable("nvidia-ml-py is not installed (module pynvml; the project's `gpu` extra)")
    try:
        pynvml.nvmlInit()
    except (pynvml.NVMLError, OSError) as error:
        raise _NvmlUnavailable(
            f"NVML cannot be initialized: {error} (is the NVIDIA driver installed and loaded?)"
        ) from error
    try:
        yield
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass  # shutting down is best effort: the measurement is already taken


def unavailable_reason() -> str | None:
    """None when NVML can be initialized and sees a GPU, else one line saying why not."""
    try:
        with _nvml_session():
            if pynvml.nvmlDeviceGetCount() == 0:
                return "NVML sees no GPU"
    except _NvmlUnavailable as error:
        return str(error)
    return None


def _torch_device(device_index: int) -> tuple[Any, str | None]:
    """(torch's properties of CUDA device ``device_index``, None) or (None, why not)."""
    try:
        import torch
    except ImportError:
        return None, "torch is not installed"
    if not torch.cuda.is_available():
        return None, "torch sees no CUDA device (torch.cuda.is_available() is False)"
    count = torch.cuda.device_count()
    if not 0 <= device_index < count:
        raise RuntimeError(f"CUDA device {device_index} does not exist: torch sees {count}")
    return torch.cuda.get_device_properties(device_index), None


def _handle_from_props(props: Any, errors: _Errors) -> tuple[Any, str] | None:
    """The NVML handle of the device torch describes, by UUID, else by PCI bus id; None if neither works.

    torch's ``uuid`` prints as 8-4-4-4-12 hex (cudaDeviceProp.uuid) and NVML's UUIDs are that string
    prefixed "GPU-" (or "MIG-" for a MIG instance). The PCI bus id is "domain:bus:device.function" in hex,
    one of the forms ``nvmlDeviceGetHandleByPciBusId`` accepts.
    """
    uuid = getattr(props, "uuid", None)
    if uuid is not None:
        for prefix in ("GPU-", "MIG-"):
            try:
                return pynvml.nvmlDeviceGetHandleByUUID(prefix + str(uuid)), f"by UUID {prefix}{uuid}"
            except pynvml.NVMLError:
                continue
    parts = [getattr(props, name, None) for name in ("pci_domain_id", "pci_bus_id", "pci_device_id")]
    if None not in parts:
        bus_id = f"{parts[0]:08x}:{parts[1]:02x}:{parts[2]:02x}.0"
        try:
            return pynvml.nvmlDeviceGetHandleByPciBusId(bus_id), f"by PCI bus id {bus_id}"
        except pynvml.NVMLError as error:
            errors.add(f"nvmlDeviceGetHandleByPciBusId({bus_id}): {error}")
    return None


def _handle_from_visible_devices(device_index: int) -> tuple[Any, str]:
    """The NVML handle for CUDA index ``device_index`` without torch: through CUDA_VISIBLE_DEVICES.

    CUDA numbers the visible devices in the order CUDA_VISIBLE_DEVICES lists them (indices or UUID
    prefixes); NVML numbers all devices in PCI order. Without the variable the same index is assumed,
    which holds when CUDA also enumerates in PCI order (CUDA_DEVICE_ORDER=PCI_BUS_ID, or identical GPUs).
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    order_note = (
        ""
        if os.environ.get("CUDA_DEVICE_ORDER") == "PCI_BUS_ID"
        else "; assumes CUDA_DEVICE_ORDER=PCI_BUS_ID"
    )
    if visible is None:
        index = device_index
        how = f"by index {index} (no torch to match by UUID{order_note})"
    else:
        entries = [e.strip() for e in visible.split(",") if e.strip()]
        if not 0 <= device_index < len(entries):
            raise RuntimeError(
                f"CUDA device {device_index} is not visible (CUDA_VISIBLE_DEVICES={visible!r})"
            )
        entry = entries[device_index]
        if not entry.isdigit():
            for i in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                if pynvml.nvmlDeviceGetUUID(handle).startswith(entry):
                    return handle, f"by CUDA_VISIBLE_DEVICES entry {entry} (no torch)"
            raise RuntimeError(f"no GPU's UUID starts with {entry!r} (CUDA_VISIBLE_DEVICES={visible!r})")
        index = int(entry)
        how = f"by CUDA_VISIBLE_DEVICES entry {index} (no torch to match by UUID{order_note})"
    try:
        return pynvml.nvmlDeviceGetHandleByIndex(index), how
    except pynvml.NVMLError as error:
        raise RuntimeError(f"NVML has no device {index}: {error}") from error


def _nvml_handle(device_index: int, props: Any, errors: _Errors) -> tuple[Any, str]:
    """(NVML handle, how CUDA device ``device_index`` was matched to it). Inside an NVML session.

    A MIG instance's handle answers few device queries (clocks, power and energy are the whole GPU's), so
    the parent GPU's handle is used and the note says so.
    """
    found = _handle_from_props(props, errors) if props is not None else None
    handle, how = found if found is not None else _handle_from_visible_devices(device_index)
    if _query("nvmlDeviceIsMigDeviceHandle", handle, errors=errors):
        parent = _query("nvmlDeviceGetDeviceHandleFromMigDeviceHandle", handle, errors=errors)
        if parent is not None:
            handle, how = parent, how + " (a MIG instance: telemetry is of the whole GPU)"
    return handle, how


# --- environment fingerprint -------------------------------------------------------------------------


def _cuda_version_string(version: int | None) -> str | None:
    """12040 -> "12.4": NVML_CUDA_DRIVER_VERSION_MAJOR(v) = v / 1000 and minor = (v % 1000) / 10
    (NVML API Reference, "System Queries"; the same encoding as cudaDriverGetVersion)."""
    return None if version is None else f"{version // 1000}.{version % 1000 // 10}"


def _torch_cuda_driver_version() -> int | None:
    try:
        import torch

        return int(torch._C._cuda_getDriverVersion())
    except Exception:  # private torch API: a missing or changed one only loses this fallback
        return None


def environment(device_index: int = 0) -> dict[str, Any]:
    """The static fingerprint of CUDA device ``device_index`` that results files record and compare.

    Keys compared by ``roofline.perf.results.COMPARED_FIELDS``: gpu_name, compute_capability ("9.0"),
    sm_count, memory_total_bytes, driver_version, cuda_driver_version ("12.4"), power_limit_w (the enforced
    limit), max_sm_clock_mhz, max_mem_clock_mhz. Also recorded: gpu_uuid, applications_sm_clock_mhz,
    applications_mem_clock_mhz, cuda_runtime_version, gpu_key (the roofline database entry, None when the
    GPU is not in it), host, python, nvml_device (how the CUDA index was matched to NVML),
    nvml_unavailable_reason and nvml_errors. The caller adds ``backends``.

    Name, compute capability, SM count and memory come from torch (what CUDA sees: under MIG, the instance)
    when torch has CUDA, else from NVML (no SM count). NVML calls (NVML API Reference, "Device Queries" and
    "System Queries"): nvmlDeviceGetName, nvmlDeviceGetCudaComputeCapability, nvmlDeviceGetMemoryInfo,
    nvmlDeviceGetUUID, nvmlSystemGetDriverVersion, nvmlSystemGetCudaDriverVersion,
    nvmlDeviceGetEnforcedPowerLimit (mW), nvmlDeviceGetMaxClockInfo and nvmlDeviceGetApplicationsClock (MHz).
    A query the GPU does not support gives None. Raises RuntimeError when neither torch nor NVML sees a GPU.
    """
    props, torch_reason = _torch_device(device_index)
    env: dict[str, Any] = {
        "gpu_name": None,
        "compute_capability": None,
        "sm_count": None,
        "memory_total_bytes": None,
        "driver_version": None,
        "cuda_driver_version": None,
        "power_limit_w": None,
        "max_sm_clock_mhz": None,
        "max_mem_clock_mhz": None,
        "gpu_uuid": None,
        "applications_sm_clock_mhz": None,
        "applications_mem_clock_mhz": None,
        "cuda_runtime_version": None,
        "gpu_key": None,
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "nvml_device": None,
        "nvml_unavailable_reason": None,
        "nvml_errors": [],
    }
    if props is not None:
        import torch

        env.update(
            gpu_name=props.name,
            compute_capability=f"{props.major}.{props.minor}",
            sm_count=int(props.multi_processor_count),
            memory_total_bytes=int(props.total_memory),
            cuda_runtime_version=torch.version.cuda,
            cuda_driver_version=_cuda_version_string(_torch_cuda_driver_version()),
        )
        if getattr(props, "uuid", None) is not None:
            env["gpu_uuid"] = f"GPU-{props.uuid}"
    errors = _Errors()
    try:
        with _nvml_session():
            _fill_from_nvml(env, device_index, props, errors)
    except (_NvmlUnavailable, RuntimeError, *_nvml_errors()) as error:
        if props is None:
            raise RuntimeError(f"no GPU to describe: {torch_reason}; {error}") from error
        env["nvml_unavailable_reason"] = str(error)
    env["nvml_errors"] = list(errors.messages())
    if None not in (env["gpu_name"], env["compute_capability"], env["sm_count"], env["memory_total_bytes"]):
        try:
            gpu = match_device(
                env["gpu_name"], env["compute_capability"], env["sm_count"], env["memory_total_bytes"]
            )
            env["gpu_key"] = gpu.key
        except RooflineError:
            pass  # a GPU missing from the database is still measured; it just has no roofline entry
    return env


def _fill_from_nvml(env: dict[str, Any], device_index: int, props: Any, errors: _Errors) -> None:
    handle, env["nvml_device"] = _nvml_handle(device_index, props, errors)
    if props is None:
        capability = _query("nvmlDeviceGetCudaComputeCapability", handle, errors=errors)
        memory = _query("nvmlDeviceGetMemoryInfo", handle, errors=errors)
        env.update(
            gpu_name=_query("nvmlDeviceGetName", handle, errors=errors),
            compute_capability=None if capability is None else f"{capability[0]}.{capability[1]}",
            memory_total_bytes=None if memory is None else int(memory.total),
        )
    uuid = _query("nvmlDeviceGetUUID", handle, errors=errors)
    # NVML's reading wins where both exist: it is the tool this fingerprint is defined by.
    cuda_driver = _cuda_version_string(_query("nvmlSystemGetCudaDriverVersion", errors=errors))
    limit_mw = _query("nvmlDeviceGetEnforcedPowerLimit", handle, errors=errors)
    sm, mem = pynvml.NVML_CLOCK_SM, pynvml.NVML_CLOCK_MEM
    env.update(
        gpu_uuid=uuid or env["gpu_uuid"],
        driver_version=_query("nvmlSystemGetDriverVersion", errors=errors),
        cuda_driver_version=cuda_driver or env["cuda_driver_version"],
        power_limit_w=None if limit_mw is None else limit_mw / 1000.0,
        max_sm_clock_mhz=_query("nvmlDeviceGetMaxClockInfo", handle, sm, errors=errors),
        max_mem_clock_mhz=_query("nvmlDeviceGetMaxClockInfo", handle, mem, errors=errors),
        # Deprecated in NVML (to be removed with CUDA 14); recorded while drivers still answer.
        applications_sm_clock_mhz=_query("nvmlDeviceGetApplicationsClock", handle, sm, errors=_Errors()),
        applications_mem_clock_mhz=_query("nvmlDeviceGetApplicationsClock", handle, mem, errors=_Errors()),
    )


# --- the sampler -------------------------------------------------------------------------------------


class _SamplingThread:
    """Calls ``read()`` every ``interval_s`` on a daemon thread until ``stop()``; nothing is lost.

    A sample is taken at once on start, so even a window shorter than the interval has one. Exceptions from
    ``read`` are recorded (message kept once with a count) and sampling goes on. NVML calls go through
    ctypes, which releases the GIL, so the measuring thread is not held up while a query runs.
    """

    def __init__(self, read: Callable[[], Sample], interval_s: float) -> None:
        self._read = read
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._samples: list[Sample] = []
        self.errors = _Errors()
        self._thread = threading.Thread(target=self._run, name="gpu-telemetry", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                self._samples.append(self._read())
            except Exception as error:  # recorded for the summary, never raised into the void of a thread
                self.errors.add(f"{type(error).__name__}: {error}")
            if self._stop.wait(self._interval_s):
                return

    def stop(self, timeout_s: float) -> tuple[tuple[Sample, ...], tuple[str, ...]]:
        """Stop, join, and return (samples, error messages)."""
        self._stop.set()
        self._thread.join(timeout_s)
        errors = self.errors.messages()
        if self._thread.is_alive():
            errors += (f"the sampling thread did not stop within {timeout_s:g} s (an NVML call hung?)",)
        return tuple(self._samples), errors


def _read_sample(handle: Any, t0_s: float, names: dict[int, str | None], errors: _Errors) -> Sample:
    """One sample. NVML calls (NVML API Reference, "Device Queries"): nvmlDeviceGetClockInfo (MHz),
    nvmlDeviceGetCurrentClocksEventReasons (bitmask), nvmlDeviceGetUtilizationRates (%),
    nvmlDeviceGetPowerUsage (mW), nvmlDeviceGetTemperatureV (deg C), nvmlDeviceGetComputeRunningProcesses
    and nvmlDeviceGetGraphicsRunningProcesses; nvmlSystemGetProcessName ("System Queries")."""
    t_s = time.perf_counter() - t0_s
    utilization = _query("nvmlDeviceGetUtilizationRates", handle, errors=errors)
    power_mw = _query("nvmlDeviceGetPowerUsage", handle, errors=errors)
    return Sample(
        t_s=t_s,
        sm_clock_mhz=_query("nvmlDeviceGetClockInfo", handle, pynvml.NVML_CLOCK_SM, errors=errors),
        mem_clock_mhz=_query("nvmlDeviceGetClockInfo", handle, pynvml.NVML_CLOCK_MEM, errors=errors),
        reasons_mask=_query(
            ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"),
            handle,
            errors=errors,
        ),
        gpu_util_pct=None if utilization is None else utilization.gpu,
        mem_util_pct=None if utilization is None else utilization.memory,
        power_w=None if power_mw is None else power_mw / 1000.0,
        temperature_c=_query(
            ("nvmlDeviceGetTemperatureV", "nvmlDeviceGetTemperature"),
            handle,
            pynvml.NVML_TEMPERATURE_GPU,
            errors=errors,
        ),
        processes=_read_processes(handle, names, errors),
    )


def _read_processes(
    handle: Any, names: dict[int, str | None], errors: _Errors
) -> tuple[GpuProcess, ...] | None:
    """Compute and graphics processes, merged by pid; None when neither list could be read."""
    lists = {}
    for kind, functions in (
        ("compute", ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetComputeRunningProcesses_v2")),
        ("graphics", ("nvmlDeviceGetGraphicsRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses_v2")),
    ):
        listed = _query(functions, handle, errors=errors)
        if listed is not None:
            lists[kind] = listed
    if not lists:
        return None
    merged: dict[int, GpuProcess] = {}
    for kind, listed in lists.items():
        for info in listed:
            pid = int(info.pid)
            if pid not in names:  # one lookup per pid per run: the name does not change
                names[pid] = _query("nvmlSystemGetProcessName", pid, errors=_Errors()) or None
            memory = info.usedGpuMemory  # pynvml turns NVML_VALUE_NOT_AVAILABLE into None
            old = merged.get(pid)
            merged[pid] = GpuProcess(
                pid=pid,
                name=names[pid],
                used_memory_bytes=memory
                if old is None
                else max(_known([old.used_memory_bytes, memory]), default=None),
                kind=kind if old is None else f"{old.kind}+{kind}",
            )
    return tuple(merged[pid] for pid in sorted(merged))


class Sampler:
    """Context manager that samples GPU ``device_index`` every ``interval_s`` while a measurement runs.

    ::

        with Sampler(0) as sampler:
            run_windows()
        telemetry = sampler.telemetry(items=images)

    Energy is the difference of ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since the driver loaded; Volta
    and newer, else None) read on entry and exit; the counter updates every few tens of ms, so it suits runs
    of seconds, not single kernels. Without NVML (no driver, no pynvml) nothing is sampled and
    ``telemetry()`` is ``available=False`` with the reason, in ``warnings`` too: a missing check is
    reported, never passed off as a clean run. ``own_pids`` (default: this process) are the processes that
    may be on the GPU; ``strict_power`` makes ``sw_power_cap`` invalidating (see ``summarize``).
    """

    def __init__(
        self,
        device_index: int = 0,
        interval_s: float = 0.1,
        *,
        own_pids: Collection[int] | None = None,
        strict_power: bool = False,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.device_index = device_index
        self.interval_s = interval_s
        self.own_pids = frozenset(own_pids) if own_pids is not None else frozenset({os.getpid()})
        self.strict_power = strict_power
        self.nvml_device: str | None = None
        self._reason: str | None = None
        self._session: Any = None
        self._handle: Any = None
        self._errors = _Errors()
        self._thread: _SamplingThread | None = None
        self._t0_s: float | None = None
        self._duration_s: float | None = None
        self._energy_start_mj: int | None = None
        self._energy_end_mj: int | None = None
        self._samples: tuple[Sample, ...] = ()
        self._thread_errors: tuple[str, ...] = ()
        self._thread_query_errors = _Errors()

    def __enter__(self) -> Sampler:
        try:
            props, _ = _torch_device(self.device_index)
        except RuntimeError as error:
            props, self._reason = None, str(error)
        if self._reason is None:
            session = _nvml_session()
            try:
                session.__enter__()
            except _NvmlUnavailable as error:
                self._reason = str(error)
            else:
                self._session = session
                try:
                    self._handle, self.nvml_device = _nvml_handle(self.device_index, props, self._errors)
                except (RuntimeError, *_nvml_errors()) as error:
                    self._close_session()
                    self._reason = f"cannot find CUDA device {self.device_index} in NVML: {error}"
        if self._handle is not None:
            self._energy_start_mj = _query(
                "nvmlDeviceGetTotalEnergyConsumption", self._handle, errors=self._errors
            )
            names: dict[int, str | None] = {}
            thread_errors = _Errors()
            self._thread = _SamplingThread(
                lambda: _read_sample(self._handle, self._t0_s, names, thread_errors), self.interval_s
            )
            self._thread_query_errors = thread_errors
        self._t0_s = time.perf_counter()
        if self._thread is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._duration_s = time.perf_counter() - self._t0_s
        if self._thread is None:
            return
        # Energy first: it closes the window; stopping the thread takes up to one NVML call.
        self._energy_end_mj = _query("nvmlDeviceGetTotalEnergyConsumption", self._handle, errors=self._errors)
        self._samples, self._thread_errors = self._thread.stop(timeout_s=max(5.0, 10 * self.interval_s))
        self._close_session()

    def _close_session(self) -> None:
        if self._session is not None:
            self._session.__exit__(None, None, None)
            self._session = None

    @property
    def available(self) -> bool:
        return self._thread is not None

    @property
    def samples(self) -> tuple[Sample, ...]:
        return self._samples

    def telemetry(self, items: int | None = None) -> Telemetry:
        """The run's ``Telemetry``; ``items`` (images, queries processed) gives energy per item."""
        if self._duration_s is None:
            raise RuntimeError("telemetry() is available once the `with Sampler(...)` block has exited")
        if self._thread is None:
            return Telemetry.unavailable(self._reason or "NVML unavailable", self._duration_s, items)
        energy_j = None
        if self._energy_start_mj is not None and self._energy_end_mj is not None:
            energy_j = (self._energy_end_mj - self._energy_start_mj) / 1000.0
        errors = self._errors.messages() + self._thread_query_errors.messages() + self._thread_errors
        return summarize(
            self._samples,
            self.own_pids,
            energy_j,
            self._duration_s,
            items=items,
            strict_power=self.strict_power,
            interval_s=self.interval_s,
            sampler_errors=errors,
        )
