"""The IR cache: traced once, read back after; misses on any change of key; never fails a command."""

import dataclasses
import json
import os
import stat
import subprocess
import sys
from types import SimpleNamespace

import pytest

from roofline.cli.main import main
from roofline.model import cache, resolve, zoo
from roofline.model.ir_file import read_network

pytestmark = pytest.mark.analytic

VERSIONS = {"timm": "1.0.0", "torch": "2.5.0", "torchvision": "0.20.0"}


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    path = tmp_path / "ir"
    monkeypatch.setenv("ROOFLINE_CACHE_DIR", str(path))
    monkeypatch.setattr(cache, "_warned", set())
    return path


@pytest.fixture
def versions(monkeypatch):
    """Package versions as the cache reads them (no torch needed for these tests)."""
    current = dict(VERSIONS)
    monkeypatch.setattr(cache, "package_version", current.get)
    return current


@pytest.fixture
def frontend(monkeypatch, versions):
    """A stand-in torch frontend that counts its traces and returns a zoo network under the asked name."""
    calls = []

    def traced(kind, name, resolution, reparam=False):
        calls.append((kind, name, resolution, reparam))
        base = zoo.load("resnet18")
        return dataclasses.replace(base, name=name, resolution=resolution or base.resolution)

    fake = SimpleNamespace(
        from_timm=lambda name, resolution=None, reparam=False: traced("timm", name, resolution, reparam),
        from_torchvision=lambda name, resolution=None: traced("torchvision", name, resolution),
        calls=calls,
    )
    monkeypatch.setattr(resolve, "_torch_frontend", lambda: fake)
    return fake


def entries(directory):
    return sorted(p.name for p in directory.glob("*.json")) if directory.exists() else []


def test_second_resolve_is_a_hit_and_does_not_trace(cache_dir, frontend):
    first = resolve.resolve("timm:fake_net")
    second = resolve.resolve("timm:fake_net")
    assert frontend.calls == [("timm", "fake_net", None, False)]
    assert second == first and second.name == "fake_net"
    (name,) = entries(cache_dir)
    doc = json.loads((cache_dir / name).read_text())
    assert set(doc) == {"format", "key", "network"} and doc["format"] == cache.FORMAT
    assert doc["key"]["model"] == "fake_net" and doc["key"]["resolution"] == "default"
    assert doc["key"]["versions"] == {"timm": "1.0.0", "torch": "2.5.0"}
    assert read_network(doc["network"]) == first


def test_every_part_of_the_key_is_a_miss(cache_dir, frontend):
    resolve.resolve("timm:fake_net")
    resolve.resolve("timm:fake_net", 160)
    resolve.resolve("timm:fake_net", reparam=True)
    resolve.resolve("timm:other_net")
    resolve.resolve("torchvision:fake_net")
    assert len(frontend.calls) == 5 and len(entries(cache_dir)) == 5
    for spec, res, reparam in (("timm:fake_net", 160, False), ("timm:fake_net", None, True)):
        resolve.resolve(spec, res, reparam=reparam)
    assert len(frontend.calls) == 5


@pytest.mark.parametrize("package", ["timm", "torch"])
def test_a_new_version_is_a_miss(cache_dir, frontend, versions, package):
    resolve.resolve("timm:fake_net")
    versions[package] = "99.0"
    resolve.resolve("timm:fake_net")
    resolve.resolve("timm:fake_net")
    assert len(frontend.calls) == 2 and len(entries(cache_dir)) == 2


def test_a_missing_package_traces_without_caching(cache_dir, frontend, versions):
    del versions["timm"]  # the frontend then says what to install; nothing to key on
    resolve.resolve("timm:fake_net")
    assert len(frontend.calls) == 1 and entries(cache_dir) == []


def _garbage(doc):
    return "{not json"


def _other_key(doc):
    return json.dumps({**doc, "key": {**doc["key"], "model": "someone_else"}})


def _bad_network(doc):
    network = dict(doc["network"], layers=[{"op": "conv", "name": "c"}])
    return json.dumps({**doc, "network": network})


def _not_an_object(doc):
    return "[1, 2, 3]"


@pytest.mark.parametrize("corrupt", [_garbage, _other_key, _bad_network, _not_an_object])
def test_a_corrupt_entry_is_warned_retraced_and_rewritten(cache_dir, frontend, capsys, corrupt):
    network = resolve.resolve("timm:fake_net")
    (name,) = entries(cache_dir)
    path = cache_dir / name
    good = path.read_text()
    path.write_text(corrupt(json.loads(good)))
    capsys.readouterr()
    assert resolve.resolve("timm:fake_net") == network
    err = capsys.readouterr().err
    assert err == f"roofline: warning: ignoring corrupt cache entry {path}; re-tracing\n"
    assert len(frontend.calls) == 2
    assert json.loads(path.read_text()) == json.loads(good)  # rewritten whole
    resolve.resolve("timm:fake_net")
    assert len(frontend.calls) == 2 and capsys.readouterr().err == ""


@pytest.mark.parametrize("where", ["under_a_file", "is_a_file"])
def test_an_unwritable_cache_dir_warns_once_and_the_command_goes_on(
    tmp_path, monkeypatch, frontend, capsys, where
):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory")
    # A file in the way fails for root too, unlike a directory without write permission.
    monkeypatch.setenv("ROOFLINE_CACHE_DIR", str(blocker / "ir" if where == "under_a_file" else blocker))
    monkeypatch.setattr(cache, "_warned", set())
    assert resolve.resolve("timm:fake_net").name == "fake_net"
    assert resolve.resolve("timm:other_net").name == "other_net"
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("roofline: warning: not caching traced models: ")
    assert "ROOFLINE_CACHE_DIR" in lines[0]
    assert len(frontend.calls) == 2
    assert blocker.read_text() == "a file, not a directory"


def test_read_only_dir_warns_and_goes_on(cache_dir, frontend, capsys):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only directories")
    cache_dir.mkdir()
    cache_dir.chmod(0o555)
    try:
        assert resolve.resolve("timm:fake_net").name == "fake_net"
    finally:
        cache_dir.chmod(0o755)
    assert "not caching traced models" in capsys.readouterr().err and entries(cache_dir) == []


def test_cache_false_neither_reads_nor_writes(cache_dir, frontend):
    resolve.resolve("timm:fake_net", cache=False)
    assert entries(cache_dir) == []
    resolve.resolve("timm:fake_net")
    (name,) = entries(cache_dir)
    before = (cache_dir / name).stat().st_mtime_ns
    resolve.resolve("timm:fake_net", cache=False)
    assert len(frontend.calls) == 3 and (cache_dir / name).stat().st_mtime_ns == before


def test_zoo_model_at_another_resolution_is_cached(cache_dir, frontend):
    assert resolve.resolve("resnet18") is zoo.load("resnet18")  # the zoo itself: no trace, no entry
    assert entries(cache_dir) == []
    resolve.resolve("resnet18", 160)
    resolve.resolve("resnet18", 160)
    assert frontend.calls == [("timm", "resnet18", 160, False)]


def test_reparam_zoo_model_retraces_from_timm_and_other_sources_refuse(cache_dir, frontend, tmp_path):
    resolve.resolve("repvgg_a2", reparam=True)
    resolve.resolve("repvgg_a2", reparam=True)
    assert frontend.calls == [("timm", "repvgg_a2", None, True)]
    assert resolve.resolve("cifar_vgg16", reparam=True) is zoo.load("cifar_vgg16")  # nothing to fuse
    for spec in ("torchvision:resnet18", str(tmp_path / "net.json"), str(tmp_path / "net.onnx")):
        with pytest.raises(resolve.RooflineError, match="--reparam"):
            resolve.resolve(spec, reparam=True)


def test_entries_get_the_mode_open_gives_under_the_umask(cache_dir, frontend):
    old = os.umask(0o027)
    try:
        resolve.resolve("timm:fake_net")
    finally:
        os.umask(old)
    (name,) = entries(cache_dir)
    assert stat.S_IMODE((cache_dir / name).stat().st_mode) == 0o640
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o750
    assert not [p for p in cache_dir.iterdir() if p.name.startswith(".")]  # no temp file left


def test_cache_dir_follows_roofline_then_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("ROOFLINE_CACHE_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("ROOFLINE_CACHE_DIR")
    assert cache.cache_dir() == tmp_path / "xdg" / "roofline" / "ir"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")  # invalid per the XDG spec: ignored
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "roofline" / "ir"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "roofline" / "ir"


def test_entry_names_are_safe_file_names(cache_dir, versions):
    key = cache.cache_key("timm", "hf-hub:org/../model name", None, False)
    path = cache.entry_path(key)
    assert path.parent == cache_dir and "/" not in path.name and " " not in path.name
    assert path != cache.entry_path(cache.cache_key("timm", "hf-hub:org/../model_name", None, False))


def test_cli_no_cache_and_reparam_reach_resolve(cache_dir, frontend, capsys):
    assert main(["analyze", "timm:fake_net", "--summary", "--no-cache"]) == 0
    assert entries(cache_dir) == []
    assert main(["analyze", "timm:fake_net", "--summary", "--reparam"]) == 0
    assert main(["batch-sweep", "timm:fake_net", "--reparam"]) == 0
    assert frontend.calls == [("timm", "fake_net", None, False), ("timm", "fake_net", None, True)]
    assert main(["analyze", "torchvision:resnet18", "--reparam"]) == 2
    assert "--reparam applies to timm models" in capsys.readouterr().err


def test_a_hit_imports_no_torch(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("timm")
    env = {**os.environ, "ROOFLINE_CACHE_DIR": str(tmp_path / "ir")}
    code = (
        "from roofline.model.resolve import resolve; net = resolve('timm:resnet18'); import sys; "
        "assert 'torch' not in sys.modules and 'timm' not in sys.modules, 'imported torch'; "
        "print(net.flops())"
    )
    cold = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert cold.returncode != 0 and "imported torch" in cold.stderr  # the miss traced, with torch
    warm = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert warm.returncode == 0, warm.stderr
    assert int(warm.stdout) == zoo.load("resnet18").flops()
