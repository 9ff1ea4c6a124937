"""Model tests trace into a cache of their own, never the user's (``roofline.model.cache``)."""

import pytest


@pytest.fixture(autouse=True)
def _own_ir_cache(tmp_path, monkeypatch):
    # A fresh directory per test: a test that traces a model traces it, whatever ran before.
    monkeypatch.setenv("ROOFLINE_CACHE_DIR", str(tmp_path / "ir-cache"))
