"""The cache key covers exactly what can change a result: the code of the modules its experiment imports (comments
and docstrings aside), the library versions, the device kind for torch code, and the config."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.core import version
from engine.diagonal import experiment as diagonal
from engine.relu import relu1d
from engine.relu import teacher_student as ts
from engine.resnet import experiment as resnet
from engine.sweeps import grid as sweeps
from engine.sweeps.experiment import job_config
from engine.toy import bouncing

KEYS = {"diagonal": diagonal.PRESETS["fig2"].config, "relu1d": relu1d.PRESETS["fig4"].config,
        "teacher_student": ts.PRESETS["fig5"].config, "resnet": resnet.PRESETS["cpu-demo"].config,
        "bouncing": bouncing.PRESETS["prop3"].config}


def keys() -> dict[str, str]:
    return {name: config.key(name) for name, config in KEYS.items()}


@pytest.fixture
def engine_copy(tmp_path, monkeypatch):
    """A copy of the engine's sources that the key is computed from (edit it to see what a change does)."""
    copy = tmp_path / "engine"
    shutil.copytree(version.ENGINE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(version, "ENGINE_ROOT", copy)
    return copy


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_the_copy_gives_todays_keys(engine_copy):
    before = {name: config.key(name) for name, config in KEYS.items()}
    version.ENGINE_ROOT = Path(version.__file__).resolve().parent.parent
    assert keys() == before


def test_docstrings_comments_and_formatting_change_no_key(engine_copy):
    before = keys()
    sim = engine_copy / "diagonal" / "sim.py"
    sim.write_text('"""A rewritten module docstring."""\n# a comment the key must not see\n'
                   + sim.read_text().split('"""', 2)[2].replace("\n\n\n", "\n\n\n# and another one\n", 1))
    edit(engine_copy / "core" / "config.py", '"""Base of every experiment\'s config', '"""Every experiment\'s config')
    edit(engine_copy / "resnet" / "training.py", "        self.c, self.spec", "        self.c , self.spec")
    assert keys() == before


def test_a_diagonal_only_change_changes_diagonal_keys_only(engine_copy):
    before = keys()
    edit(engine_copy / "diagonal" / "sim.py", "def ", "def _a_new_helper():\n    return 1\n\n\ndef ")
    after = keys()
    assert after["diagonal"] != before["diagonal"]
    assert {k: v for k, v in after.items() if k != "diagonal"} == {k: v for k, v in before.items() if k != "diagonal"}


def test_a_core_change_reaches_exactly_the_families_that_import_it(engine_copy):
    before = keys()
    edit(engine_copy / "core" / "sparsity.py", "def ", "def _a_new_helper():\n    return 1\n\n\ndef ")
    after = keys()
    changed = {name for name in KEYS if after[name] != before[name]}
    assert changed == {"relu1d", "teacher_student", "resnet"}  # the toy and diagonal nets use no sparsity measure


def test_another_numpy_changes_every_key(monkeypatch):
    before = keys()
    real = version.library_versions
    monkeypatch.setattr(version, "library_versions",
                        lambda names: {**real(names), "numpy": "1.0.0-another"})
    after = keys()
    assert all(after[name] != before[name] for name in KEYS)


def test_torch_and_the_device_count_only_for_code_that_computes_with_torch(monkeypatch):
    assert "torch" not in diagonal.PRESETS["fig2"].config.state()["libraries"]
    assert "torch" not in relu1d.PRESETS["fig4"].config.state()["libraries"]  # numba on the CPU
    assert "torch" in relu1d.PRESETS["fig4"].config.replace(device="cuda").state()["libraries"]
    state = resnet.PRESETS["cpu-demo"].config.state()
    assert "torch" in state["libraries"] and "cuda" in state["libraries"] and state["device"] in ("cpu",) + tuple(
        f"cuda:{n}" for n in [version._cuda_device()] if n)
    before = resnet.PRESETS["cpu-demo"].config.key("resnet")
    monkeypatch.setattr(version, "device_kind", lambda requested: "cuda:Another GPU")
    assert resnet.PRESETS["cpu-demo"].config.key("resnet") != before


def test_a_sweep_key_follows_the_code_of_the_experiment_it_sweeps(engine_copy):
    sweep = job_config(sweeps.build("diagonal", "fig2", axes=["runs.3.lr=0.26:0.28:2"]))
    before = sweep.key("sweep")
    edit(engine_copy / "relu" / "nets.py", "def ", "def _a_new_helper():\n    return 1\n\n\ndef ")
    assert sweep.key("sweep") == before
    edit(engine_copy / "diagonal" / "kernels.py", "def ", "def _a_new_helper():\n    return 1\n\n\ndef ")
    assert sweep.key("sweep") != before
