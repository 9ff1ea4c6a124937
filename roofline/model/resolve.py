"""Turn a model name from the command line into a Network.

``timm:NAME`` and ``torchvision:NAME`` are traced with the torch frontend,
``*.onnx`` goes through the ONNX frontend, ``*.json`` is a saved IR, and a
bare name is an embedded zoo model (no torch needed).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from roofline.errors import RooflineError
from roofline.model import zoo
from roofline.model.ir import Network


def _torch_frontend():
    if importlib.util.find_spec("torch") is None:
        raise RooflineError("timm:/torchvision: models need torch: pip install 'roofline[torch]'")
    from roofline.model.frontends import pytorch

    return pytorch


def _onnx_frontend():
    if importlib.util.find_spec("onnx") is None:
        raise RooflineError("ONNX files need the onnx package: pip install 'roofline[onnx]'")
    from roofline.model.frontends import onnx_graph

    return onnx_graph


def load_ir_file(path: Path) -> Network:
    try:
        return Network.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise RooflineError(f"IR file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError, KeyError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RooflineError(f"{path} is not a valid roofline IR file ({reason})") from None


def resolve(spec: str, resolution: int | None = None) -> Network:
    """The Network named by ``spec`` at ``resolution`` (default: the model's own)."""
    if resolution is not None and resolution < 1:
        raise RooflineError(f"resolution must be a positive integer, got {resolution}")
    kind, sep, target = spec.partition(":")
    if sep and kind == "timm":
        return _torch_frontend().from_timm(target, resolution)
    if sep and kind == "torchvision":
        return _torch_frontend().from_torchvision(target, resolution)
    path = Path(spec)
    if path.suffix == ".onnx":
        if resolution is not None:
            raise RooflineError("--resolution does not apply to ONNX files: export the model at that size")
        return _onnx_frontend().from_onnx(path)
    if path.suffix == ".json":
        if resolution is not None:
            raise RooflineError("--resolution does not apply to IR files: trace the model at that size")
        return load_ir_file(path)
    network = zoo.load(spec)
    if resolution is None or resolution == network.resolution:
        return network
    source = zoo.ZOO_SOURCES[spec]
    if not source.startswith("timm:"):
        raise RooflineError(f"{spec} is stored at {network.resolution}x{network.resolution} only")
    if importlib.util.find_spec("timm") is None:
        raise RooflineError(
            f"the zoo stores {spec} at {network.resolution}; another resolution re-traces it from timm: "
            "pip install 'roofline[torch]'"
        )
    return _torch_frontend().from_timm(source.removeprefix("timm:"), resolution)
