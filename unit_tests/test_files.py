"""roofline.files: atomic files with the umask's mode, one-line errors, and directories replaced whole."""

import os
import signal
import stat
from pathlib import Path

import pytest

from roofline import files
from roofline.errors import RooflineError

pytestmark = pytest.mark.analytic

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture
def set_umask():
    """Set the process umask for one test; the old one comes back afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_umask_is_read_without_changing_it(set_umask):
    for value in (0o022, 0o027, 0o077):
        set_umask(value)
        assert files.umask() == value
        assert files.umask() == value  # reading it left it as it was


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_get_the_mode_open_gives(tmp_path, set_umask, umask, expected):
    set_umask(umask)
    files.write_text(tmp_path / "a.json", "{}")
    files.write_bytes(tmp_path / "b.bin", b"\0")
    with files.replacing(tmp_path / "c.png") as tmp:
        tmp.write_bytes(b"png")
    for name in ("a.json", "b.bin", "c.png"):
        assert mode(tmp_path / name) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.bin", "c.png"]


def test_overwriting_a_0644_file_keeps_0644(tmp_path, set_umask):
    set_umask(0o022)
    path = tmp_path / "table.json"
    path.write_text("old")
    path.chmod(0o644)
    files.write_text(path, "new")
    assert path.read_text() == "new" and mode(path) == 0o644


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "keep.txt"
    path.write_text("old")
    with pytest.raises(ValueError), files.replacing(path) as tmp:
        tmp.write_text("half")
        raise ValueError
    with pytest.raises(RooflineError, match=r"^cannot write .*keep\.txt \(.*\); check the path"):
        with files.replacing(path) as tmp:
            raise OSError(28, "No space left on device")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_check_parent_names_the_problem_and_the_fix(tmp_path):
    (tmp_path / "a_file").write_text("")
    assert files.check_parent(tmp_path / "new.json") == tmp_path / "new.json"
    cases = [
        (tmp_path, "is a directory; name a file"),
        (tmp_path / "missing" / "x.json", "does not exist; create it or write elsewhere"),
        (tmp_path / "a_file" / "x.json", "is not a directory"),
    ]
    for path, fragment in cases:
        with pytest.raises(RooflineError, match=fragment) as exc:
            files.check_parent(path)
        assert "\n" not in str(exc.value)


def test_unwritable_directory_is_refused_before_any_write(tmp_path, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m, **kw: False if Path(p) == tmp_path else real_access(p, m))
    with pytest.raises(RooflineError, match=f"directory {tmp_path} is not writable; fix its permissions"):
        files.check_parent(tmp_path / "x.json")
    with pytest.raises(RooflineError, match="is not writable"):
        files.write_text(tmp_path / "x.json", "{}")
    with pytest.raises(RooflineError, match="is not writable"):
        files.check_dir_parent(tmp_path / "new" / "dir")  # the nearest existing ancestor counts
    with pytest.raises(RooflineError, match="is not writable"), files.replacing_dir(tmp_path / "out"):
        pass
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(AS_ROOT, reason="root writes into a mode 0o555 directory; the check is tested above")
def test_read_only_directory(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    try:
        with pytest.raises(RooflineError, match="is not writable"):
            files.write_text(ro / "x.json", "{}")
        with pytest.raises(RooflineError, match="is not writable"), files.replacing_dir(ro / "out"):
            pass
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


# --- directories ----------------------------------------------------------------------------------------


def fill(directory: Path, names) -> None:
    for name in names:
        files.write_text(directory / name, name)


def listing(directory: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in directory.iterdir()}


@pytest.fixture(params=["renameat2", "two renames"])
def swap(request, monkeypatch):
    """Both ways into place: the atomic exchange, and renames where the system has no exchange."""
    if request.param == "two renames":
        monkeypatch.setattr(files, "_rename2", lambda src, dst, flags: False)
    return request.param


def test_new_directory_and_its_parents(tmp_path, set_umask, swap):
    set_umask(0o022)
    out = tmp_path / "a" / "b" / "out"
    with files.replacing_dir(out) as stage:
        assert stage.parent == out.parent and stage.name.startswith(".out.") and not out.exists()
        fill(stage, ["x.csv", "y.png"])
    assert listing(out) == {"x.csv": "x.csv", "y.png": "y.png"}
    assert mode(out) == 0o755 and mode(out / "x.csv") == 0o644
    assert [p.name for p in out.parent.iterdir()] == ["out"]  # no staging directory left


def test_existing_directory_is_refused_without_replace(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    fill(out, ["old.csv"])
    with pytest.raises(RooflineError, match="already exists"), files.replacing_dir(out):
        pytest.fail("the block must not run")
    (tmp_path / "a_file").write_text("keep")
    with pytest.raises(RooflineError, match="exists and is not a directory"):
        with files.replacing_dir(tmp_path / "a_file", replace=True):
            pytest.fail("the block must not run")
    assert listing(out) == {"old.csv": "old.csv"} and (tmp_path / "a_file").read_text() == "keep"


def test_replace_swaps_in_exactly_the_new_set(tmp_path, swap):
    out = tmp_path / "out"
    out.mkdir()
    fill(out, ["survey.csv", "accuracy.png"])
    with files.replacing_dir(out, replace=True) as stage:
        fill(stage, ["survey.csv"])
        assert listing(out) == {"survey.csv": "survey.csv", "accuracy.png": "accuracy.png"}  # old, whole
    assert listing(out) == {"survey.csv": "survey.csv"}  # no stale accuracy.png
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt, RooflineError])
@pytest.mark.parametrize("existing", [True, False])
def test_failure_midway_leaves_the_old_directory_or_none(tmp_path, swap, error, existing):
    out = tmp_path / "new" / "out"
    if existing:
        out.mkdir(parents=True)
        fill(out, ["old.csv"])
    with pytest.raises(error), files.replacing_dir(out, replace=True) as stage:
        fill(stage, ["half.png"])
        raise error("drawing failed")
    if existing:
        assert listing(out) == {"old.csv": "old.csv"}
        assert [p.name for p in out.parent.iterdir()] == ["out"]
    else:
        assert list(tmp_path.iterdir()) == []  # no staging directory and no parents made for it


def test_a_failed_swap_puts_the_old_directory_back(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    fill(out, ["old.csv"])
    monkeypatch.setattr(files, "_rename2", lambda src, dst, flags: False)
    real_rename = os.rename

    def rename(src, dst):
        if Path(src).name.endswith(".tmp"):  # moving the staged directory in
            raise OSError(5, "Input/output error")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(RooflineError, match=r"cannot write .*out \(Input/output error\)"):
        with files.replacing_dir(out, replace=True) as stage:
            fill(stage, ["new.csv"])
    assert listing(out) == {"old.csv": "old.csv"}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_interrupts_wait_for_the_swap(tmp_path):
    caught = []
    with pytest.raises(KeyboardInterrupt):
        with files._interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            caught.append("still running")  # the handler has run by now, had it not been deferred
    assert caught == ["still running"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
