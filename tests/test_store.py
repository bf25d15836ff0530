"""The result store: keys carry a version derived from the engine's sources."""

from __future__ import annotations

import shutil
from pathlib import Path

import engine
from engine.experiments import diagonal


def test_the_engine_version_changes_with_any_source_file(tmp_path):
    copy = tmp_path / "engine"
    shutil.copytree(Path(engine.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert engine.source_version(copy) == engine.ENGINE_VERSION
    kernels = copy / "diagonal_kernels.py"
    kernels.write_text(kernels.read_text().replace("BLOWUP = 1e6", "BLOWUP = 1e7"))
    assert engine.source_version(copy) != engine.ENGINE_VERSION


def test_a_config_key_depends_on_the_engine_version(monkeypatch):
    key = diagonal.PRESETS["fig2"].config.key("diagonal")
    monkeypatch.setattr("engine.config.ENGINE_VERSION", "other")
    assert diagonal.PRESETS["fig2"].config.key("diagonal") != key
