"""The pure logic of the TensorRT and ONNX Runtime backends, and the FP16 ONNX export they share.

Tested here: TensorRT version dispatch (builder-flag path on 10.x, strongly typed
on 11.x, refusal below 10), the engine cache key, profile shapes, ONNX Runtime
provider lists and options, the no-CPU-fallback check, the availability reasons,
and the FP16 export on the CPU.

Not tested here: building or running an engine or a session. TensorRT and
onnxruntime-gpu cannot be installed on these machines (shared/DESIGN.md, "Facts
about these machines"), and a test against mocked TensorRT or ONNX Runtime
objects would only test the mock. Those paths run on GPU runners.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import subprocess
import sys

import pytest

from kernels.backends import onnxruntime as ortb
from kernels.backends import tensorrt as trtb
from kernels.backends.base import BackendUnavailable, require

pytestmark = pytest.mark.analytic

CUDA, TRT, CPU = "CUDAExecutionProvider", "TensorrtExecutionProvider", "CPUExecutionProvider"


# --- TensorRT version dispatch ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "major"),
    [
        ("10.13.0.35", 10),
        ("10.0.1", 10),
        ("11.0", 11),
        ("11.4.1.2", 11),
        ("9.3.0.1", 9),
        ("10", 10),
        (" 12.1 ", 12),
    ],
)
def test_trt_major(version, major):
    assert trtb.trt_major(version) == major


@pytest.mark.parametrize("version", ["", "abc", "v10.1", ".10", "10a.1"])
def test_trt_major_rejects_non_versions(version):
    with pytest.raises(ValueError, match="not a TensorRT version"):
        trtb.trt_major(version)


def test_trt10_uses_the_fp16_builder_flag():
    path = trtb.precision_path("10.13.0.35")
    assert (path.trt_major, path.strongly_typed, path.fp16_flag, path.clear_tf32) == (10, False, True, False)
    assert path.network_flags == ()  # explicit batch is implied in 10.x; EXPLICIT_BATCH is ignored
    assert path.name == "fp16-flag"


def test_trt10_flag_path_accepts_an_fp32_onnx():
    # Weak typing with BuilderFlag.FP16 lets TensorRT 10 pick FP16 kernels for an FP32 graph.
    assert trtb.precision_path("10.8", onnx_fp16=False).fp16_flag


def test_trt10_can_opt_into_strong_typing():
    path = trtb.precision_path("10.13.0.35", strongly_typed=True)
    assert path.strongly_typed and not path.fp16_flag
    assert path.network_flags == ("STRONGLY_TYPED",)
    assert path.name == "strongly-typed"
    with pytest.raises(ValueError, match="FP32 ONNX would run in FP32"):
        trtb.precision_path("10.13.0.35", strongly_typed=True, onnx_fp16=False)


@pytest.mark.parametrize("version", ["11.0", "11.4.1.2", "12.0.0"])
def test_trt11_and_later_are_strongly_typed_without_the_fp16_flag(version):
    path = trtb.precision_path(version)
    assert path.strongly_typed and not path.fp16_flag
    assert path.network_flags == ()  # strong typing is always on; the flag is deprecated and ignored


def test_trt11_refuses_an_fp32_onnx_for_fp16():
    with pytest.raises(ValueError, match="FP32 ONNX would run in FP32"):
        trtb.precision_path("11.0", onnx_fp16=False)


def test_trt11_refuses_weak_typing():
    with pytest.raises(ValueError, match="BuilderFlag.FP16 was removed"):
        trtb.precision_path("11.1", strongly_typed=False)


@pytest.mark.parametrize("version", ["9.3.0.1", "8.6.1", "7.2"])
def test_trt_before_10_is_unsupported(version):
    with pytest.raises(ValueError, match=r"need TensorRT >= 10"):
        trtb.precision_path(version)


def test_fp32_paths_clear_tf32_and_need_an_fp32_onnx():
    p10 = trtb.precision_path("10.13", dtype="fp32", onnx_fp16=False)
    assert (p10.strongly_typed, p10.fp16_flag, p10.clear_tf32) == (False, False, True)
    assert p10.name == "weakly-typed"
    p11 = trtb.precision_path("11.0", dtype="fp32", onnx_fp16=False)
    assert (p11.strongly_typed, p11.fp16_flag, p11.clear_tf32) == (True, False, True)
    with pytest.raises(ValueError, match="FP16 ONNX cannot give an fp32 engine"):
        trtb.precision_path("11.0", dtype="fp32", onnx_fp16=True)


def test_precision_path_rejects_other_dtypes_and_is_frozen():
    with pytest.raises(ValueError, match="not 'bf16'"):
        trtb.precision_path("10.13", dtype="bf16")
    path = trtb.precision_path("11.0")
    with pytest.raises(dataclasses.FrozenInstanceError):
        path.fp16_flag = True


# --- optimization profile ---------------------------------------------------------------------


def test_profile_is_pinned_to_the_benchmark_shape():
    profile = trtb.profile_shapes([8, 3, 224, 224])
    assert profile.min == profile.opt == profile.max == (8, 3, 224, 224)
    assert all(isinstance(d, int) for d in profile.opt)


@pytest.mark.parametrize("shape", [(), (0, 3, 224, 224), (8, 3, -1, 224)])
def test_profile_rejects_non_positive_shapes(shape):
    with pytest.raises(ValueError, match="positive"):
        trtb.profile_shapes(shape)


# --- engine cache key -------------------------------------------------------------------------


def _flags(**overrides):
    flags = trtb.engine_flags(
        "input",
        trtb.profile_shapes((8, 3, 224, 224)),
        trtb.precision_path("10.13.0.35"),
        4 << 30,
        None,
        "LAYER_NAMES_ONLY",
    )
    flags.update(overrides)
    return flags


BASE = ("ab" * 32, "10.13.0.35", "NVIDIA H100 80GB HBM3", (9, 0))


def test_cache_key_is_a_stable_sha256():
    key = trtb.engine_cache_key(*BASE, _flags())
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert key == trtb.engine_cache_key(*BASE, _flags())
    assert trtb.engine_file_name(key) == f"{key}.engine"


@pytest.mark.parametrize(
    "changed",
    [
        ("cd" * 32, *BASE[1:]),
        (BASE[0], "10.13.0.36", *BASE[2:]),
        (BASE[0], "11.0.0", *BASE[2:]),
        (*BASE[:2], "NVIDIA H200", BASE[3]),
        (*BASE[:3], (8, 9)),
    ],
)
def test_cache_key_changes_with_onnx_version_and_gpu(changed):
    assert trtb.engine_cache_key(*changed, _flags()) != trtb.engine_cache_key(*BASE, _flags())


def test_cache_key_changes_with_every_flag():
    base = trtb.engine_cache_key(*BASE, _flags())
    shape16, typed = trtb.profile_shapes((16, 3, 224, 224)), trtb.precision_path("10.13", strongly_typed=True)
    variants = [
        _flags(profile=trtb.engine_flags("input", shape16, typed, 0, None, "")["profile"]),
        _flags(precision=trtb.engine_flags("input", shape16, typed, 0, None, "")["precision"]),
        _flags(workspace_bytes=1 << 30),
        _flags(workspace_bytes=None),
        _flags(builder_optimization_level=5),
        _flags(profiling_verbosity="DETAILED"),
        _flags(input_name="x"),
        _flags(extra=True),
    ]
    keys = {trtb.engine_cache_key(*BASE, flags) for flags in variants}
    assert base not in keys and len(keys) == len(variants)


def test_cache_key_ignores_dict_order():
    flags = _flags()
    reordered = {k: flags[k] for k in reversed(flags)}
    reordered["profile"] = {k: flags["profile"][k] for k in ("max", "opt", "min")}
    assert list(reordered) != list(flags)
    assert trtb.engine_cache_key(*BASE, reordered) == trtb.engine_cache_key(*BASE, flags)


def test_cache_key_compute_capability_forms_agree_and_bad_values_raise():
    assert trtb.engine_cache_key(*BASE[:3], "9.0", _flags()) == trtb.engine_cache_key(*BASE, _flags())
    with pytest.raises(ValueError):
        trtb.engine_cache_key(*BASE, _flags(workspace_bytes=float("nan")))


def test_engine_flags_record_the_precision_path_as_json():
    flags = _flags()
    assert flags["precision"]["fp16_flag"] is True and flags["precision"]["network_flags"] == []
    assert flags["profile"] == {"min": [8, 3, 224, 224], "opt": [8, 3, 224, 224], "max": [8, 3, 224, 224]}
    json.dumps(flags)  # JSON-able: it is also written next to the engine


def test_timing_cache_names_differ_per_version_and_gpu():
    name = trtb.timing_cache_name("10.13.0.35", "NVIDIA H100 80GB HBM3", (9, 0))
    assert name == "timing-trt10.13.0.35-nvidia-h100-80gb-hbm3-sm90.cache"
    assert name != trtb.timing_cache_name("11.0", "NVIDIA H100 80GB HBM3", (9, 0))
    assert name != trtb.timing_cache_name("10.13.0.35", "NVIDIA H200", (9, 0))


# --- small TensorRT helpers -------------------------------------------------------------------


def test_torch_dtype_names():
    assert trtb.torch_dtype_name("HALF") == "float16"
    assert trtb.torch_dtype_name("FLOAT") == "float32"
    with pytest.raises(ValueError, match="FP8"):
        trtb.torch_dtype_name("FP8")


def test_torch_dtype_names_exist_in_torch():
    torch = pytest.importorskip("torch")
    assert all(isinstance(getattr(torch, name), torch.dtype) for name in trtb.TRT_TO_TORCH_DTYPE.values())


def test_parser_errors_become_one_line():
    line = trtb.parser_error_line([(3, "Unsupported op\nFoo"), (7, "bad  attr")])
    assert line == "node 3: Unsupported op Foo; node 7: bad attr"
    assert "\n" not in trtb.parser_error_line([])


def test_layer_time_accumulator_gives_mean_seconds():
    acc = trtb.LayerTimeAccumulator()
    for ms in (1.0, 3.0):
        acc.add("conv1", ms)
    acc.add("fc", 0.5)
    assert acc.mean_s() == pytest.approx({"conv1": 2e-3, "fc": 0.5e-3})


# --- ONNX Runtime provider lists --------------------------------------------------------------


def test_cuda_provider_list(tmp_path):
    providers = ortb.provider_list("cuda", tmp_path, device_id=1)
    assert providers == [
        (CUDA, {"device_id": "1", "cudnn_conv_algo_search": "EXHAUSTIVE", "enable_cuda_graph": "1"})
    ]
    assert ortb.provider_list("cuda", tmp_path, cuda_graph=False)[0][1]["enable_cuda_graph"] == "0"


def test_fp32_turns_the_cuda_eps_default_tf32_off(tmp_path):
    # The CUDA EP defaults to use_tf32=1 (cuda_execution_provider_info.h): fp32 would be TF32 on Ampere+.
    for ep in ortb.PROVIDERS:
        cuda = dict(ortb.provider_list(ep, tmp_path, tf32=False))[CUDA]
        assert cuda["use_tf32"] == "0", ep
        assert "use_tf32" not in dict(ortb.provider_list(ep, tmp_path))[CUDA]  # fp16: ORT's default stands
    assert ortb.cuda_provider_options(0, cuda_graph=True, tf32=False)["use_tf32"] == "0"
    assert not ortb.tf32_allowed("fp32") and ortb.tf32_allowed("fp16")  # what build() passes as tf32


def test_tensorrt_provider_list_falls_back_to_cuda_only(tmp_path):
    providers = ortb.provider_list("tensorrt", tmp_path, device_id=0, trt_fp16_enable=True)
    assert [name for name, _ in providers] == [TRT, CUDA]
    trt = providers[0][1]
    assert trt["trt_fp16_enable"] == "1"
    assert trt["trt_engine_cache_enable"] == trt["trt_timing_cache_enable"] == "1"
    assert trt["trt_engine_cache_path"] == trt["trt_timing_cache_path"] == str(tmp_path)
    assert trt["trt_cuda_graph_enable"] == "1"
    assert "trt_max_workspace_size" not in trt and "trt_builder_optimization_level" not in trt
    # Only one provider may own the session's CUDA graph.
    assert providers[1][1]["enable_cuda_graph"] == "0"


def test_provider_options_are_strings_and_carry_the_stream(tmp_path):
    providers = ortb.provider_list(
        "tensorrt", tmp_path, cuda_graph=False, trt_fp16_enable=False, user_compute_stream=140000000,
        workspace_bytes=1 << 30, builder_optimization_level=4,
    )  # fmt: skip
    for _, options in providers:
        assert all(isinstance(v, str) for v in options.values())
        assert options["has_user_compute_stream"] == "1" and options["user_compute_stream"] == "140000000"
    trt = providers[0][1]
    assert (trt["trt_fp16_enable"], trt["trt_cuda_graph_enable"]) == ("0", "0")
    assert (trt["trt_max_workspace_size"], trt["trt_builder_optimization_level"]) == (str(1 << 30), "4")


def test_no_cpu_provider_is_ever_requested(tmp_path):
    for ep in ortb.PROVIDERS:
        assert CPU not in [name for name, _ in ortb.provider_list(ep, tmp_path)]


def test_unknown_execution_provider(tmp_path):
    with pytest.raises(ValueError, match="unknown execution provider 'rocm'"):
        ortb.provider_list("rocm", tmp_path)
    with pytest.raises(ValueError, match="unknown execution provider"):
        ortb.OnnxRuntimeBackend(ep="rocm")


def test_session_and_run_config_entries():
    assert ortb.session_config_entries(True) == {"session.disable_cpu_ep_fallback": "1"}
    assert ortb.session_config_entries(False) == {}
    assert ortb.run_config_entries() == {"disable_synchronize_execution_providers": "1"}


def test_describable_provider_options_mask_the_stream_pointer():
    shown = ortb.describable_provider_options({CUDA: {"user_compute_stream": "1234", "device_id": 0}})
    assert shown == {CUDA: {"user_compute_stream": "<torch stream>", "device_id": "0"}}
    assert (
        ortb.describable_provider_options({CUDA: {"user_compute_stream": "0"}})[CUDA]["user_compute_stream"]
        == "0"
    )


@pytest.mark.parametrize(
    ("shape", "expected"), [(["batch", 1000], (8, 1000)), ([None, 1000], (8, 1000)), ([8, 1000], (8, 1000))]
)
def test_concrete_shape(shape, expected):
    assert ortb.concrete_shape(shape, 8) == expected


def test_concrete_shape_rejects_other_symbols():
    with pytest.raises(ValueError, match="symbolic dimension 'h'"):
        ortb.concrete_shape(["batch", "h"], 8)


def test_ep_cache_dir_is_keyed_by_onnx_gpu_and_version(tmp_path):
    a = ortb.ep_cache_dir(tmp_path, "ab" * 32, "NVIDIA H100 80GB HBM3", "1.22.0")
    assert a.parent == tmp_path / "onnxruntime-trt"
    assert a.name == "abababababababab-nvidia-h100-80gb-hbm3-ort1.22.0"
    others = [
        ortb.ep_cache_dir(tmp_path, "cd" * 32, "NVIDIA H100 80GB HBM3", "1.22.0"),
        ortb.ep_cache_dir(tmp_path, "ab" * 32, "NVIDIA H200", "1.22.0"),
        ortb.ep_cache_dir(tmp_path, "ab" * 32, "NVIDIA H100 80GB HBM3", "1.23.0"),
    ]
    assert a not in others and len(set(others)) == 3


# --- availability and the no-silent-fallback check ---------------------------------------------


def test_provider_unavailable_reason():
    assert ortb.provider_unavailable_reason("cuda", [CPU]) == (
        "onnxruntime has no CUDAExecutionProvider (is onnxruntime-gpu installed? found: CPUExecutionProvider)"
    )
    assert TRT in ortb.provider_unavailable_reason("tensorrt", [CUDA, CPU])
    assert ortb.provider_unavailable_reason("tensorrt", [TRT, CUDA, CPU]) is None
    assert "found: none" in ortb.provider_unavailable_reason("cuda", [])


def test_fallback_check_accepts_the_requested_providers_first():
    ortb.check_no_cpu_fallback([CUDA, CPU], [CUDA])
    ortb.check_no_cpu_fallback([TRT, CUDA, CPU], [TRT, CUDA])


@pytest.mark.parametrize(
    ("session", "requested", "missing"),
    [
        ([CPU], [CUDA], CUDA),  # CUDA libraries failed to load: ORT went on with the CPU
        ([CUDA, CPU], [TRT, CUDA], TRT),  # TensorRT failed to load: ORT dropped it
        ([], [CUDA], CUDA),
    ],
)
def test_fallback_check_refuses_a_silent_fallback(session, requested, missing):
    with pytest.raises(BackendUnavailable, match=f"did not load {missing}"):
        ortb.check_no_cpu_fallback(session, requested)


def test_fallback_check_refuses_a_changed_priority():
    with pytest.raises(BackendUnavailable):
        ortb.check_no_cpu_fallback([CUDA, TRT, CPU], [TRT, CUDA])


@pytest.mark.parametrize(
    ("name", "cls"), [("tensorrt", trtb.TensorRTBackend), ("onnxruntime", ortb.OnnxRuntimeBackend)]
)
def test_unavailable_reason_is_one_line_and_require_names_it(name, cls):
    reason = cls.unavailable_reason()
    if reason is None:
        pytest.skip(f"{name} can run on this machine")
    assert isinstance(reason, str) and reason and "\n" not in reason
    with pytest.raises(BackendUnavailable, match=re.escape(reason)):
        require(name)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed here")
def test_reason_without_tensorrt():
    assert trtb.TensorRTBackend.unavailable_reason() == "tensorrt is not installed (pip install tensorrt)"
    with pytest.raises(BackendUnavailable, match="tensorrt is not installed"):
        trtb.TensorRTBackend.version()


@pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is not None, reason="onnxruntime is installed here"
)
def test_reason_without_onnxruntime():
    assert (
        ortb.OnnxRuntimeBackend.unavailable_reason()
        == "onnxruntime is not installed (pip install onnxruntime-gpu)"
    )


def test_importing_the_backends_needs_no_runtime():
    code = (
        "import sys, kernels.backends.tensorrt, kernels.backends.onnxruntime, kernels.onnx_export\n"
        "loaded = {'tensorrt', 'onnxruntime', 'torch', 'onnx'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- FP16 ONNX export on the CPU --------------------------------------------------------------


def _tiny_net(torch):
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 10),
    ).eval()  # fmt: skip


def _io(model_path):
    import onnx

    graph = onnx.load(str(model_path)).graph
    return {
        v.name: (
            onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type),
            [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim],
        )
        for v in [*graph.input, *graph.output]
    }


@pytest.mark.onnx
def test_fp16_export_on_cpu(tmp_path):
    torch = pytest.importorskip("torch")
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from kernels.onnx_export import export_onnx, onnx_is_fp16, onnx_sha256

    model = _tiny_net(torch)
    path = export_onnx(model, (4, 3, 32, 32), tmp_path / "tiny.onnx")
    assert path == tmp_path / "tiny.onnx" and path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.onnx"]  # no temp file, no external data
    onnx.checker.check_model(str(path), full_check=True)
    assert _io(path) == {"input": ("FLOAT16", ["batch", 3, 32, 32]), "output": ("FLOAT16", ["batch", 10])}
    assert min(op.version for op in onnx.load(str(path)).opset_import if op.domain in ("", "ai.onnx")) >= 17
    assert onnx_is_fp16(path)
    assert next(model.parameters()).dtype == torch.float32  # the caller's model is not cast

    digest = onnx_sha256(path)
    assert re.fullmatch(r"[0-9a-f]{64}", digest) and digest == onnx_sha256(path)
    again = export_onnx(model, (4, 3, 32, 32), tmp_path / "again.onnx")
    assert onnx_sha256(again) == digest  # same weights, same bytes


@pytest.mark.onnx
def test_fp32_and_static_exports(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from kernels.onnx_export import export_onnx, onnx_is_fp16

    fp32 = export_onnx(_tiny_net(torch), (1, 3, 16, 16), tmp_path / "fp32.onnx", dtype="fp32")
    assert not onnx_is_fp16(fp32)
    assert _io(fp32)["input"] == ("FLOAT", ["batch", 3, 16, 16])
    static = export_onnx(_tiny_net(torch), (2, 3, 16, 16), tmp_path / "static.onnx", dynamic_batch=False)
    assert _io(static)["input"] == ("FLOAT16", [2, 3, 16, 16])
    with pytest.raises(ValueError, match="export dtype"):
        export_onnx(_tiny_net(torch), (1, 3, 16, 16), tmp_path / "x.onnx", dtype="int8")
    with pytest.raises(ValueError, match="opset 16"):
        export_onnx(_tiny_net(torch), (1, 3, 16, 16), tmp_path / "x.onnx", opset=16)


@pytest.mark.onnx
@pytest.mark.torch
def test_export_cached_resnet18(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("timm")
    pytest.importorskip("onnxscript")
    from kernels.onnx_export import export_cached, onnx_is_fp16, onnx_sha256

    rng = torch.random.get_rng_state()
    path = export_cached("timm:resnet18", 64, tmp_path)
    assert torch.equal(rng, torch.random.get_rng_state())  # weights drawn under fork_rng
    assert path == tmp_path / "onnx" / "timm-resnet18-r64-fp16.onnx"
    assert onnx_is_fp16(path)
    assert _io(path)["input"] == ("FLOAT16", ["batch", 3, 64, 64])
    digest, mtime = onnx_sha256(path), path.stat().st_mtime_ns
    assert export_cached("timm:resnet18", 64, tmp_path) == path
    assert path.stat().st_mtime_ns == mtime and onnx_sha256(path) == digest  # reused, not re-exported
    fresh = export_cached("timm:resnet18", 64, tmp_path / "other")
    assert onnx_sha256(fresh) == digest  # a fixed seed gives the same weights and bytes


def test_predictions_use_the_engine_of_the_backend_that_measured():
    from dataclasses import replace

    from kernels.benchmark import RunOptions, engine_of

    graphs = RunOptions()
    assert [engine_of(b, graphs).key for b in ("tensorrt", "onnxruntime", "torch")] == [
        "tensorrt", "onnxruntime", "torch",
    ]  # fmt: skip
    assert engine_of("torch", replace(graphs, torch_compile=True)).key == "torch-compile"
    # A CUDA graph replays the launches: no host time per kernel; without one the engine's own.
    assert engine_of("torch", graphs).host_issue_s == 0.0
    assert engine_of("torch", replace(graphs, cuda_graph=False)).host_issue_s > 0
