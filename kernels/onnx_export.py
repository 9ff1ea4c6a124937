"""Export a torch model to an FP16 ONNX graph that the TensorRT and ONNX Runtime backends share.

Precision comes from the ONNX types, not from a builder flag: TensorRT 11 removed
``BuilderFlag.FP16`` and builds every network strongly typed, so a layer runs
in FP16 only if its tensors are FP16 in the graph ("Migrating from TensorRT
10.x to 11.x", docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/
tensorrt-10x-to-11x-python-api-patterns.html). The exporter therefore casts the
model and its example input to FP16 (``model.half()``), so every initializer,
graph input and graph output is ``FLOAT16``.

Exporter: ``torch.onnx.export(..., dynamo=True)``, torch's default (the
TorchScript exporter, ``dynamo=False``, is deprecated). Checked on CPU with
torch 2.15 for timm resnet18, efficientnet_b0, mobilenetv3_large_100,
convnext_tiny and regnety_016 in FP16: all export without a GPU (torch.export
traces with fake tensors, so no FP16 CPU kernel has to exist), pass
``onnx.checker`` and give byte-identical files for the same weights. Options:

* ``external_data=False`` keeps the weights inside the ``.onnx`` file, so the
  file's SHA-256 covers the weights (the TensorRT engine cache is keyed by it)
  and TensorRT's parser needs no side file. ONNX's protobuf limit of 2 GB
  bounds the model, far above the CNNs benchmarked here;
* the batch axis is a named ``torch.export.Dim("batch")``, which the exporter
  writes as ``dim_param: "batch"`` on the input and output, so one ONNX serves
  every batch size (TensorRT fixes the batch with its optimization profile,
  ONNX Runtime with a free-dimension override);
* ``optimize=True`` (the default) runs the onnxscript optimizer, which folds
  BatchNorm into the preceding Conv; TensorRT and ONNX Runtime fuse the same
  pairs themselves, so the engines do not change, only the file is smaller.

The example batch is 2, not 1, when the batch is dynamic: ``torch.export``
specializes dimensions whose example value is 0 or 1 (torch.export docs,
"0/1 specialization"); torch.onnx copes with a size-1 example today, but an
example of 2 does not depend on that.
"""

from __future__ import annotations

import copy
import hashlib
import os
from pathlib import Path
from typing import Any

from roofline import files

INPUT_NAME = "input"
OUTPUT_NAME = "output"
BATCH_DIM_NAME = "batch"
DEFAULT_OPSET = 18  # the dynamo exporter's own minimum; TensorRT parses opset 18 since 8.6
EXPORT_DTYPES = {"fp16": "float16", "fp32": "float32"}
ONNX_ELEM_TYPES = {"fp16": "FLOAT16", "fp32": "FLOAT"}
_CHUNK_BYTES = 1 << 20


def export_onnx(
    model: Any,
    input_shape: tuple[int, int, int, int],
    path: str | os.PathLike[str],
    dtype: str = "fp16",
    dynamic_batch: bool = True,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Export ``model`` (a torch ``nn.Module``) to ``path`` with its tensors typed ``dtype``.

    The input is named ``input``, the output ``output``; with ``dynamic_batch`` the
    first axis of both is the symbol ``batch``. The model is deep-copied before the
    cast so the caller's module keeps its dtype. The file is written to a
    temporary name in the same directory and moved into place with
    ``os.replace``, so a concurrent reader never sees half a file. Raises
    ValueError for an unknown dtype or an opset below 17, RuntimeError when the
    written graph's input is not typed ``dtype``.
    """
    import torch

    if dtype not in EXPORT_DTYPES:
        raise ValueError(f"export dtype must be one of {', '.join(EXPORT_DTYPES)}, not {dtype!r}")
    if opset < 17:
        raise ValueError(f"opset {opset} is too old: need >= 17 (LayerNormalization is an opset-17 op)")
    torch_dtype = getattr(torch, EXPORT_DTYPES[dtype])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    model = copy.deepcopy(model).eval().to(dtype=torch_dtype)
    batch = max(2, input_shape[0]) if dynamic_batch else input_shape[0]
    # A private generator: the example's values do not matter, and the caller's RNG stays untouched.
    example = torch.randn(
        (batch, *input_shape[1:]), generator=torch.Generator().manual_seed(0), dtype=torch_dtype
    )
    dynamic_shapes = ({0: torch.export.Dim(BATCH_DIM_NAME, min=1)},) if dynamic_batch else None

    with files.replacing(path) as tmp:
        torch.onnx.export(
            model,
            (example,),
            tmp,
            dynamo=True,
            external_data=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=dynamic_shapes,
            opset_version=opset,
            optimize=True,
            verbose=False,
            report=False,
        )
        found = onnx_io_elem_types(tmp)
        expected = ONNX_ELEM_TYPES[dtype]
        if set(found.values()) != {expected}:
            raise RuntimeError(f"exported graph I/O types are {found}, expected all {expected}")
    return path


def export_cached(
    source: str, resolution: int, cache_dir: str | os.PathLike[str], dtype: str = "fp16", seed: int = 0
) -> Path:
    """The ONNX for model ``source`` at ``resolution``, exported once into ``cache_dir`` and reused.

    Keyed by model, resolution and dtype only: the batch axis is dynamic, so every
    batch size shares one file. Weights are random (``kernels.models``) but drawn
    from a fixed ``seed`` under ``torch.random.fork_rng``, so a re-export gives the
    same bytes and the caller's RNG state is untouched. A file exported by an
    older torch stays valid and is reused; the engine caches key on its hash.
    """
    import torch

    from kernels.models import instantiate

    slug = source.replace(":", "-").replace("/", "-")
    path = Path(cache_dir) / "onnx" / f"{slug}-r{resolution}-{dtype}.onnx"
    if path.exists():
        return path
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = instantiate(source)
    return export_onnx(model, (1, 3, resolution, resolution), path, dtype=dtype, dynamic_batch=True)


def onnx_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of the file's bytes (weights included: ``export_onnx`` writes no external data)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def onnx_io_elem_types(path: str | os.PathLike[str]) -> dict[str, str]:
    """``{tensor name: ONNX element type name}`` for the graph's real inputs and its outputs.

    Initializers that older IR versions also list as graph inputs are skipped:
    they are weights, not inputs a runtime binds.
    """
    import onnx

    graph = onnx.load(os.fspath(path), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    tensors = [v for v in graph.input if v.name not in weights] + list(graph.output)
    return {v.name: onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type) for v in tensors}


def onnx_is_fp16(path: str | os.PathLike[str]) -> bool:
    """True when every graph input is ``FLOAT16`` (what TensorRT 11's strongly typed build needs).

    The TensorRT backend refuses an ONNX for which this is False on TensorRT >= 11:
    a strongly typed network built from FP32 inputs would run in FP32.
    """
    import onnx

    graph = onnx.load(os.fspath(path), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    inputs = [v for v in graph.input if v.name not in weights]
    return bool(inputs) and all(v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16 for v in inputs)
