"""Frontends that turn models into the IR: ``pytorch`` (nn.Module, timm,
torchvision) and ``onnx_graph`` (ONNX files). Each imports its library, so
import them only when needed."""


def unique_name(stem: str, taken: set[str]) -> str:
    """``stem``, or ``stem_2``, ``stem_3`` ... if taken; claims the result."""
    name, count = stem, 1
    while name in taken:
        count += 1
        name = f"{stem}_{count}"
    taken.add(name)
    return name
