"""TensorRT backend (TensorRT 10 and 11): FP16 ONNX -> cached engine -> one CUDA graph replay per launch.

Build (``TensorRTBackend.build``):

1. export the model once to an FP16 ONNX with a dynamic batch axis
   (``kernels.onnx_export.export_cached``);
2. choose the precision path from the TensorRT version (``precision_path``):
   TensorRT 10 may build a weakly typed network with ``BuilderFlag.FP16``;
   TensorRT 11 removed that flag and every network is strongly typed, so FP16
   must come from the ONNX types ("Migrating from TensorRT 10.x to 11.x",
   docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/tensorrt-10x-to-11x-python-api-patterns.html;
   "STRONGLY_TYPED: Deprecated in TensorRT 11.0. Strongly typed mode is always
   enabled", docs.nvidia.com/deeplearning/tensorrt/11.0.0/_static/python-api/infer/Core/Builder.html);
3. parse with ``trt.OnnxParser``, add one optimization profile with
   min = opt = max = the benchmark's input shape (``profile_shapes``), cap the
   workspace pool, attach the timing cache persisted in ``cache_dir`` and
   ``build_serialized_network``; the plan is stored under a key that hashes
   everything that changes the engine (``engine_cache_key``) and a later build
   with the same key deserializes it instead ("Optimizing Builder Performance",
   "Timing Cache", docs.nvidia.com/deeplearning/tensorrt/10.16.1/performance/builder-performance.html);
4. deserialize, create an execution context, allocate every I/O tensor with
   torch on the device (dtype from ``engine.get_tensor_dtype``), bind it with
   ``set_tensor_address`` and run ``execute_async_v3`` once eagerly: the first
   enqueue after setting shapes does lazy work that must not land in a graph
   (the TensorRT "CUDA Graphs" recipe calls ``enqueueV3`` once before
   ``cudaStreamBeginCapture``, docs.nvidia.com/deeplearning/tensorrt/latest/performance/optimization.html);
5. capture one ``execute_async_v3`` into a ``torch.cuda.CUDAGraph`` on
   ``self.stream``; ``launch()`` replays it (``cuda_graph=False`` enqueues
   ``execute_async_v3`` per launch instead).

Python API used (TensorRT 10.x Python API reference and the 11.x migration
pages): ``Logger``, ``Builder.create_network / create_builder_config /
create_optimization_profile / build_serialized_network``, ``OnnxParser.
parse_from_file / num_errors / get_error``, ``IBuilderConfig.set_flag /
clear_flag / set_memory_pool_limit / builder_optimization_level /
profiling_verbosity / add_optimization_profile / create_timing_cache /
set_timing_cache / get_timing_cache``, ``ITimingCache.serialize``,
``Runtime.deserialize_cuda_engine``, ``ICudaEngine.num_io_tensors /
get_tensor_name / get_tensor_mode / get_tensor_dtype /
create_execution_context / create_engine_inspector``,
``IExecutionContext.set_input_shape / get_tensor_shape / set_tensor_address /
execute_async_v3 / profiler``, ``IProfiler.report_layer_time``,
``EngineInspector.get_engine_information(LayerInformationFormat.JSON)``.

Only the pure functions here (version dispatch, cache key, profile shapes,
dtype names, the layer-time accumulator) are unit-tested: no TensorRT can be
installed on the CPU machines (shared/DESIGN.md, "Facts about these machines"),
and a mock of TensorRT would test the mock. The build and run paths are
exercised only on GPU runners that have TensorRT.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

from kernels.backends.base import Backend, BackendUnavailable, ModelSpec, cuda_unavailable_reason
from roofline import files

MIN_TRT_MAJOR = 10  # the name-based tensor API (set_tensor_address, execute_async_v3) is 10.x's
DEFAULT_WORKSPACE_BYTES = 4 << 30
CACHE_SCHEMA = 1  # bump when the engine-building code changes in a way the flags do not capture
SUPPORTED_DTYPES = ("fp16", "fp32")

# trt.DataType member name -> torch dtype attribute name, for the I/O tensors a CNN engine has.
TRT_TO_TORCH_DTYPE = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "INT8": "int8",
    "UINT8": "uint8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
}


def trt_major(version: str) -> int:
    """The major version of a TensorRT version string: ``"10.13.0.35"`` -> 10, ``"11.0"`` -> 11."""
    match = re.match(r"\s*(\d+)(?:\.|\s*$)", version)
    if not match:
        raise ValueError(f"not a TensorRT version string: {version!r}")
    return int(match.group(1))


@dataclass(frozen=True)
class PrecisionPath:
    """How a TensorRT version gets the requested precision.

    ``strongly_typed``: every tensor keeps its ONNX type (FP16 ONNX -> FP16 kernels).
    ``fp16_flag``: weak typing with ``BuilderFlag.FP16``, TensorRT free to pick FP16
    or FP32 per layer (TensorRT 10 only). ``clear_tf32``: FP32 means IEEE FP32, not
    TF32 (TensorRT enables ``BuilderFlag.TF32`` by default), matching the torch
    backend. ``network_flags``: ``NetworkDefinitionCreationFlag`` member names to OR
    into ``create_network``.
    """

    trt_major: int
    dtype: str
    strongly_typed: bool
    fp16_flag: bool
    clear_tf32: bool
    network_flags: tuple[str, ...]

    @property
    def name(self) -> str:
        return (
            "strongly-typed" if self.strongly_typed else ("fp16-flag" if self.fp16_flag else "weakly-typed")
        )


def precision_path(
    trt_version: str, *, dtype: str = "fp16", onnx_fp16: bool = True, strongly_typed: bool | None = None
) -> PrecisionPath:
    """Decide network creation flags and builder flags for ``dtype`` on ``trt_version``.

    * TensorRT < 10: ValueError (this backend uses the 10.x name-based tensor API).
    * TensorRT 10: the builder-flag path by default (network flags 0: explicit batch
      is implied and ``EXPLICIT_BATCH`` is ignored in 10.x; ``BuilderFlag.FP16``
      for fp16), or ``strongly_typed=True`` for ``NetworkDefinitionCreationFlag.
      STRONGLY_TYPED`` so 10 and 11 run the same types.
    * TensorRT >= 11: strongly typed always (the flag is deprecated and ignored, so
      no network flag is passed) and ``BuilderFlag.FP16`` no longer exists;
      ``strongly_typed=False`` is a ValueError.

    ``onnx_fp16`` says whether the ONNX graph input is FLOAT16. A strongly typed
    fp16 build needs an FP16 ONNX (an FP32 one would silently run in FP32), and an
    fp32 build needs an FP32 ONNX: both mismatches are ValueErrors.
    """
    if dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"the tensorrt backend builds {', '.join(SUPPORTED_DTYPES)} engines, not {dtype!r}")
    major = trt_major(trt_version)
    if major < MIN_TRT_MAJOR:
        raise ValueError(f"TensorRT {trt_version} is not supported: need TensorRT >= {MIN_TRT_MAJOR}")
    if dtype == "fp32" and onnx_fp16:
        raise ValueError("an FP16 ONNX cannot give an fp32 engine: export the model in fp32")
    if major >= 11:
        if strongly_typed is False:
            raise ValueError(
                f"TensorRT {trt_version} has no weak typing (BuilderFlag.FP16 was removed in 11.0): "
                "leave strongly_typed unset"
            )
        typed = True
    else:
        typed = bool(strongly_typed)
    if dtype == "fp16" and typed and not onnx_fp16:
        raise ValueError(
            f"TensorRT {trt_version} builds this network strongly typed, so an FP32 ONNX would run in FP32: "
            "export it in FP16 (kernels.onnx_export)"
        )
    flags = ("STRONGLY_TYPED",) if typed and major < 11 else ()
    return PrecisionPath(
        trt_major=major,
        dtype=dtype,
        strongly_typed=typed,
        fp16_flag=dtype == "fp16" and not typed,
        clear_tf32=dtype == "fp32",
        network_flags=flags,
    )


class ProfileShapes(NamedTuple):
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


def profile_shapes(input_shape: Iterable[int]) -> ProfileShapes:
    """The optimization profile for one benchmark: min = opt = max = ``input_shape``.

    Each benchmark runs one batch size, so the engine only has to be valid for that
    shape. A range (min < max) lets TensorRT pick kernels that are valid across the
    range rather than the fastest for ``opt``, and sizes activation memory for
    ``max``; pinning all three gives the engine ``trtexec --shapes=input:NxCxHxW``
    builds for a dynamic-batch ONNX (trtexec sets min = opt = max from ``--shapes``,
    TensorRT docs, "trtexec"). One ONNX with a dynamic batch axis thus yields one
    engine per batch size, each keyed separately.
    """
    shape = tuple(int(d) for d in input_shape)
    if not shape or any(d <= 0 for d in shape):
        raise ValueError(f"profile shape must be positive dimensions, got {shape}")
    return ProfileShapes(shape, shape, shape)


def engine_flags(
    input_name: str,
    profile: ProfileShapes,
    path: PrecisionPath,
    workspace_bytes: int | None,
    builder_optimization_level: int | None,
    profiling_verbosity: str,
) -> dict[str, Any]:
    """Everything besides the ONNX, the TensorRT version and the GPU that changes the built engine."""
    return {
        "input_name": input_name,
        "profile": {"min": list(profile.min), "opt": list(profile.opt), "max": list(profile.max)},
        "precision": asdict(path) | {"network_flags": list(path.network_flags)},
        "workspace_bytes": workspace_bytes,
        "builder_optimization_level": builder_optimization_level,
        "profiling_verbosity": profiling_verbosity,
    }


def _compute_capability(cc: tuple[int, int] | str) -> str:
    return f"{cc[0]}.{cc[1]}" if isinstance(cc, tuple) else str(cc)


def engine_cache_payload(
    onnx_sha256: str,
    trt_version: str,
    gpu_name: str,
    compute_capability: tuple[int, int] | str,
    flags: Mapping[str, Any],
) -> dict[str, Any]:
    """The JSON-able record an engine is keyed by (also written next to the engine for provenance)."""
    return {
        "schema": CACHE_SCHEMA,
        "onnx_sha256": onnx_sha256,
        "tensorrt": trt_version,
        "gpu": gpu_name,
        "compute_capability": _compute_capability(compute_capability),
        "flags": dict(flags),
    }


def engine_cache_key(
    onnx_sha256: str,
    trt_version: str,
    gpu_name: str,
    compute_capability: tuple[int, int] | str,
    flags: Mapping[str, Any],
) -> str:
    """Hex SHA-256 of the canonical JSON of ``engine_cache_payload`` (sorted keys, no whitespace).

    A serialized engine is valid only for the TensorRT version and GPU model it was
    built on, and its kernels depend on the network and the builder settings, so all
    of them are in the key. Canonical JSON makes the key independent of dict order;
    a value JSON cannot represent (NaN, an object) is a TypeError/ValueError rather
    than a silently unstable key.
    """
    payload = engine_cache_payload(onnx_sha256, trt_version, gpu_name, compute_capability, flags)
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def engine_file_name(key: str) -> str:
    return f"{key}.engine"


def timing_cache_name(trt_version: str, gpu_name: str, compute_capability: tuple[int, int] | str) -> str:
    """One timing cache file per TensorRT version and GPU model, shared by all models on them.

    A timing cache is specific to the device and TensorRT version ("Timing Cache",
    TensorRT docs, "Optimizing Builder Performance"); one file per pair keeps a
    cache directory shared by several runners from thrashing one ``timing.cache``.
    """
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", gpu_name).strip("-").lower()
    return f"timing-trt{trt_version}-{gpu}-sm{_compute_capability(compute_capability).replace('.', '')}.cache"


def torch_dtype_name(trt_dtype_name: str) -> str:
    """The torch dtype attribute for a ``trt.DataType`` member name (``"HALF"`` -> ``"float16"``)."""
    try:
        return TRT_TO_TORCH_DTYPE[trt_dtype_name]
    except KeyError:
        raise ValueError(f"no torch dtype for TensorRT tensor type {trt_dtype_name}") from None


def parser_error_line(errors: Iterable[tuple[int, str]]) -> str:
    """ONNX parser errors ``(node index, description)`` as one line."""
    parts = [f"node {node}: {' '.join(desc.split())}" for node, desc in errors]
    return "; ".join(parts) or "no error reported by the parser"


class LayerTimeAccumulator:
    """Sums the per-layer times an ``IProfiler`` reports and gives the mean per layer in seconds."""

    def __init__(self) -> None:
        self.total_ms: dict[str, float] = {}
        self.count: dict[str, int] = {}

    def add(self, layer_name: str, ms: float) -> None:
        self.total_ms[layer_name] = self.total_ms.get(layer_name, 0.0) + float(ms)
        self.count[layer_name] = self.count.get(layer_name, 0) + 1

    def mean_s(self) -> dict[str, float]:
        return {name: total / self.count[name] / 1e3 for name, total in self.total_ms.items()}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _profiler_for(trt: Any, accumulator: LayerTimeAccumulator) -> Any:
    """A ``trt.IProfiler`` feeding ``accumulator`` (defined here so the module imports without trt)."""

    class _Profiler(trt.IProfiler):
        def __init__(self) -> None:
            trt.IProfiler.__init__(self)  # the TensorRT docs require the explicit base __init__

        def report_layer_time(self, layer_name: str, ms: float) -> None:
            accumulator.add(layer_name, ms)

    return _Profiler()


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(
        self,
        *,
        cuda_graph: bool = True,
        workspace_bytes: int | None = DEFAULT_WORKSPACE_BYTES,
        builder_optimization_level: int | None = None,
        profile_layers: bool = False,
        inspector: bool = False,
        strongly_typed: bool | None = None,
    ):
        """Options that shape the engine or its launch; all of them appear in ``describe()``.

        ``workspace_bytes``: the ``MemoryPoolType.WORKSPACE`` limit (None: TensorRT's
        default, the device's memory). A fixed default keeps the limit, and so the
        tactics TensorRT may choose, the same on every runner of a GPU model, MIG
        slice or not. ``builder_optimization_level``: 0-5, None for TensorRT's
        default (3). ``profile_layers``: build with ``ProfilingVerbosity.DETAILED``
        and keep a second, non-graph execution context for ``layer_times``.
        ``inspector``: write the engine inspector's JSON next to the engine.
        ``strongly_typed``: on TensorRT 10, build strongly typed instead of with
        ``BuilderFlag.FP16`` (see ``precision_path``).
        """
        self.cuda_graph = cuda_graph
        self.workspace_bytes = workspace_bytes
        self.builder_optimization_level = builder_optimization_level
        self.profile_layers = profile_layers
        self.inspector = inspector
        self.strongly_typed = strongly_typed
        self.spec: ModelSpec | None = None
        self.graph = None
        self.context = None
        self.engine = None
        self.runtime = None
        self.tensors: dict[str, Any] = {}
        self._profile_context = None
        self._profiler = None
        self._layer_times = LayerTimeAccumulator()
        self._info: dict[str, Any] = {}

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import tensorrt as trt
        except ImportError:
            return "tensorrt is not installed (pip install tensorrt)"
        except OSError as exc:  # the wheel is there but libnvinfer cannot load
            return f"tensorrt failed to load ({_one_line(exc)})"
        try:
            if trt_major(trt.__version__) < MIN_TRT_MAJOR:
                return f"tensorrt {trt.__version__} is too old: need >= {MIN_TRT_MAJOR}"
        except ValueError:
            return f"tensorrt reports an unreadable version {trt.__version__!r}"
        return cuda_unavailable_reason()

    @classmethod
    def version(cls) -> str:
        try:
            import tensorrt as trt
        except ImportError as exc:
            raise BackendUnavailable("tensorrt is not installed (pip install tensorrt)") from exc
        return trt.__version__

    def build(self, spec: ModelSpec, cache_dir: Path) -> None:
        import tensorrt as trt
        import torch

        from kernels.onnx_export import INPUT_NAME, export_cached, onnx_is_fp16, onnx_sha256

        if spec.dtype not in SUPPORTED_DTYPES:
            raise ValueError(
                f"the tensorrt backend builds {', '.join(SUPPORTED_DTYPES)} engines, not {spec.dtype}"
            )
        self.close()
        self.spec = spec
        cache_dir = Path(cache_dir)
        onnx_path = export_cached(spec.source, spec.resolution, cache_dir, dtype=spec.dtype)
        version = trt.__version__
        path = precision_path(
            version, dtype=spec.dtype, onnx_fp16=onnx_is_fp16(onnx_path), strongly_typed=self.strongly_typed
        )
        device = torch.cuda.current_device()
        props = torch.cuda.get_device_properties(device)
        cc = (props.major, props.minor)
        profile = profile_shapes(spec.input_shape)
        verbosity = "DETAILED" if self.profile_layers or self.inspector else "LAYER_NAMES_ONLY"
        flags = engine_flags(
            INPUT_NAME, profile, path, self.workspace_bytes, self.builder_optimization_level, verbosity
        )
        onnx_hash = onnx_sha256(onnx_path)
        key = engine_cache_key(onnx_hash, version, props.name, cc, flags)
        engine_dir = cache_dir / "tensorrt"
        engine_dir.mkdir(parents=True, exist_ok=True)
        engine_path = engine_dir / engine_file_name(key)

        logger = trt.Logger(trt.Logger.WARNING)
        loaded = engine_path.exists()
        if loaded:
            plan = engine_path.read_bytes()
        else:
            timing_path = engine_dir / timing_cache_name(version, props.name, cc)
            plan = self._build_plan(trt, logger, onnx_path, INPUT_NAME, path, profile, verbosity, timing_path)
            files.write_bytes(engine_path, plan)
            payload = engine_cache_payload(onnx_hash, version, props.name, cc, flags)
            files.write_text(engine_path.with_suffix(".json"), json.dumps(payload, indent=2, sort_keys=True))

        # The runtime must outlive the engine and the engine its contexts: keep all three.
        self.runtime = trt.Runtime(logger)
        self.engine = self.runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise RuntimeError(
                f"TensorRT could not deserialize {engine_path} (see the TensorRT log above): "
                "delete the file to rebuild it"
            )
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise RuntimeError("TensorRT could not create an execution context (out of device memory?)")
        self.tensors = self._bind(trt, torch, self.context, spec.input_shape)
        torch.cuda.synchronize()  # the input was filled on torch's current stream, TensorRT reads it on ours

        self.stream = torch.cuda.Stream()
        self._enqueue(self.context)  # eager run: TensorRT initializes lazily on the first enqueue
        self.stream.synchronize()
        if self.cuda_graph:
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph, stream=self.stream):
                self._enqueue(self.context)
            with torch.cuda.stream(self.stream):
                self.graph.replay()  # surface a bad capture here, not in the timing loop
            self.stream.synchronize()

        if self.profile_layers:
            # A second context keeps the profiler (TensorRT then times every layer) off the
            # context whose enqueue the graph captured.
            self._profile_context = self.engine.create_execution_context()
            self._bind(trt, torch, self._profile_context, spec.input_shape, tensors=self.tensors)
            # Keep a Python reference: the context only holds the profiler, it does not own it.
            self._profiler = _profiler_for(trt, self._layer_times)
            self._profile_context.profiler = self._profiler

        inspector_path = None
        if self.inspector:
            inspector = self.engine.create_engine_inspector()
            inspector.execution_context = self.context  # resolves shapes and formats in the report
            inspector_path = engine_path.with_suffix(".layers.json")
            files.write_text(
                inspector_path, inspector.get_engine_information(trt.LayerInformationFormat.JSON)
            )

        self._info = {
            "precision_path": path.name,
            "precision": asdict(path) | {"network_flags": list(path.network_flags)},
            "cache_key": key,
            "engine_file": str(engine_path),
            "engine_loaded_from_cache": loaded,
            "onnx_sha256": onnx_hash,
            "profile": flags["profile"],
            "profiling_verbosity": verbosity,
            "inspector_file": str(inspector_path) if inspector_path else None,
            "gpu": props.name,
        }

    def _build_plan(
        self,
        trt: Any,
        logger: Any,
        onnx_path: Path,
        input_name: str,
        path: PrecisionPath,
        profile: ProfileShapes,
        verbosity: str,
        timing_path: Path,
    ) -> bytes:
        builder = trt.Builder(logger)
        network_flags = 0
        for flag in path.network_flags:
            network_flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, flag))
        network = builder.create_network(network_flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = [
                (parser.get_error(i).node(), parser.get_error(i).desc()) for i in range(parser.num_errors)
            ]
            raise RuntimeError(f"TensorRT could not parse {onnx_path.name}: {parser_error_line(errors)}")
        inputs = [network.get_input(i).name for i in range(network.num_inputs)]
        if inputs != [input_name]:
            raise RuntimeError(f"expected one network input {input_name!r}, the ONNX has {inputs}")

        config = builder.create_builder_config()
        if path.fp16_flag:
            config.set_flag(trt.BuilderFlag.FP16)
        if path.clear_tf32:
            config.clear_flag(trt.BuilderFlag.TF32)
        if self.workspace_bytes is not None:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace_bytes)
        if self.builder_optimization_level is not None:
            config.builder_optimization_level = self.builder_optimization_level
        config.profiling_verbosity = getattr(trt.ProfilingVerbosity, verbosity)
        opt_profile = builder.create_optimization_profile()
        opt_profile.set_shape(input_name, profile.min, profile.opt, profile.max)
        config.add_optimization_profile(opt_profile)

        # Timing cache: reuse layer timings measured by earlier builds on this TensorRT + GPU.
        # set_timing_cache(..., ignore_mismatch=False) refuses a cache from another device or
        # version; start empty then rather than build with foreign timings.
        blob = timing_path.read_bytes() if timing_path.exists() else b""
        cache = config.create_timing_cache(blob)
        if not config.set_timing_cache(cache, False):
            cache = config.create_timing_cache(b"")
            config.set_timing_cache(cache, False)

        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise RuntimeError(
                f"TensorRT failed to build an engine from {onnx_path.name} (see the log above)"
            )
        files.write_bytes(timing_path, bytes(memoryview(config.get_timing_cache().serialize())))
        return bytes(memoryview(plan))

    def _bind(
        self,
        trt: Any,
        torch: Any,
        context: Any,
        input_shape: tuple[int, ...],
        tensors: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Set input shapes, allocate (or reuse) a device tensor per I/O tensor, bind its address."""
        engine = context.engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        is_input = {n: engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        for name in names:
            if is_input[name] and not context.set_input_shape(name, input_shape):
                raise RuntimeError(f"TensorRT rejected input shape {input_shape} for {name!r}")
        if tensors is None:
            tensors = {}
            for name in names:
                # Output shapes are known once every input shape is set.
                shape = tuple(context.get_tensor_shape(name))
                dtype = getattr(torch, torch_dtype_name(engine.get_tensor_dtype(name).name))
                tensor = torch.empty(shape, device="cuda", dtype=dtype)
                if is_input[name] and tensor.is_floating_point():
                    tensor.normal_()  # values do not change the kernels or their time; NaN-free input
                tensors[name] = tensor
        for name in names:
            if not context.set_tensor_address(name, tensors[name].data_ptr()):
                raise RuntimeError(f"TensorRT rejected the address of {name!r}")
        return tensors

    def _enqueue(self, context: Any) -> None:
        if not context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log)")

    def launch(self) -> None:
        # A CUDA graph replays on the current stream, which kernels.timing sets to self.stream.
        if self.graph is not None:
            self.graph.replay()
        else:
            self._enqueue(self.context)

    def layer_times(self, iterations: int = 20) -> dict[str, float]:
        """Mean time per layer in seconds over ``iterations`` profiled, synchronized inferences.

        Needs ``profile_layers=True`` at construction: the engine is then built with
        ``ProfilingVerbosity.DETAILED`` (layer names rather than indices) and a second
        execution context carries the ``IProfiler``. Profiling times every layer with
        events, runs without the CUDA graph and "may affect execution time negatively"
        (``IProfiler`` docs), so the sum exceeds a graph replay's time: use the result
        for the split between layers, not for throughput.
        """
        if self._profile_context is None:
            raise RuntimeError("per-layer times need TensorRTBackend(profile_layers=True) and build()")
        if iterations < 1:
            raise ValueError("iterations must be >= 1")
        self._layer_times.total_ms.clear()
        self._layer_times.count.clear()
        for _ in range(iterations):
            self._enqueue(self._profile_context)
            self.stream.synchronize()
        return self._layer_times.mean_s()

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "version": self.version(),
            "dtype": self.spec.dtype if self.spec else None,
            "cuda_graph": self.cuda_graph,
            "workspace_bytes": self.workspace_bytes,
            "builder_optimization_level": self.builder_optimization_level,
            "profile_layers": self.profile_layers,
            **self._info,
        }

    def close(self) -> None:
        # Release in dependency order: graph, contexts, engine, runtime, then the buffers.
        self.graph = None
        self._profile_context = None
        self._profiler = None
        self.context = None
        self.engine = None
        self.runtime = None
        self.tensors = {}
