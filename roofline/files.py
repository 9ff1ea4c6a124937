"""Every write of the tool: a reader sees the old file (or directory) or the new one, never half of one.

Single files go through ``replacing`` (``write_text``, ``write_bytes``): a temporary file beside the
target, renamed over it once complete. Directories of outputs (the survey) go through
``replacing_dir``: a hidden staging directory beside the target, renamed into place whole. New files
and directories get the mode ``open()`` and ``mkdir()`` would give them (0o666 or 0o777 less the
umask). ``check_parent`` and ``check_dir_parent`` fail early, with one line naming the path and the
fix, when a target cannot be written; an ``OSError`` while writing becomes such a line too.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from roofline.errors import RooflineError

_UMASK_LOCK = threading.Lock()


def umask() -> int:
    """The process umask: read from /proc where Linux shows it, else set and restored under a lock."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        # 0o077 for the moment it is set: a file another thread creates then is private, not world-writable.
        old = os.umask(0o077)
        os.umask(old)
    return old


def _writable_dir(directory: Path) -> None:
    if not directory.exists():
        raise RooflineError(f"directory {directory} does not exist; create it or write elsewhere")
    if not directory.is_dir():
        raise RooflineError(f"{directory} is not a directory; write into a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise RooflineError(f"directory {directory} is not writable; fix its permissions or write elsewhere")


def check_parent(path: str | Path) -> Path:
    """Fail before any work if a file cannot be written at ``path`` (a directory, or no writable parent)."""
    path = Path(path)
    if not str(path).strip() or path.name in ("", ".", ".."):
        raise RooflineError(f"{str(path)!r} is not a file name; name a file")
    if path.is_dir():
        raise RooflineError(f"{path} is a directory; name a file")
    # Writing is a rename onto the path: a device or pipe (/dev/full, a fifo) would be replaced, not written.
    if path.exists() and not path.is_file():
        raise RooflineError(f"{path} is not a regular file; write to a file path")
    _writable_dir(path.parent)
    return path


def check_dir_parent(path: str | Path) -> Path:
    """Fail before any work if a directory cannot be made at ``path``: its nearest existing ancestor
    must be a writable directory (missing parents are created when it is written)."""
    path = Path(path)
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    _writable_dir(ancestor)
    return path


def _cannot_write(path: Path, exc: OSError) -> RooflineError:
    reason = exc.strerror or str(exc)
    return RooflineError(f"cannot write {path} ({reason}); check the path, its permissions and free space")


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it only if the block succeeds."""
    path = check_parent(path)
    tmp = None
    try:
        # os.replace is atomic only within one file system, hence the temp file beside the target.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
        try:
            # mkstemp makes 0o600; a new file gets what open() gives it (where the file system has modes).
            with suppress(OSError):
                os.fchmod(fd, 0o666 & ~umask())
        finally:
            os.close(fd)
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _cannot_write(path, exc) from None
        raise


def write_text(path: str | Path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text)


def write_bytes(path: str | Path, data: bytes) -> None:
    with replacing(path) as tmp:
        tmp.write_bytes(data)


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM off for a few renames or a cleanup, then deliver them as usual."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        if handler is not None:  # None: a handler not set from Python, which cannot be put back
            previous[signum] = signal.signal(signum, lambda s, _frame: pending.append(s))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if pending:
            signal.raise_signal(pending[0])


_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2


def _rename2(src: Path, dst: Path, flags: int) -> bool:
    """Linux renameat2: True if done, False where the kernel, libc or file system lacks it."""
    import ctypes  # here: only a directory swap needs it, and it costs every CLI start a few ms

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    if call(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(dst))


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _swap_in(stage: Path, path: Path, replace: bool) -> None:
    """Rename ``stage`` to ``path``; an existing ``path`` (only with ``replace``) is swapped out, removed."""
    if not (path.exists() or path.is_symlink()):
        if not _rename2(stage, path, _RENAME_NOREPLACE):
            os.rename(stage, path)
        return
    if not replace:
        raise RooflineError(f"{path} appeared while the outputs were written; it was left alone, run again")
    if _rename2(stage, path, _RENAME_EXCHANGE):  # one atomic step: readers of path see old, then new
        _remove(stage)  # now the old directory
        return
    # No exchange here: move the old one aside, the new one in, and put the old one back on failure.
    aside = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
    aside.rmdir()
    os.rename(path, aside)
    try:
        os.rename(stage, path)
    except BaseException:
        os.rename(aside, path)
        raise
    _remove(aside)


@contextmanager
def replacing_dir(path: str | Path, *, replace: bool = False) -> Iterator[Path]:
    """A hidden staging directory beside ``path`` that becomes ``path``, whole, if the block succeeds.

    An existing ``path`` is replaced whole with ``replace`` and refused without it; a file there is
    always refused. On any exception, Ctrl-C or SIGTERM (when the program turns it into an exception)
    the staging directory and any parents made for it are removed, and ``path`` is as it was.
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise RooflineError(f"{path} exists and is not a directory; pick a directory path")
        if not replace:
            raise RooflineError(f"{path} already exists; replace it or pick a new directory")
    check_dir_parent(path)
    made: list[Path] = []
    stage = None
    try:
        for parent in reversed(path.parents):
            if not parent.exists():
                parent.mkdir()
                made.append(parent)
        stage = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
        with suppress(OSError):  # mkdtemp makes 0o700; a new directory gets what mkdir() gives it
            stage.chmod(0o777 & ~umask())
        yield stage
        with _interrupts_deferred():
            _swap_in(stage, path, replace)
            stage = None
    except BaseException as exc:
        with _interrupts_deferred():
            if stage is not None:
                _remove(stage)
            for parent in reversed(made):
                with suppress(OSError):
                    parent.rmdir()
        if isinstance(exc, OSError):
            raise _cannot_write(path, exc) from None
        raise


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
