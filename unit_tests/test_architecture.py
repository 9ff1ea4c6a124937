"""The package layout's rules, read from the source: dependencies point down, and there are no circles.

Layers (README, "Architecture"): cli -> studies -> analysis -> {hardware, model} -> base
(errors, files, dtypes, schema); perf (results and the gate) stands beside them on base alone;
kernels/ (the GPU half) uses the analytic packages but never the CLI. Every import
counts, including those inside functions: a lazy import is still a dependency, and both
circles this test guards against were lazy ones.
"""

import ast
import graphlib
from pathlib import Path

import pytest

pytestmark = pytest.mark.analytic

ROOT = Path(__file__).resolve().parents[1]

#: Which layers each layer may import (besides its own).
ALLOWED = {
    "base": set(),
    "data": set(),  # roofline/data/: packaged data files, read through importlib.resources
    "model": {"base"},
    "hardware": {"base"},
    "perf": {"base"},
    "analysis": {"base", "model", "hardware"},
    "studies": {"base", "model", "hardware", "analysis", "perf"},
    "api": {"base", "model", "hardware", "analysis"},  # roofline/__init__.py, the public names
    "cli": {"base", "model", "hardware", "analysis", "studies", "perf", "api"},
    "kernels": {"base", "model", "hardware", "analysis", "perf"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for top in ("roofline", "kernels"):
        for path in (ROOT / top).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "kernels":
        return "kernels"
    if module == "roofline":
        return "api"
    if parts[1] in ("errors", "files", "dtypes", "schema"):
        return "base"
    return parts[1]


def _imports(module: str, path: Path) -> set[str]:
    """Modules of this repo that ``module`` imports; ``from pkg import name`` is ``pkg.name`` if a module."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: climb level - 1 packages up from this one
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], base]).strip(".")
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in MODULES and t != module)
    return out


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def test_every_module_has_a_layer():
    assert {layer(m) for m in MODULES} <= set(ALLOWED)


def test_dependencies_point_down():
    upward = [
        f"{m} ({layer(m)}) imports {t} ({layer(t)})"
        for m, targets in GRAPH.items()
        for t in sorted(targets)
        if layer(t) != layer(m) and layer(t) not in ALLOWED[layer(m)]
    ]
    assert upward == []


def test_no_import_circles():
    # A package's __init__ re-exporting its own modules is not a design circle: drop those edges.
    graph = {m: {t for t in ts if not t.startswith(f"{m}.")} for m, ts in GRAPH.items()}
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError naming the circle


def test_the_two_former_circles_are_gone():
    """survey <-> plots (the CLI's survey_outputs now joins them) and benchmark <-> microbench."""
    assert not {m for m in GRAPH["roofline.studies.survey"] if layer(m) == "cli"}
    assert "kernels.benchmark" not in GRAPH["kernels.microbench"]


def test_every_public_name_loads():
    """``roofline``'s names load on first use from the package that owns them."""
    import roofline

    assert all(getattr(roofline, name) is not None for name in roofline.__all__)
    with pytest.raises(AttributeError, match="no attribute 'zoo'"):
        roofline.zoo  # noqa: B018  (moved to roofline.model.zoo)
