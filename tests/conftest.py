"""Shared fixtures: every test gets its own empty result cache."""

import pytest


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Point the engine's disk cache at a fresh folder for each test."""
    monkeypatch.setenv("SPARSE_SGD_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"
