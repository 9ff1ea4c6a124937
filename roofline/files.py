"""Atomic file output: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from roofline.errors import RooflineError


def check_parent(path: str | Path) -> Path:
    """Fail before any work if ``path``'s directory does not exist."""
    path = Path(path)
    if not path.parent.is_dir():
        raise RooflineError(f"directory {path.parent} does not exist; create it or write elsewhere")
    return path


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it only if the block succeeds."""
    path = check_parent(path)
    # os.replace is atomic only within one file system, hence the temp file beside the target.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text)


def write_bytes(path: str | Path, data: bytes) -> None:
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def read_document(path: str | Path, what: str, fmt: str) -> dict[str, Any]:
    """A JSON file's top-level object, checked to be ``fmt`` version 1 (one-line errors)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise RooflineError(f"{what} {path} does not exist; check the path") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RooflineError(f"{what} {path} is not valid JSON ({exc}); regenerate it") from None
    if not isinstance(data, dict) or data.get("format") != fmt or data.get("version") != 1:
        raise RooflineError(f"{path} is not a {fmt} version 1 file; pass the file roofline wrote")
    return data
