"""The benchmark manifest: ids, defaults, and one-line errors for bad content."""

import pytest

from kernels.manifest import DEFAULT_MANIFEST, ManifestError, load_manifest

pytestmark = pytest.mark.analytic


def test_committed_manifest_covers_the_issue_models_at_two_batches():
    specs = load_manifest(DEFAULT_MANIFEST)
    for model in ("resnet50", "efficientnet_b0", "mobilenetv3_large_100", "regnety_032"):
        torch_batches = {s.batch for s in specs.values() if s.model == model and s.backend == "torch"}
        assert len(torch_batches) >= 2, model
    spec = specs["resnet50-b64-tensorrt"]
    assert (spec.kind, spec.dtype, spec.resolution, spec.source) == ("model", "fp16", 224, "timm:resnet50")
    assert {"gemm-fp16", "gemm-fp8", "copy-d2d"} <= set(specs)


def _write(tmp_path, text):
    path = tmp_path / "m.toml"
    path.write_text(text)
    return path


def test_defaults_tolerance_and_frontend_names(tmp_path):
    path = _write(
        tmp_path,
        """
[defaults]
backends = ["torch"]
[[model]]
name = "timm:convnext_tiny"
batches = [8]
tolerance = 0.05
""",
    )
    (spec,) = load_manifest(path).values()
    assert spec.id == "convnext_tiny-b8-torch" and spec.source == "timm:convnext_tiny"
    assert spec.tolerance == 0.05 and spec.resolution == 224


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[model]]\nname = "nonet"\nbatches = [1]', "neither a zoo model"),
        ('[[model]]\nname = "resnet50"\nbatches = []', "batches must be a non-empty list"),
        ('[[model]]\nname = "resnet50"\nbatches = [0]', "batch must be a positive integer"),
        ('[[model]]\nname = "resnet50"\nbatches = [1]\nbackends = ["tvm"]', "unknown backend 'tvm'"),
        ('[[model]]\nname = "resnet50"\nbatches = [1]\ndtype = "fp12"', "unknown dtype 'fp12'"),
        ('[[model]]\nname = "resnet50"\nbatches = [1]\ntolerance = 3', "tolerance must be a fraction"),
        ('[[model]]\nname = "resnet50"\nbatches = [1, 1]', "listed twice"),
        ('[microbench]\ngemm_dtypes = ["fp64"]', "unknown gemm dtype 'fp64'"),
        ("[[model]\n", "not valid TOML"),
    ],
)
def test_bad_manifests_get_one_line_errors(tmp_path, text, message):
    with pytest.raises(ManifestError, match=message) as info:
        load_manifest(_write(tmp_path, text))
    assert "\n" not in str(info.value)


def test_missing_manifest(tmp_path):
    with pytest.raises(ManifestError, match="does not exist"):
        load_manifest(tmp_path / "none.toml")
