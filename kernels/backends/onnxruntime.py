"""ONNX Runtime backend: the shared FP16 ONNX on the CUDA or TensorRT execution provider, I/O on the GPU.

Execution providers (``provider_list``):

* ``ep="cuda"``: ``CUDAExecutionProvider`` with ``cudnn_conv_algo_search=
  EXHAUSTIVE`` (cuDNN benchmarks every convolution algorithm once, like
  ``torch.backends.cudnn.benchmark``) and ``enable_cuda_graph``;
* ``ep="tensorrt"``: ``TensorrtExecutionProvider`` (engine and timing caches on
  disk, ``trt_cuda_graph_enable``) then ``CUDAExecutionProvider`` for nodes
  TensorRT does not take. ``trt_fp16_enable`` defaults to the spec's dtype
  being fp16, the weakly typed FP16-flag build of TensorRT 10; with
  ``trt_fp16_enable=False`` ORT builds the network strongly typed from the FP16
  ONNX (ORT >= 1.22, microsoft/onnxruntime PR #24298), the only mode TensorRT 11
  has. Option names: ``tensorrt_execution_provider_info.cc`` and
  ``cuda_execution_provider_info.cc`` in microsoft/onnxruntime, and
  onnxruntime.ai/docs/execution-providers/TensorRT-ExecutionProvider.html /
  CUDA-ExecutionProvider.html.

Both providers get ``user_compute_stream`` = ``self.stream``, so ORT enqueues on
the stream the timing loop brackets with CUDA events.

No silent CPU fallback. ONNX Runtime falls back quietly in three ways: the
Python ``InferenceSession`` retries session creation with other providers when
one fails to load ("EP Error ... Falling back to [...] and retrying",
microsoft/onnxruntime issues #17394, #23372); ``run()`` does the same on an EP
failure unless ``disable_fallback()`` is called (PR #1960); and nodes no GPU
provider claims are assigned to the CPU EP. Here: ``check_no_cpu_fallback``
raises unless ``session.get_providers()`` starts with exactly the requested GPU
providers; ``session.disable_fallback()`` is called once the session exists;
and ``session.disable_cpu_ep_fallback=1`` (session config key
``kOrtSessionOptionsDisableCPUEPFallback``) makes session creation fail if any
node is assigned to the CPU EP (inference_session.cc: "This session contains
graph nodes that are assigned to the default CPU EP, but fallback to CPU EP has
been explicitly disabled by the user"; listing the CPU EP explicitly is then an
error, so it never is). The batch axis is fixed with
``add_free_dimension_override_by_name("batch", N)``: with a static shape ORT
folds the shape arithmetic it would otherwise place on the CPU, and the graph
matches the TensorRT backend's min = opt = max profile.

I/O binding: the input and output are torch CUDA tensors bound by pointer
(``IOBinding.bind_input/bind_output`` with ``device_type="cuda"``,
``buffer_ptr=tensor.data_ptr()``, onnxruntime.ai/docs/api/python/api_summary.html,
"Data on device"), and ``launch()`` is ``run_with_iobinding``. With CUDA graphs,
ORT itself captures: the first run is a regular run (allocations), the next one
captures and later ones replay, and the bound shapes and addresses must not
change afterwards (CUDA EP docs, "Using CUDA Graphs"); the buffers here are
allocated once in ``build`` and never rebound.

Host synchronization, honestly: ``Run`` ends with a ``cudaStreamSynchronize``
on the compute stream unless the run option
``disable_synchronize_execution_providers=1`` is set
(``onnxruntime_run_options_config_keys.h``), which it is here. CUDA graph replay
ignored that option and always synchronized (issue #20392) until PR #28686 for
the CUDA EP; the TensorRT EP replays under a lock and still synchronizes. So
depending on the ORT version and EP, ``launch()`` may block the host until the
inference finishes, and back-to-back launches then leave the GPU idle while
Python enqueues the next one: the timing loop's ``enqueue_bound`` flag reports
exactly that rather than this module guessing.

Only the pure functions (provider lists and options, the fallback check, the
availability reason, shape resolution) are unit-tested: onnxruntime-gpu cannot
be installed on the CPU machines (shared/DESIGN.md, "Facts about these
machines"), and a mocked session would test the mock. The build and run paths
are exercised only on GPU runners with onnxruntime-gpu.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kernels.backends.base import Backend, BackendUnavailable, ModelSpec, cuda_unavailable_reason

PROVIDERS = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
CPU_PROVIDER = "CPUExecutionProvider"
SUPPORTED_DTYPES = {"fp16": "float16", "fp32": "float32"}
ORT_ELEMENT_TYPES = {"fp16": "tensor(float16)", "fp32": "tensor(float)"}
# Run 1 is regular (ORT allocates), run 2 captures the CUDA graph, run 3 replays it: the CUDA and
# TensorRT EPs both set min_num_runs_before_cuda_graph_capture_ = 1 (their execution_provider.h).
WARMUP_RUNS = 3
DISABLE_CPU_EP_FALLBACK = "session.disable_cpu_ep_fallback"
DISABLE_SYNC_EPS = "disable_synchronize_execution_providers"
_POINTER_OPTIONS = ("user_compute_stream",)


def _flag(value: bool) -> str:
    return "1" if value else "0"


def tf32_allowed(dtype: str) -> bool:
    """Whether the CUDA EP may keep its default TF32 math: not for fp32, which means IEEE fp32 in the suite
    (``cuda_provider_options``); TF32 only touches float32 tensors, so it does not matter for fp16."""
    return dtype != "fp32"


def requested_providers(ep: str) -> list[str]:
    """Provider names for ``ep`` in priority order (the GPU providers the session must load)."""
    if ep == "cuda":
        return [PROVIDERS["cuda"]]
    if ep == "tensorrt":
        return [PROVIDERS["tensorrt"], PROVIDERS["cuda"]]
    raise ValueError(f"unknown execution provider {ep!r}: choose one of {', '.join(PROVIDERS)}")


def _stream_options(user_compute_stream: int | None) -> dict[str, str]:
    """Run ORT's kernels on our torch stream, so the timing loop's events bracket them."""
    if user_compute_stream is None:
        return {}
    return {"has_user_compute_stream": "1", "user_compute_stream": str(user_compute_stream)}


def cuda_provider_options(
    device_id: int, *, cuda_graph: bool, user_compute_stream: int | None = None, tf32: bool = True
) -> dict[str, str]:
    """``CUDAExecutionProvider`` options (all values strings, as ORT parses them).

    ``tf32=False`` sets ``use_tf32`` to "0": the CUDA EP runs float32 GEMMs and cuDNN convolutions as
    TF32 on Ampere and newer unless told not to ("By default, enable TF32 to speed up float GEMM/MatMul
    or cuDNN convolution of float matrices": ``bool use_tf32{true}`` in
    onnxruntime/core/providers/cuda/cuda_execution_provider_info.h; option name ``kUseTF32`` in
    cuda_execution_provider_info.cc). The suite's fp32 means IEEE fp32 on every backend (the torch
    backend clears torch's TF32 flags, the TensorRT backend ``BuilderFlag.TF32``); a TF32 "fp32" run
    measured against the FP32 peak could pass 100% utilization.
    """
    options = {
        "device_id": str(device_id),
        "cudnn_conv_algo_search": "EXHAUSTIVE",
        "enable_cuda_graph": _flag(cuda_graph),
    }
    if not tf32:
        options["use_tf32"] = "0"
    return {**options, **_stream_options(user_compute_stream)}


def tensorrt_provider_options(
    device_id: int,
    cache_dir: str | Path,
    *,
    cuda_graph: bool,
    fp16: bool,
    user_compute_stream: int | None = None,
    workspace_bytes: int | None = None,
    builder_optimization_level: int | None = None,
) -> dict[str, str]:
    """``TensorrtExecutionProvider`` options: engine and timing caches persisted in ``cache_dir``."""
    options = {
        "device_id": str(device_id),
        "trt_fp16_enable": _flag(fp16),
        "trt_engine_cache_enable": "1",
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": "1",
        "trt_timing_cache_path": str(cache_dir),
        "trt_cuda_graph_enable": _flag(cuda_graph),
    }
    if workspace_bytes is not None:
        options["trt_max_workspace_size"] = str(workspace_bytes)
    if builder_optimization_level is not None:
        options["trt_builder_optimization_level"] = str(builder_optimization_level)
    return {**options, **_stream_options(user_compute_stream)}


def provider_list(
    ep: str,
    cache_dir: str | Path,
    device_id: int = 0,
    *,
    cuda_graph: bool = True,
    trt_fp16_enable: bool = True,
    user_compute_stream: int | None = None,
    workspace_bytes: int | None = None,
    builder_optimization_level: int | None = None,
    tf32: bool = True,
) -> list[tuple[str, dict[str, str]]]:
    """``[(provider name, options)]`` for ``InferenceSession(providers=...)``, highest priority first.

    No CPU provider is listed: with ``session.disable_cpu_ep_fallback`` an explicit
    CPU EP is a configuration error, and ORT adds it implicitly anyway. Under
    ``ep="tensorrt"`` the CUDA EP never gets ``enable_cuda_graph``: ORT lets only
    one provider own the session's CUDA graph, and with ``trt_cuda_graph_enable``
    every node must then be on TensorRT. ``tf32=False`` (fp32 benchmarks) turns the CUDA EP's default
    TF32 off (``cuda_provider_options``); the TensorRT EP has no such option in the versions of the
    stacks, so an fp32 run on ``ep="tensorrt"`` may still use TF32 inside TensorRT's engine.
    """
    names = requested_providers(ep)
    cuda = cuda_provider_options(
        device_id, cuda_graph=cuda_graph and ep == "cuda", user_compute_stream=user_compute_stream, tf32=tf32
    )
    if ep == "cuda":
        return [(names[0], cuda)]
    trt = tensorrt_provider_options(
        device_id,
        cache_dir,
        cuda_graph=cuda_graph,
        fp16=trt_fp16_enable,
        user_compute_stream=user_compute_stream,
        workspace_bytes=workspace_bytes,
        builder_optimization_level=builder_optimization_level,
    )
    return [(names[0], trt), (names[1], cuda)]


def provider_unavailable_reason(ep: str, available: Sequence[str]) -> str | None:
    """Why ``ep`` cannot run with an ORT build offering ``available`` providers, or None."""
    missing = [name for name in requested_providers(ep) if name not in available]
    if not missing:
        return None
    found = ", ".join(available) or "none"
    return f"onnxruntime has no {missing[0]} (is onnxruntime-gpu installed? found: {found})"


def check_no_cpu_fallback(session_providers: Sequence[str], requested: Sequence[str]) -> None:
    """Raise BackendUnavailable unless the session runs exactly the ``requested`` providers first.

    ``InferenceSession`` drops a provider that fails to load (missing CUDA, cuDNN or
    TensorRT libraries) with only a logged warning and goes on with the rest, down
    to the CPU; the providers the session really registered are the only evidence.
    """
    got = list(session_providers[: len(requested)])
    if got == list(requested):
        return
    missing = next((name for name in requested if name not in session_providers), requested[0])
    raise BackendUnavailable(
        f"onnxruntime did not load {missing} (session providers: {', '.join(session_providers) or 'none'}): "
        "it would have run on a fallback provider; check the CUDA/cuDNN/TensorRT libraries in its log"
    )


def session_config_entries(strict_placement: bool) -> dict[str, str]:
    """Session config entries: with ``strict_placement`` no node may be assigned to the CPU EP."""
    return {DISABLE_CPU_EP_FALLBACK: "1"} if strict_placement else {}


def run_config_entries() -> dict[str, str]:
    """Run config entries: skip the end-of-run host sync where ORT honours it (see module docstring)."""
    return {DISABLE_SYNC_EPS: "1"}


def describable_provider_options(options: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """Provider options for ``describe()``: a stream pointer differs per process, so it is masked."""
    return {
        provider: {
            k: ("<torch stream>" if k in _POINTER_OPTIONS and str(v) != "0" else str(v))
            for k, v in opts.items()
        }
        for provider, opts in options.items()
    }


def concrete_shape(shape: Sequence[int | str | None], batch: int) -> tuple[int, ...]:
    """An ORT ``NodeArg.shape`` with a symbolic or unknown leading (batch) dimension replaced by ``batch``."""
    out = []
    for i, dim in enumerate(shape):
        if isinstance(dim, int) and dim > 0:
            out.append(dim)
        elif i == 0 and (dim is None or isinstance(dim, str)):
            out.append(batch)
        else:
            raise ValueError(f"shape {list(shape)} has a symbolic dimension {dim!r} besides the batch")
    return tuple(out)


def ep_cache_dir(cache_dir: str | Path, onnx_sha256: str, gpu_name: str, ort_version: str) -> Path:
    """Where the TensorRT EP keeps engines for one ONNX on one GPU and ORT version.

    ORT derives its engine file names from the model and its graph, and the
    TensorRT EP docs (``trt_engine_cache_enable``) ask users to clean old engines
    themselves when the model, ORT or TensorRT change, engines being specific to
    the GPU as well: a directory per ONNX hash, GPU and ORT version keeps a stale
    engine from being loaded. (The TensorRT version is not visible from Python
    without the tensorrt package; ORT's TensorRT EP records it in its own files.)
    """
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", gpu_name).strip("-").lower()
    return Path(cache_dir) / "onnxruntime-trt" / f"{onnx_sha256[:16]}-{gpu}-ort{ort_version}"


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(
        self,
        *,
        ep: str = "cuda",
        cuda_graph: bool = True,
        strict_placement: bool = True,
        trt_fp16_enable: bool | None = None,
        workspace_bytes: int | None = None,
        builder_optimization_level: int | None = None,
        log_severity_level: int = 3,
        device_id: int | None = None,
    ):
        """``ep``: "cuda" or "tensorrt". ``strict_placement``: set ``session.disable_cpu_ep_fallback``.

        ``trt_fp16_enable``: None means "the spec's dtype is fp16". ``workspace_bytes`` and
        ``builder_optimization_level`` go to the TensorRT EP only. ``log_severity_level``:
        ORT's session log level (0 verbose .. 4 fatal; 3 = errors only, so a provider
        that fails to load is still logged). ``device_id``: None for torch's current device.
        """
        requested_providers(ep)  # ValueError now rather than at build time
        self.ep = ep
        self.cuda_graph = cuda_graph
        self.strict_placement = strict_placement
        self.trt_fp16_enable = trt_fp16_enable
        self.workspace_bytes = workspace_bytes
        self.builder_optimization_level = builder_optimization_level
        self.log_severity_level = log_severity_level
        self.device_id = device_id
        self.spec: ModelSpec | None = None
        self.session = None
        self.binding = None
        self.run_options = None
        self.input = self.output = None
        self._info: dict[str, Any] = {}

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import onnxruntime as ort
        except ImportError:
            return "onnxruntime is not installed (pip install onnxruntime-gpu)"
        reason = provider_unavailable_reason("cuda", ort.get_available_providers())
        if reason:
            return reason
        return cuda_unavailable_reason()

    @classmethod
    def version(cls) -> str:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailable("onnxruntime is not installed (pip install onnxruntime-gpu)") from exc
        return ort.__version__

    def build(self, spec: ModelSpec, cache_dir: Path) -> None:
        import numpy as np
        import onnxruntime as ort
        import torch

        from kernels.onnx_export import BATCH_DIM_NAME, export_cached, onnx_sha256

        if spec.dtype not in SUPPORTED_DTYPES:
            raise ValueError(f"the onnxruntime backend runs {', '.join(SUPPORTED_DTYPES)}, not {spec.dtype}")
        reason = provider_unavailable_reason(self.ep, ort.get_available_providers())
        if reason:
            raise BackendUnavailable(reason)
        self.close()
        self.spec = spec
        cache_dir = Path(cache_dir)
        onnx_path = export_cached(spec.source, spec.resolution, cache_dir, dtype=spec.dtype)
        device_id = torch.cuda.current_device() if self.device_id is None else self.device_id
        self.stream = torch.cuda.Stream(device=device_id)

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = self.log_severity_level
        options.add_free_dimension_override_by_name(BATCH_DIM_NAME, spec.batch)
        for key, value in session_config_entries(self.strict_placement).items():
            options.add_session_config_entry(key, value)

        trt_dir = ep_cache_dir(
            cache_dir, onnx_sha256(onnx_path), torch.cuda.get_device_name(device_id), ort.__version__
        )
        if self.ep == "tensorrt":
            trt_dir.mkdir(parents=True, exist_ok=True)
        fp16 = spec.dtype == "fp16" if self.trt_fp16_enable is None else self.trt_fp16_enable
        providers = provider_list(
            self.ep,
            trt_dir,
            device_id,
            cuda_graph=self.cuda_graph,
            trt_fp16_enable=fp16,
            user_compute_stream=self.stream.cuda_stream,
            workspace_bytes=self.workspace_bytes,
            builder_optimization_level=self.builder_optimization_level,
            tf32=tf32_allowed(spec.dtype),
        )
        session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=providers)
        check_no_cpu_fallback(session.get_providers(), [name for name, _ in providers])
        session.disable_fallback()  # an EP failure in run() raises instead of rebuilding on the CPU
        self.session = session

        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise RuntimeError(
                f"expected one input and one output, the ONNX has {len(inputs)} and {len(outputs)}"
            )
        expected = ORT_ELEMENT_TYPES[spec.dtype]
        if inputs[0].type != expected or outputs[0].type != expected:
            raise RuntimeError(
                f"ONNX I/O types are {inputs[0].type} -> {outputs[0].type}, expected {expected}"
            )
        torch_dtype = getattr(torch, SUPPORTED_DTYPES[spec.dtype])
        np_dtype = getattr(np, SUPPORTED_DTYPES[spec.dtype])
        device = torch.device("cuda", device_id)
        self.input = torch.randn(spec.input_shape, device=device, dtype=torch_dtype)
        self.output = torch.empty(
            concrete_shape(outputs[0].shape, spec.batch), device=device, dtype=torch_dtype
        )

        binding = session.io_binding()
        for bind, arg, tensor in (
            (binding.bind_input, inputs[0], self.input),
            (binding.bind_output, outputs[0], self.output),
        ):
            bind(
                name=arg.name,
                device_type="cuda",
                device_id=device_id,
                element_type=np_dtype,
                shape=tuple(tensor.shape),
                buffer_ptr=tensor.data_ptr(),
            )
        self.binding = binding
        self.run_options = ort.RunOptions()
        for key, value in run_config_entries().items():
            self.run_options.add_run_config_entry(key, value)

        # randn ran on torch's current stream; ORT reads the input on self.stream.
        torch.cuda.synchronize(device)
        for _ in range(WARMUP_RUNS):
            self.launch()
        self.stream.synchronize()

        self._info = {
            "execution_provider": session.get_providers()[0],
            "providers": session.get_providers(),
            "provider_options": describable_provider_options(session.get_provider_options()),
            "session_config": session_config_entries(self.strict_placement),
            "run_config": run_config_entries(),
            "graph_optimization_level": "ORT_ENABLE_ALL",
            "free_dimension_overrides": {BATCH_DIM_NAME: spec.batch},
            "onnx_file": str(onnx_path),
            "trt_cache_dir": str(trt_dir) if self.ep == "tensorrt" else None,
        }

    def launch(self) -> None:
        self.session.run_with_iobinding(self.binding, self.run_options)

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "version": self.version(),
            "dtype": self.spec.dtype if self.spec else None,
            "ep": self.ep,
            "cuda_graph": self.cuda_graph,
            "cpu_ep_fallback_disabled": self.strict_placement,
            **self._info,
        }

    def close(self) -> None:
        self.binding = None
        self.run_options = None
        self.session = None
        self.input = self.output = None
