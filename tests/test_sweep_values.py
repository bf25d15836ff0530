"""A sweep's cell shows the metric of its configuration: for every experiment family, the median a cell reports
equals the median, over the same seeds, of the metric the same configuration gives when it is run directly
(not only "the sweep finishes"). The ResNet case caught runs recorded without their run label (0 runs per cell)."""

from __future__ import annotations

import numpy as np
import pytest

from engine import registry
from engine.core.recording import Recorder
from engine.resnet.config import RunSpec
from engine.store import Store
from engine.sweeps import execute as sweep_exec
from engine.sweeps import grid as sweeps


def _diagonal():
    base = registry.get("diagonal").PRESETS["fig2"].config
    return base.replace(steps=2001, runs=base.runs[:2], checkpoints=10)


def _relu1d():
    return registry.get("relu1d").PRESETS["fig4"].config.replace(steps=1500, checkpoints=10, snapshots=2)


def _teacher_student():
    return registry.get("teacher_student").PRESETS["fig5"].config.replace(steps=1500, checkpoints=10)


def _resnet():
    return registry.get("resnet").PRESETS["cpu-demo"].config.replace(
        width=4, epochs=1, eval_every=10, sparsity_images=128, device="cpu",
        runs=(RunSpec("small", "constant", 0.05), RunSpec("large, 50%", "exp-warmup", 0.3, 0.5)))


CASES = [  # experiment, preset, base config, axis, the metric a cell shows
    ("diagonal", "fig2", _diagonal, "runs.1.lr=0.2,0.25", "test_loss"),
    ("relu1d", "fig4", _relu1d, "runs.1.lr=0.0001,0.0002", "train_loss"),
    ("teacher_student", "fig5", _teacher_student, "runs.1.lr=0.15,0.2", "test_loss"),
    ("resnet", "cpu-demo", _resnet, "runs.1.lr=0.2,0.3", "test_error"),
]


def direct_median(experiment: str, config, run_name: str, metric: str) -> float:
    """The configuration run directly (no sweep, no cache): the median over its seeds of the run's final metric."""
    rec = Recorder(experiment, config.to_dict())
    registry.get(experiment).run(config, rec, None)
    values = [r["final"][metric] for r in rec.view()["runs"] if r["label"] == run_name and r["status"] == "done"]
    assert len(values) == 2, rec.view()["runs"]
    return float(np.median(values))


@pytest.mark.parametrize("experiment, preset, base, axis, metric", CASES, ids=[c[0] for c in CASES])
def test_a_cell_shows_the_metric_of_its_configuration_run_directly(tmp_path, experiment, preset, base, axis, metric):
    sweep = sweeps.build(experiment, preset, axes=[axis], seeds=2, metrics=[metric], run=1, base=base())
    cells, stats = sweep_exec.execute(sweep, Store(tmp_path), workers=1)
    assert stats["failed"] == 0 and len(cells) == 2
    for cell, config in zip(cells, sweep.configs(), strict=True):
        assert cell["runs"] == 2, cell  # both seeds of the sweep's run are counted
        assert cell["metrics"][metric]["median"] == direct_median(experiment, config, sweep.run_name(), metric)
