"""Where the CLI writes: one-line exit-2 errors for targets it cannot write, before any work, and the
survey's --out directory replaced whole (--force) or refused, never left half written."""

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from roofline.cli import plots
from roofline.cli.main import main
from unit_tests.helpers import cli_error

pytestmark = pytest.mark.analytic

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
SURVEY = ["survey", "resnet18", "resnet50"]
FIGURES = {f"{stem}{suffix}" for stem in ("roofline", "pareto") for suffix in (".png", ".svg")}
SURVEY_FILES = FIGURES | {"survey.csv", "survey.json", "summary.md"}

#: Every command that writes, with its output option pointing at {target}.
WRITERS = [
    ["staircase", "resnet18", "--layer", "fc", "--plot", "{target}.png"],
    ["optimize-widths", "cifar_vgg16", "--out", "{target}"],
    ["latency-table", "resnet18", "--out", "{target}"],
    ["fold", "resnet18", "--out", "{target}"],
    ["nats-sweep", "--out", "{target}"],
    ["gpunet", "--samples", "8", "--out", "{target}"],
    ["survey", "resnet18", "--out", "{target}"],
]


def argv_for(template, target):
    return [arg.replace("{target}", str(target)) for arg in template]


def listing(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir()}


@pytest.mark.parametrize("template", WRITERS[:-1], ids=lambda t: t[0])
def test_out_onto_a_directory_is_one_line_exit_2(capsys, tmp_path, template):
    target = tmp_path / "target"
    Path(f"{target}.png" if template[0] == "staircase" else target).mkdir()
    err = cli_error(capsys, argv_for(template, target))
    assert "is a directory; name a file" in err
    assert all(not any(p.iterdir()) for p in tmp_path.iterdir())


@pytest.fixture
def read_only(tmp_path, monkeypatch):
    """A directory that os.access reports unwritable (as chmod 0o555 does for anyone but root)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m, **kw: False if Path(p) == ro else real_access(p, m, **kw))
    return ro


@pytest.mark.parametrize("template", WRITERS, ids=lambda t: t[0])
def test_unwritable_directory_is_one_line_exit_2(capsys, read_only, template):
    err = cli_error(capsys, argv_for(template, read_only / "out"))
    assert f"directory {read_only} is not writable; fix its permissions or write elsewhere" in err
    assert list(read_only.iterdir()) == []


@pytest.mark.skipif(AS_ROOT, reason="root writes into a mode 0o555 directory; tested above through os.access")
def test_read_only_directory_for_real(capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    try:
        assert "is not writable" in cli_error(capsys, ["fold", "resnet18", "--out", str(ro / "f.json")])
        assert "is not writable" in cli_error(capsys, [*SURVEY, "--out", str(ro / "survey")])
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_written_files_honour_the_umask(capsys, tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "f.json"
        path.write_text("old")
        path.chmod(0o644)
        assert main(["fold", "resnet18", "--out", str(path)]) == 0
        assert main([*SURVEY, "--out", str(tmp_path / "s")]) == 0
    finally:
        os.umask(old)
    capsys.readouterr()
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "s").stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "s").iterdir()} == {0o644}


# --- the survey's directory ------------------------------------------------------------------------------


@pytest.fixture
def old_run(tmp_path):
    """The directory of an older survey, with a figure the new one does not draw."""
    out = tmp_path / "out"
    out.mkdir()
    for name in ("survey.csv", "accuracy.png", "roofline.png"):
        (out / name).write_text(f"old {name}")
    return out


def test_existing_directory_is_refused_without_force(capsys, old_run):
    before = listing(old_run)
    err = cli_error(capsys, [*SURVEY, "--out", str(old_run)])
    assert f"--out {old_run} already exists; pass --force to replace it whole" in err
    assert listing(old_run) == before
    assert "--force replaces an --out directory" in cli_error(capsys, [*SURVEY, "--force"])


def test_force_replaces_the_directory_whole(capsys, old_run):
    assert main([*SURVEY, "--out", str(old_run), "--force"]) == 0
    assert {p.name for p in old_run.iterdir()} == SURVEY_FILES  # no stale accuracy.png
    assert (old_run / "survey.csv").read_text().startswith("model")
    assert [p.name for p in old_run.parent.iterdir()] == ["out"]  # no staging or old copy left
    assert capsys.readouterr().out.count("wrote ") == len(SURVEY_FILES)


@pytest.mark.parametrize("existing", [True, False], ids=["old dir", "no dir"])
@pytest.mark.parametrize("error, code", [(KeyboardInterrupt, 130), (RuntimeError, None)])
def test_a_survey_failing_midway_leaves_the_old_directory_or_none(
    capsys, tmp_path, old_run, monkeypatch, existing, error, code
):
    out = old_run if existing else tmp_path / "new" / "out"
    before = listing(old_run)

    real_figures = plots.survey_figures

    def figures(survey):  # the first figure is written, the second fails
        first = next(iter(real_figures(survey).items()))

        def broken(path):
            raise error("drawing failed")

        return dict([first, ("broken", broken)])

    monkeypatch.setattr(plots, "survey_figures", figures)
    argv = [*SURVEY, "--out", str(out), *(["--force"] if existing else [])]
    if code is None:
        with pytest.raises(error):
            main(argv)
    else:
        assert main(argv) == code
    assert listing(old_run) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no hidden staging, no "new"


SLOW_SURVEY = """
import sys, time
from roofline.cli import plots
figures = plots.survey_figures
def slow(write):
    def write_then_wait(path):
        write(path)
        time.sleep(60)
    return write_then_wait
plots.survey_figures = lambda survey: {stem: slow(write) for stem, write in figures(survey).items()}
from roofline.cli.main import main
raise SystemExit(main(sys.argv[1:]))
"""


def interrupt(cmd, parent: Path, signum: int, wait_for: str) -> subprocess.CompletedProcess:
    """Run ``cmd``, send ``signum`` once ``parent`` holds a staging path matching ``wait_for``."""
    proc = subprocess.Popen(cmd, cwd=parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(parent.glob(wait_for)):
            assert proc.poll() is None, f"finished before the signal: {proc.communicate()}"
            assert time.monotonic() < deadline, "no staging directory appeared"
            time.sleep(0.01)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_sigterm_during_survey_leaves_no_directory(tmp_path):
    cmd = [sys.executable, "-m", "roofline.cli", *SURVEY, "--out", "out"]
    done = interrupt(cmd, tmp_path, signal.SIGTERM, ".out.*")
    assert done.returncode == 143, done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_with_half_the_figures_written_keeps_the_old_directory(old_run, signum, code):
    before = listing(old_run)
    cmd = [sys.executable, "-c", SLOW_SURVEY, *SURVEY, "--out", "out", "--force"]
    done = interrupt(cmd, old_run.parent, signum, ".out.*/*.png")
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    assert listing(old_run) == before
    assert [p.name for p in old_run.parent.iterdir()] == ["out"]
