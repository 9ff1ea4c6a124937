"""Turn a model name from the command line into a Network.

``timm:NAME`` and ``torchvision:NAME`` are traced with the torch frontend,
once: the IR cache (``roofline.model.cache``) serves them afterwards without
importing torch. ``*.onnx`` goes through the ONNX frontend, ``*.json`` is a
saved IR, and a bare name is an embedded zoo model (no torch needed).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from roofline.errors import RooflineError
from roofline.model import cache as ir_cache
from roofline.model import zoo
from roofline.model.ir import Network
from roofline.model.ir_file import IR_FIX, read_network


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
    """The network saved in ``path``; anything malformed is one line naming the file and the field."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise RooflineError(f"IR file {path} does not exist; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise RooflineError(
            f"{path}: cannot read the IR file ({reason}); check the path and its permissions"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RooflineError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); {IR_FIX}"
        ) from None
    except (ValueError, RecursionError) as exc:  # a number past the int digit limit, nesting too deep
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RooflineError(f"{path}: not valid JSON ({reason}); {IR_FIX}") from None
    return read_network(data, source=str(path))


def check_timeable(network: Network) -> Network:
    """``network`` if the roofline can time it: at least one layer must carry FLOPs.

    Utilization, arithmetic intensity, folding and the survey's log-scale plots
    all divide by the FLOPs, so a network without a convolution, linear layer or
    matrix product (an ONNX file whose only op is unsupported, a ``Loop``) is
    refused here, where every command resolves its models, instead of ending in
    a division by zero.
    """
    if network.flops() > 0:
        return network
    if network.unsupported_ops:
        ops = ", ".join(f"{op} x{n}" for op, n in network.unsupported_ops.items())
        why = f"unsupported ops: {ops}"
    elif network.layers:
        kinds = ", ".join(dict.fromkeys(layer.describe() for layer in network.layers))
        why = f"only layers without FLOPs: {kinds}"
    else:
        why = "no layers at all"
    raise RooflineError(
        f"{network.name} has no layer the roofline can time ({why}); it needs at least one convolution, "
        "linear layer or matrix product: export the model with standard ONNX ops or analyze another model"
    )


def resolve(
    spec: str, resolution: int | None = None, *, cache: bool = True, reparam: bool = False
) -> Network:
    """The Network named by ``spec`` at ``resolution`` (default: the model's own), checked to be timeable.

    ``cache``: read and store traced (timm, torchvision) models in the IR cache; False traces afresh
    and stores nothing. ``reparam``: a timm model in its deployed form (RepVGG, MobileOne, FastViT
    branches fused; ``pytorch.reparameterized``); a zoo model traced from timm is re-traced so.
    """
    return check_timeable(_resolve(spec, resolution, cache, reparam))


def _traced(frontend: str, name: str, resolution: int | None, cache: bool, reparam: bool) -> Network:
    def trace() -> Network:
        if frontend == "timm":
            return _torch_frontend().from_timm(name, resolution, reparam=reparam)
        return _torch_frontend().from_torchvision(name, resolution)

    return ir_cache.cached(frontend, name, resolution, reparam, trace) if cache else trace()


def _resolve(spec: str, resolution: int | None, cache: bool, reparam: bool) -> Network:
    if resolution is not None and resolution < 1:
        raise RooflineError(f"resolution must be a positive integer, got {resolution}")
    kind, sep, target = spec.partition(":")
    if sep and kind == "timm":
        return _traced("timm", target, resolution, cache, reparam)
    if sep and kind == "torchvision":
        if reparam:
            raise RooflineError(
                f"--reparam applies to timm models (RepVGG, MobileOne, FastViT ...), not {spec}: drop it"
            )
        return _traced("torchvision", target, resolution, cache, reparam)
    path = Path(spec)
    if path.suffix in (".onnx", ".json") and reparam:
        raise RooflineError(
            f"--reparam does not apply to {spec}: reparameterize the model before exporting it"
        )
    if path.suffix == ".onnx":
        if resolution is not None:
            raise RooflineError("--resolution does not apply to ONNX files: export the model at that size")
        return _onnx_frontend().from_onnx(path)
    if path.suffix == ".json":
        if resolution is not None:
            raise RooflineError("--resolution does not apply to IR files: trace the model at that size")
        return load_ir_file(path)
    network = zoo.load(spec)
    source = zoo.ZOO_SOURCES[spec]
    from_timm = source.startswith("timm:")
    # The zoo stores the trained form; the built-in CIFAR models have no branches to fuse.
    if (resolution is None or resolution == network.resolution) and not (reparam and from_timm):
        return network
    if not from_timm:
        raise RooflineError(f"{spec} is stored at {network.resolution}x{network.resolution} only")
    if importlib.util.find_spec("timm") is None:
        why = "its deployed form (--reparam)" if reparam else "another resolution"
        raise RooflineError(
            f"the zoo stores {spec} at {network.resolution} as trained; {why} re-traces it from timm: "
            "pip install 'roofline[torch]'"
        )
    return _traced("timm", source.removeprefix("timm:"), resolution, cache, reparam)
