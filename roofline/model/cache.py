"""The IR cache: a timm or torchvision model traced once is read back, never traced again.

Tracing imports torch and timm and runs the model on the meta device, seconds
per model; reading the IR back is milliseconds and imports neither. One JSON
file per traced model, ``{"format": FORMAT, "key": {...}, "network": ...}``,
lives in ``cache_dir()``: ``$ROOFLINE_CACHE_DIR`` if set, else
``$XDG_CACHE_HOME/roofline/ir``, else ``~/.cache/roofline/ir`` (the XDG Base
Directory Specification's cache directory, where a relative
``$XDG_CACHE_HOME`` is ignored).

The key is everything the trace depends on: the frontend, the model name, the
resolution asked for ("default" for the model's own, which only the model
itself can say), the reparameterisation flag, the versions of the packages
that build the model (read from their installed metadata, so a hit imports no
torch), the tracer's own source (a digest of ``frontends/pytorch.py``, so a
changed tracer never serves stale entries) and ``FORMAT``. Any change is a
different file, a miss.

The cache never fails a command: an entry that does not read back (bad JSON,
another key inside, an IR that ``read_network`` refuses) is named in one warning
line, traced again and overwritten; a directory that cannot be written is named
in one warning line and the command goes on without caching. Entries are
written whole (``roofline.files``), so a reader never sees half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Callable
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from roofline import files
from roofline.errors import RooflineError
from roofline.model.ir import Network
from roofline.model.ir_file import read_network

#: Bump when an entry's layout or the meaning of its key changes: every older entry then misses.
FORMAT = "roofline-ir-cache/1"
#: The packages whose versions change what each frontend builds and traces.
FRONTEND_PACKAGES: dict[str, tuple[str, ...]] = {
    "timm": ("timm", "torch"),
    "torchvision": ("torchvision", "torch"),
}
_TRACER = Path(__file__).parent / "frontends" / "pytorch.py"
#: Directories already warned about in this process: one line each, not one per model.
_warned: set[str] = set()


def cache_dir() -> Path:
    """Where entries live: ``$ROOFLINE_CACHE_DIR``, else ``$XDG_CACHE_HOME/roofline/ir``, else
    ``~/.cache/roofline/ir``. ``RuntimeError`` when neither variable is set and there is no home."""
    own = os.environ.get("ROOFLINE_CACHE_DIR")
    if own:
        return Path(own)
    xdg = os.environ.get("XDG_CACHE_HOME")
    # XDG Base Directory Specification: "If an implementation encounters a relative path in any of
    # these variables it should consider the path invalid and ignore it."
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "roofline" / "ir"


@cache
def package_version(name: str) -> str | None:
    """The installed version of distribution ``name`` from its metadata (no import), None if absent.

    Read once per process: parsing a distribution's metadata costs more than reading a cached network.
    """
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@cache
def _tracer_digest() -> str:
    try:
        return hashlib.sha256(_TRACER.read_bytes()).hexdigest()[:16]
    except OSError:
        return "unknown"


def cache_key(frontend: str, name: str, resolution: int | None, reparam: bool) -> dict[str, Any] | None:
    """The key of a traced model; None when a package the frontend needs is not installed
    (nothing to cache: tracing then fails with the line saying what to install)."""
    versions = {}
    for package in FRONTEND_PACKAGES[frontend]:
        version = package_version(package)
        if version is None:
            return None
        versions[package] = version
    return {
        "format": FORMAT,
        "frontend": frontend,
        "model": name,
        "resolution": "default" if resolution is None else resolution,
        "reparam": reparam,
        "versions": versions,
        "tracer": _tracer_digest(),
    }


def entry_path(key: dict[str, Any]) -> Path:
    """The file of ``key``: a readable stem (frontend, model) and a digest of the whole key."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{key['frontend']}-{key['model']}")[:100]
    return cache_dir() / f"{stem}-{digest}.json"


def _warn(line: str) -> None:
    print(f"roofline: warning: {line}", file=sys.stderr)


def read_entry(path: Path, key: dict[str, Any]) -> Network | None:
    """The network stored at ``path`` under ``key``; None on a miss or a corrupt entry (warned)."""
    try:
        text = path.read_text()
    except (FileNotFoundError, NotADirectoryError):  # a miss; a file in the directory's place fails the write
        return None
    except (OSError, UnicodeDecodeError):
        text = ""  # unreadable: as corrupt, traced again and, if the directory allows, overwritten
    try:
        data = json.loads(text)
        if type(data) is not dict or data.get("format") != FORMAT or data.get("key") != key:
            raise ValueError("not an entry of this key")
        return read_network(data["network"], source=str(path))
    except (ValueError, RecursionError, KeyError, RooflineError):  # JSONDecodeError is a ValueError
        _warn(f"ignoring corrupt cache entry {path}; re-tracing")
        return None


def write_entry(path: Path, key: dict[str, Any], network: Network) -> bool:
    """Store ``network`` under ``key`` at ``path``, whole or not at all; False (warned once per
    directory) when the directory cannot be made or written."""
    text = json.dumps({"format": FORMAT, "key": key, "network": network.to_dict()}, separators=(",", ":"))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # mode 0o777 less the umask, as files makes files
        files.write_text(path, text)
    except OSError as exc:
        problem = f"cannot create {path.parent} ({exc.strerror or exc})"
    except RooflineError as exc:
        problem = str(exc).partition(";")[0]
    else:
        return True
    if str(path.parent) not in _warned:
        _warned.add(str(path.parent))
        _warn(
            f"not caching traced models: {problem}; set ROOFLINE_CACHE_DIR to a writable directory "
            "or pass --no-cache"
        )
    return False


def cached(
    frontend: str, name: str, resolution: int | None, reparam: bool, trace: Callable[[], Network]
) -> Network:
    """The network ``trace()`` returns, read from the cache when it holds it, else traced and stored."""
    key = cache_key(frontend, name, resolution, reparam)
    if key is None:
        return trace()
    try:
        path = entry_path(key)
    except RuntimeError as exc:  # Path.home() without HOME or a passwd entry
        if "home" not in _warned:
            _warned.add("home")
            _warn(f"not caching traced models: no cache directory ({exc}); set ROOFLINE_CACHE_DIR")
        return trace()
    network = read_entry(path, key)
    if network is None:
        network = trace()
        write_entry(path, key, network)
    return network
