"""Regenerate the embedded zoo: ``python -m roofline.model.zoo.build [NAME ...]``.

Needs torch and timm (``pip install -e '.[torch]'``). Each model is traced on
the meta device at its default input size and batch 1, and written as
``roofline/model/zoo/<name>.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from roofline.model.zoo import ZOO_SOURCES, dumps


def trace(name: str):
    from roofline.model.frontends import pytorch

    kind, _, target = ZOO_SOURCES[name].partition(":")
    if kind == "timm":
        return pytorch.from_timm(target)
    from roofline.model.builtin import cifar

    build, shape = cifar.MODELS[target]
    return pytorch.trace_module(
        build(), shape, name=name, resolution=shape[-1],
        source=f"roofline.model.builtin.cifar:{target} ({pytorch._versions()})",
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="zoo models to rebuild (default: all)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args(argv)
    names = args.names or list(ZOO_SOURCES)
    unknown = [n for n in names if n not in ZOO_SOURCES]
    if unknown:
        parser.error(f"not zoo models: {', '.join(unknown)}")
    for i, name in enumerate(names, 1):
        network = trace(name)
        if network.unsupported_ops:
            print(f"  {name}: unsupported ops {network.unsupported_ops}", file=sys.stderr)
        path = args.out / f"{name}.json"
        # Write then rename, so an interrupted build never leaves half a file.
        with tempfile.NamedTemporaryFile("w", dir=args.out, delete=False, suffix=".tmp") as tmp:
            tmp.write(dumps(network))
        os.replace(tmp.name, path)
        print(f"[{i}/{len(names)}] {name}: {len(network.layers)} layers, {network.flops() / 1e9:.3f} GFLOPs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
