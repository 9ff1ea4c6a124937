"""The CUDA stack per runner generation (kernels/stacks.py, constraints/): the choice from nvidia-smi's GPU
and driver, the one-line failure when they do not fit, and what each constraints file pins."""

import subprocess

import pytest

from kernels import stacks
from kernels.backends.base import arch_mismatch
from kernels.stacks import Gpu, StackError, choose, load_stacks, parse_nvidia_smi, split_stack_option

pytestmark = pytest.mark.analytic
STACKS = load_stacks()
V100 = Gpu("Tesla V100-SXM2-16GB", (7, 0), "535.104.05")
A100_R535 = Gpu("NVIDIA A100-SXM4-80GB", (8, 0), "535.183.01")
H100_R580 = Gpu("NVIDIA H100 80GB HBM3", (9, 0), "580.65.06")
T4_R470 = Gpu("Tesla T4", (7, 5), "470.82.01")
P100 = Gpu("Tesla P100-PCIE-16GB", (6, 0), "535.104.05")


@pytest.mark.parametrize(
    ("gpu", "stack"),
    [(V100, "volta-cu12"), (A100_R535, "ampere-hopper-cu12"), (H100_R580, "cu13"),
     (Gpu("NVIDIA H100 PCIe", (9, 0), "570.86.15"), "ampere-hopper-cu12"),
     (Gpu("Tesla V100-PCIE-32GB", (7, 0), "580.65.06"), "volta-cu12")],  # R580 does not bring back sm_70
)  # fmt: skip
def test_the_first_stack_that_fits_is_chosen(gpu, stack):
    chosen, why = choose(STACKS, [gpu])
    assert chosen.name == stack and gpu.name in why


def test_a_requested_stack_that_fits_is_kept():
    assert choose(STACKS, [A100_R535], "volta-cu12") == (STACKS["volta-cu12"], "requested")


@pytest.mark.parametrize(
    ("gpus", "requested", "message"),
    [
        ([V100], "cu13",
         "stack cu13 does not fit this runner: Tesla V100-SXM2-16GB (compute capability 7.0, "
         "driver 535.104.05): stack cu13 supports compute capability 7.5 to 12.0; use --stack volta-cu12"),
        ([A100_R535], "cu13",
         "stack cu13 (CUDA 13) needs driver >= 580.65.06; use --stack ampere-hopper-cu12"),
        ([T4_R470], None,
         "no stack fits this runner: Tesla T4 (compute capability 7.5, driver 470.82.01): "
         "stack cu13 (CUDA 13) needs driver >= 580.65.06"),
        ([P100], None, "stack volta-cu12 supports compute capability 7.0 to 9.0"),
        ([V100, H100_R580], "cu13", "Tesla V100"),  # every GPU of the runner must fit
        ([V100], "nonesuch", "unknown stack 'nonesuch': choose one of cu13, ampere-hopper-cu12, volta-cu12"),
        ([T4_R470], "volta-cu12", "needs driver >= 525.60.13; no stack fits: update the driver"),
    ],
)  # fmt: skip
def test_a_runner_that_does_not_fit_fails_in_one_line(gpus, requested, message):
    with pytest.raises(StackError) as info:
        choose(STACKS, gpus, requested)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_nvidia_smi_lines():
    text = "Tesla V100-SXM2-16GB, 7.0, 535.104.05\nNVIDIA A100-SXM4-80GB, 8.0, 535.104.05\n"
    assert parse_nvidia_smi(text) == [V100, Gpu("NVIDIA A100-SXM4-80GB", (8, 0), "535.104.05")]
    assert (
        parse_nvidia_smi("NVIDIA GeForce RTX 4090, Ti, 8.9, 550.54.14")[0].name
        == "NVIDIA GeForce RTX 4090, Ti"
    )
    for bad, says in [
        ("", "lists no GPU"),
        ("just a name", "cannot read"),
        ("V100, [N/A], 535.1", "not a dotted"),
    ]:
        with pytest.raises(StackError, match=says):
            parse_nvidia_smi(bad)


def test_query_gpus_reports_a_failing_nvidia_smi_in_one_line():
    def fails(cmd, **kw):
        return subprocess.CompletedProcess(
            cmd, 9, "", "NVIDIA-SMI has failed because it couldn't communicate\n"
        )

    with pytest.raises(StackError, match=r"nvidia-smi failed \(exit 9\): NVIDIA-SMI has failed"):
        stacks.query_gpus(run=fails)

    def ok(cmd, **kw):
        assert cmd == list(stacks.NVIDIA_SMI_QUERY)
        return subprocess.CompletedProcess(cmd, 0, "Tesla V100-SXM2-16GB, 7.0, 535.104.05\n", "")

    assert stacks.query_gpus(run=ok) == [V100]


def test_stack_option_and_environment():
    assert split_stack_option(["--stack", "cu13", "-k", "resnet"], env={}) == ("cu13", ["-k", "resnet"])
    assert split_stack_option(["--stack=volta-cu12"], env={}) == ("volta-cu12", [])
    assert split_stack_option(["-x"], env={"ROOFLINE_PERF_STACK": "cu13"}) == ("cu13", ["-x"])
    assert (
        split_stack_option(["--stack", "volta-cu12"], env={"ROOFLINE_PERF_STACK": "cu13"})[0] == "volta-cu12"
    )
    assert split_stack_option([], env={}) == (None, [])
    with pytest.raises(StackError, match="--stack needs a name"):
        split_stack_option(["--stack"], env={})


# --- What the constraints files pin ---------------------------------------------------------------------


@pytest.mark.parametrize("name", list(STACKS))
def test_every_stack_pins_its_whole_gpu_stack_exactly(name):
    stack = STACKS[name]
    pins = stack.pins()
    wanted = {"torch", "torchvision", "onnxruntime-gpu", "tensorrt", stack.tensorrt,
              f"{stack.tensorrt}-libs", f"{stack.tensorrt}-bindings"}  # fmt: skip
    assert wanted <= pins.keys(), wanted - pins.keys()
    trt = {
        pins[p] for p in ("tensorrt", stack.tensorrt, f"{stack.tensorrt}-libs", f"{stack.tensorrt}-bindings")
    }
    assert len(trt) == 1, f"{name}: the TensorRT packages pin different versions {trt}"


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("+")[0].split(".")[:3])


def test_the_volta_stack_has_no_cuda_13_package_and_keeps_sm70():
    stack = STACKS["volta-cu12"]
    pins = stack.pins()
    text = stack.constraints.read_text()
    requirements = [line.split("#")[0] for line in text.splitlines() if line.split("#")[0].strip()]
    assert not any("cu13" in r for r in requirements) and stack.tensorrt == "tensorrt-cu12"
    assert _release(pins["tensorrt"]) < (10, 5)  # TensorRT dropped Volta in 10.5
    assert _release(pins["torch"]) < (2, 8)  # the last torch whose PyPI wheel is CUDA 12.6 (sm_50 to sm_90)
    assert _release(pins["onnxruntime-gpu"]) < (1, 27)  # PyPI's onnxruntime-gpu is CUDA 13 from 1.27.0
    assert stack.min_compute_capability <= (7, 0) <= stack.max_compute_capability


def test_cuda_13_only_in_the_cu13_stack():
    for name, stack in STACKS.items():
        pins = stack.pins()
        cuda13 = _release(pins["torch"]) >= (2, 11) or _release(pins["onnxruntime-gpu"]) >= (1, 27)
        assert cuda13 == (name == "cu13"), name
        assert (stack.tensorrt == "tensorrt-cu13") == (name == "cu13"), name


def test_a_bad_stack_file_is_one_line(tmp_path):
    (tmp_path / "stacks.toml").write_text('[stack.x]\nconstraints = "x.txt"\n')
    with pytest.raises(StackError, match="is not a valid stack list") as info:
        load_stacks(tmp_path / "stacks.toml")
    assert "\n" not in str(info.value)


# --- The torch build against the GPU (kernels.backends.base.arch_mismatch) -------------------------------

TORCH_271 = "sm_50 sm_60 sm_70 sm_75 sm_80 sm_86 sm_90".split()  # torch 2.7.1's PyPI wheel (CUDA 12.6)
CUDA13 = "sm_75 sm_80 sm_86 sm_90 sm_100 sm_120 compute_120".split()


@pytest.mark.parametrize(
    ("capability", "arch_list", "runs"),
    [((7, 0), TORCH_271, True), ((8, 9), TORCH_271, True),  # sm_86 SASS runs on 8.9
     ((7, 0), CUDA13, False), ((6, 1), TORCH_271, True), ((12, 1), CUDA13, True),
     ((10, 3), CUDA13, True), ((5, 2), CUDA13, False), ((9, 0), [], True)],
)  # fmt: skip
def test_torch_build_against_the_gpu(capability, arch_list, runs):
    reason = arch_mismatch(capability, arch_list, "2.14.1")
    assert (reason is None) == runs
    if not runs:
        assert f"compute capability {capability[0]}.{capability[1]}" in reason and "GPU stacks" in reason
