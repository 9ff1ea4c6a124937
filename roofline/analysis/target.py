"""Where and how a network runs: one value that every evaluation takes.

A prediction depends on the GPU, the datatype, the execution engine
(``roofline.analysis.engines``: its fusions, accumulator and launch costs),
which roof utilization refers
to (the datasheet, or the achievable roof that times kernels: DESIGN.md,
"Core definitions"), a measured calibration of that roof, and the wave
model's options (``roofline.analysis.waves``). ``Target`` holds them, checks
them once, and derives the two roofs, so ``evaluate`` and everything above it
take one argument instead of threading seven. Batch is not part of it: sweeps
vary it over one target.

Adding an option is a field here (with its check in ``__post_init__``) and
the CLI option that fills it (``roofline.cli.main.target_from_args``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property

from roofline.analysis.engines import DEFAULT_ENGINE, Engine, get_engine
from roofline.dtypes import DTYPE_BYTES
from roofline.errors import RooflineError
from roofline.hardware.calibration import Calibration, achievable_roof
from roofline.hardware.efficiency import KernelEfficiency, efficiency_for
from roofline.hardware.gpus import GPU, Roof, get_gpu
from roofline.hardware.tiles import Tile

PEAK_KINDS = ("datasheet", "achievable")


@dataclass(frozen=True)
class Target:
    """A GPU, a datatype and how to model it; invalid combinations fail on construction."""

    gpu: GPU
    dtype: str = "fp16"
    engine: Engine = dataclasses.field(default_factory=lambda: get_engine(DEFAULT_ENGINE))
    #: The roof that utilization and CMR refer to; kernels are always timed on the achievable one.
    peak: str = "datasheet"
    calibration: Calibration | None = None
    #: False: the flat roofline, no tile or wave quantization in compute time.
    waves: bool = True
    #: GEMM tile and blocks per SM for every conv/GEMM instead of the heuristic in ``waves``.
    tile: Tile | None = None
    blocks_per_sm: int | None = None
    #: Kernel-class efficiency terms; None: this GPU generation's defaults (``roofline.hardware.efficiency``).
    efficiency: KernelEfficiency | None = None

    def __post_init__(self) -> None:
        if self.peak not in PEAK_KINDS:
            raise RooflineError(f"unknown peak {self.peak!r}: choose datasheet or achievable")
        if isinstance(self.engine, str):
            object.__setattr__(self, "engine", get_engine(self.engine))
        self.gpu.peak(self.dtype)  # an unknown dtype, or one this GPU has no peak for
        if not self.waves and (self.tile is not None or self.blocks_per_sm is not None):
            raise RooflineError("a tile or blocks-per-SM override needs the wave model; drop --no-waves")
        if self.calibration is not None and self.calibration.gpu != self.gpu.key:
            raise RooflineError(
                f"the calibration was measured on {self.calibration.gpu}, not {self.gpu.key}; "
                "pass the calibration of this GPU"
            )
        if self.tile is not None and self.blocks_per_sm is None:
            self.tile.blocks_per_sm(self.gpu, self.dtype_bytes)  # fails if not one block fits an SM

    @classmethod
    def of(cls, gpu: str | GPU, dtype: str = "fp16", **options) -> Target:
        """A target from a GPU key or alias (``roofline gpus``) and the other fields by name."""
        return cls(get_gpu(gpu) if isinstance(gpu, str) else gpu, dtype, **options)

    def replace(self, **changes) -> Target:
        return dataclasses.replace(self, **changes)

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @cached_property
    def roof(self) -> Roof:
        """The achievable roof, which times every kernel (``roofline.hardware.calibration``)."""
        return achievable_roof(
            self.gpu, self.dtype, self.calibration, self.engine.accumulator, self.kernel_efficiency
        )

    @cached_property
    def kernel_efficiency(self) -> KernelEfficiency:
        """The efficiency terms kernels are timed with: the field, or the generation's defaults with the
        calibration's measured terms."""
        if self.efficiency is not None:
            return self.efficiency
        measured = self.calibration.kernel_efficiency if self.calibration is not None else {}
        return efficiency_for(self.gpu).replace(**measured)

    @cached_property
    def reference(self) -> Roof:
        """The roof utilization and CMR refer to: the datasheet, or the achievable roof."""
        return (
            self.roof
            if self.peak == "achievable"
            else self.gpu.datasheet_roof(self.dtype, self.engine.accumulator)
        )
