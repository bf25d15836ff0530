"""Sweeps (issue 7): a grid point is the ordinary config run by its experiment's own run(), bit for bit, wherever
it runs (local processes, a Dask LocalCluster, after a worker dies); points are cached one by one, so a repeated
or cancelled sweep reuses them; bad axes are refused before any work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from engine import registry
from engine.__main__ import main
from engine.core.recording import Recorder
from engine.diagonal import experiment as diagonal
from engine.jobs import JobManager
from engine.store import Store
from engine.sweeps import execute as sweep_exec
from engine.sweeps import grid as sweeps
from engine.sweeps.experiment import job_config

FIG2 = diagonal.PRESETS["fig2"].config
BASE = FIG2.replace(steps=3001, runs=FIG2.runs[:2], checkpoints=20)
AXES = ["runs.1.lr=0.27,0.29", "runs.1.decay_at=0.1,0.5"]


def small_sweep(steps: int = 3001) -> sweeps.Sweep:
    return sweeps.build("diagonal", "fig2", axes=AXES, seeds=2, metrics=["test_loss", "l0_norm"],
                        base=BASE.replace(steps=steps))


def alone(config) -> list[dict]:
    rec = Recorder("diagonal", config.to_dict())
    diagonal.run(config, rec, None)
    return rec.view()["runs"]


def stored_runs(sweep: sweeps.Sweep, store: Store) -> list[list[dict] | None]:
    out = []
    for c in sweep.configs():
        result = store.get(c.key("diagonal"))
        out.append(None if result is None else result["runs"])
    return out


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """The 2 x 2 grid x 2 seeds on local worker processes."""
    sweep = small_sweep()
    store = Store(tmp_path_factory.mktemp("local"))
    cells, stats = sweep_exec.execute(sweep, store, workers=2)
    return sweep, store, cells, stats


def test_points_equal_the_same_configs_run_one_at_a_time(local_sweep):
    sweep, store, cells, stats = local_sweep
    assert stats["computed"] == 4 and stats["failed"] == 0
    assert [c["point"] for c in cells] == sweep.points()
    for config, runs in zip(sweep.configs(), stored_runs(sweep, store), strict=True):
        assert config.seeds == 2 and config.steps == 3001
        assert runs == alone(config)  # histories, finals, statuses: bit for bit
    for cell, runs in zip(cells, stored_runs(sweep, store), strict=True):
        mine = [r for r in runs if r["label"] == BASE.runs[1].name]
        assert cell["runs"] == 2 and cell["diverged"] == sum(r["status"] == "diverged" for r in mine)
        assert set(cell["metrics"]) == {"test_loss", "l0_norm"}


def test_a_repeated_sweep_comes_from_the_cache(local_sweep):
    sweep, store, cells, _ = local_sweep
    again, stats = sweep_exec.execute(sweep, store, workers=2)
    assert stats == dict(computed=0, cached=4, failed=0, notes=[], stopped="")
    assert again == [{k: v for k, v in c.items() if k != "worker"} for c in cells]
    wider = sweeps.build("diagonal", "fig2", axes=["runs.1.lr=0.27,0.28,0.29", AXES[1]], seeds=2,
                         metrics=["test_loss"], base=BASE)
    _, stats = sweep_exec.execute(wider, store, workers=2)
    assert stats["cached"] == 4 and stats["computed"] == 2  # widening the grid reuses the finished points


def test_a_cancelled_sweep_keeps_its_finished_points_and_resumes(tmp_path):
    sweep = small_sweep(steps=400_001)
    store = Store(tmp_path)
    first = []
    cells, stats = sweep_exec.execute(sweep, store, workers=2, on_cell=lambda i, c, s: first.append(i),
                                      should_stop=lambda: bool(first))
    assert 1 <= stats["computed"] < 4 and sum(c is not None for c in cells) == stats["computed"]
    _, resumed = sweep_exec.execute(sweep, store, workers=2)
    assert resumed["cached"] == stats["computed"] and resumed["computed"] == 4 - stats["computed"]


def test_a_sweep_job_reports_progress_cells_and_cancel(tmp_path):
    manager = JobManager(Store(tmp_path))
    job = manager.submit("sweep", job_config(small_sweep(steps=400_001), workers=2))
    while not (job.view()["extras"].get("stats") or {}).get("computed"):
        assert not job.finished
        threading.Event().wait(0.05)
    job.cancel()
    assert job.wait(30)
    view = job.view()
    assert view["status"] == "cancelled" and 0 < view["progress"] < 1
    finished = [c for c in view["extras"]["cells"] if c is not None]
    assert finished and all(c["status"] == "done" for c in finished)


def test_a_failing_point_is_reported_in_its_cell(tmp_path, monkeypatch):
    monkeypatch.setitem(registry.MODULES, "sleepy", "tests.sleepy_experiment")
    from tests.sleepy_experiment import SleepyConfig

    sweep = sweeps.Sweep("sleepy", "default", SleepyConfig(fail_tag=13), (sweeps.Axis("tag", (1, 13, 2)),),
                         metrics=("train_loss",))
    cells, stats = sweep_exec.execute(sweep, Store(tmp_path), workers=2)
    assert [c["status"] for c in cells] == ["done", "failed", "done"] and stats["failed"] == 1
    assert "RuntimeError: boom at tag 13" in cells[1]["message"]
    assert cells[0]["metrics"]["train_loss"]["median"] == pytest.approx(0.2)


# ----------------------------------------------------------------------------- Dask
@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        yield c


def test_a_local_dask_cluster_gives_the_same_points(local_sweep, cluster, tmp_path):
    sweep, store, cells, _ = local_sweep
    dask_store = Store(tmp_path)
    dask_cells, stats = sweep_exec.execute(sweep, dask_store, scheduler=cluster.scheduler_address)
    assert stats["computed"] == 4
    assert stored_runs(sweep, dask_store) == stored_runs(sweep, store)
    assert all(c["worker"].startswith("tcp://") for c in dask_cells)


def test_a_worker_killed_mid_sweep_leaves_the_sweep_complete(local_sweep, cluster, tmp_path):
    from distributed import Client

    sweep = small_sweep(steps=600_001)
    with Client(cluster.scheduler_address) as client:
        pids = client.run(os.getpid)
    killed = []

    def kill_one(i, cell, source):
        if not killed:  # a first point is in: kill a worker while the others train
            os.kill(next(iter(pids.values())), signal.SIGKILL)
            killed.append(i)

    cells, stats = sweep_exec.execute(sweep, Store(tmp_path), scheduler=cluster.scheduler_address, on_cell=kill_one)
    assert killed and stats["computed"] == 4 and all(c["status"] == "done" for c in cells)
    reference, _ = sweep_exec.execute(sweep, Store(tmp_path / "again"), workers=2)
    assert [c["metrics"] for c in cells] == [c["metrics"] for c in reference]


def test_gpu_points_run_only_on_workers_with_the_gpu_resource(cluster, tmp_path):
    """cpu-demo points ask for GPU=1: with a worker that declares it (a `dask worker` process, as on a GPU box),
    they all run there and not on the two plain workers."""
    gpu = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address,
                            "--resources", "GPU=1", "--nthreads", "1", "--no-dashboard", "--name", "gpu-box"],
                           env={**os.environ, "PYTHONPATH": os.getcwd()}, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        from distributed import Client

        with Client(cluster.scheduler_address) as client:
            client.wait_for_workers(3, timeout=60)
            address = next(a for a, w in client.scheduler_info()["workers"].items() if w["name"] == "gpu-box")
        base = registry.get("resnet").PRESETS["cpu-demo"].config
        base = base.replace(epochs=1, width=4, sparsity_images=64, eval_every=1000, runs=base.runs[1:2])
        sweep = sweeps.build("resnet", "cpu-demo", axes=["runs.0.lr=0.25,0.5,0.75"], metrics=["test_error"],
                             base=base)
        cells, stats = sweep_exec.execute(sweep, Store(tmp_path), scheduler=cluster.scheduler_address)
        assert stats["computed"] == 3 and {c["worker"] for c in cells} == {address}
    finally:
        gpu.terminate()
        gpu.wait(30)


# ----------------------------------------------------------------------------- building sweeps, bad input
def test_the_map_fig2_preset_is_the_issue_grid():
    sweep = sweeps.build("diagonal", "map-fig2")
    assert sweep.size == 44 and sweep.seeds == 10
    assert sweep.axes[0].values == tuple(round(0.2 + 0.01 * k, 2) for k in range(11))
    configs = {(c.runs[0].decay_at, c.runs[0].decay_factor) for c in sweep.configs()}
    assert configs == {(0.1, 4.8), (0.3, 3.4), (0.5, 1.5), (0.7, 1.5)}  # decayed as in Fig. 2
    assert all(c.first_seed == 1 and c.seeds == 10 and len(c.runs) == 1 for c in sweep.configs())
    overridden = sweeps.build("diagonal", "map-fig2", axes=["runs.0.lr=0.27,0.28"], seeds=3)
    assert overridden.size == 2 and overridden.seeds == 3


@pytest.mark.parametrize("args, message", [
    (["--preset", "fig2", "--axis", "runs.1.momentum=0:1:3"], "unknown field"),
    (["--preset", "fig2", "--axis", "runs.1.lr=0.2:200:3"], "outside the allowed range"),
    (["--preset", "fig2", "--axis", "runs.1.algorithm=1,2"], "not a numeric setting"),
    (["--preset", "fig2", "--axis", "n=40,80", "--axis", "d=100,200", "--axis", "r=5,10"], "at most 2 axes"),
    (["--preset", "fig2", "--axis", "n=10:109:100", "--axis", "init_scale=0.1:1:11"], "above the limit of 1000"),
    (["--preset", "fig2", "--axis", "runs.9.lr=0.1,0.2"], "run index 9"),
    (["--preset", "fig2", "--axis", "n=10.5,20"], "not an integer"),
    (["--preset", "fig2", "--axis", "runs.1.lr=abc"], "not LO:HI:N"),
    (["--preset", "fig2"], "give one or two --axis"),
    (["--preset", "nope", "--axis", "n=40,80"], "unknown preset 'nope'"),
    (["--preset", "", "--axis", "n=40,80"], "a preset name is needed"),
    (["--preset", "map-fig2", "--metric", "accuracy"], "metric 'accuracy' is not recorded"),
    (["--preset", "map-fig2", "--seeds", "50"], "seeds=50 is outside"),
    (["--preset", "map-fig2", "--json", "/nonexistent-folder/out.json"], "--json"),
    (["--preset", "map-fig2", "--workers", "-1"], "--workers=-1"),
])
def test_bad_axes_exit_2_with_one_line(args, message, capsys):
    assert main(["sweep", "diagonal", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_the_cli_prints_a_table_and_writes_the_json_contract(tmp_path):
    out = tmp_path / "sweep.json"
    proc = subprocess.run([sys.executable, "-m", "engine", "sweep", "diagonal", "--preset", "fig2", "--axis",
                           "runs.1.lr=0.27,0.29", "--seeds", "2", "--set", "steps=2001", "--metric", "l0_norm",
                           "--json", str(out), "--workers", "2", "--cache-dir", str(tmp_path / "c")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "runs.1.lr" in proc.stdout and "2 points computed" in proc.stdout
    import json

    result = json.loads(out.read_text())
    assert {"experiment", "preset", "axes", "seeds", "cells"} <= set(result)
    assert result["axes"] == [{"field": "runs.1.lr", "values": [0.27, 0.29]}] and result["seeds"] == 2
    cell = result["cells"][0]
    assert {"point", "status", "runs", "diverged", "metrics"} <= set(cell)
    assert set(cell["metrics"]["l0_norm"]) == {"median", "p10", "p90"}
