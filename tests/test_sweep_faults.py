"""Sweeps under faults (issue 19), as a scheduler's user meets them: Ctrl-C, SIGTERM and kill -9 of the CLI stop a
local sweep at once, keep every finished point and leave no process behind; a real `dask scheduler` and
`dask worker` started as README says run a sweep, a scheduler without the engine is refused before any point, and
a cluster whose workers are all gone is reported and given up on after a bounded wait; bad input is refused in one
line before any work; the counts printed are those of this invocation."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from engine import registry
from engine.__main__ import main
from engine.store import Store
from engine.sweeps import cluster
from engine.sweeps import execute as sweep_exec
from engine.sweeps import grid as sweeps
from engine.sweeps.point import run_point

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, str(ROOT / "tests" / "sweep_cli.py"), "sweep", "sleepy", "--preset", "default"]
# 6 points of about a second each on 2 local workers
SLOW_POINTS = ["--axis", "tag=1:6:6", "--set", "steps=5", "--set", "delay=0.2", "--workers", "2"]
DEADLINE = 60.0  # seconds a poll loop waits for something that takes one or two


@pytest.fixture
def sleepy(monkeypatch):
    """The test experiment, registered for in-process calls of the CLI."""
    monkeypatch.setitem(registry.MODULES, "sleepy", "tests.sleepy_experiment")
    monkeypatch.setitem(sweeps.METRICS, "sleepy", ("train_loss",))


def start(args: list[str], cache: Path, **kwargs) -> subprocess.Popen:
    """The CLI in its own session, with Ctrl-C's default action (a test runner may have started us ignoring it)."""
    return subprocess.Popen([*CLI, *args, "--cache-dir", str(cache)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kwargs)


def wait_for(condition, what: str, deadline: float = DEADLINE):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def stored_points(cache: Path) -> int:
    """Results in the cache folder, read without opening the store for writing (the CLI is writing it)."""
    import sqlite3

    db = cache / "results" / "cache.db"
    if not db.exists():
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute("SELECT COUNT(*) FROM Cache").fetchone()[0]
    except sqlite3.OperationalError:  # the tables are not made yet
        return 0
    finally:
        con.close()


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


# ----------------------------------------------------------------------------- interrupts and kills
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_stops_a_local_sweep_keeps_its_points_and_leaves_no_process(tmp_path, sig, code):
    cache = tmp_path / "cache"
    cli = start(SLOW_POINTS, cache)
    wait_for(lambda: stored_points(cache) >= 1, "a first stored point")
    children = psutil.Process(cli.pid).children(recursive=True)
    assert children  # the local workers (and loky's resource tracker)
    cli.send_signal(sig)
    out, err = cli.communicate(timeout=DEADLINE)  # a deadline, not the 2 s the issue asks (the CPUs are shared)
    assert cli.returncode == code, err[-2000:]
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("interrupted:")]
    assert len(lines) == 1 and "run the same command again" in lines[0]
    stored = int(re.search(r"interrupted: (\d+) of 6 points are stored", lines[0]).group(1))
    assert stored >= 1 and stored == stored_points(cache)
    wait_for(lambda: not alive(children), "the workers to end", deadline=10)
    if sig == signal.SIGINT:  # the rerun computes only what was missing
        again = start(SLOW_POINTS, cache)
        out, err = again.communicate(timeout=DEADLINE)
        assert again.returncode == 0, err[-2000:]
        assert f"{6 - stored} points computed, {stored} from the cache, 0 failed" in out


def test_kill_9_of_the_cli_leaves_no_worker_running(tmp_path):
    """loky's workers notice that the sweep's process is gone and end, instead of training the points queued to
    them and idling for loky's timeout (2 minutes)."""
    cache = tmp_path / "cache"
    cli = start(["--axis", "tag=1:6:6", "--set", "steps=100", "--set", "delay=0.2", "--workers", "2"], cache)
    workers = wait_for(lambda: [p for p in psutil.Process(cli.pid).children(recursive=True)
                                if "popen_loky_posix" in " ".join(p.cmdline())] or None, "the workers")
    children = psutil.Process(cli.pid).children(recursive=True)
    cli.kill()
    cli.wait(timeout=DEADLINE)
    wait_for(lambda: not alive(children), "every worker and resource tracker to end", deadline=15)
    assert workers


# ----------------------------------------------------------------------------- a real Dask cluster
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dask(*args: str, cwd: Path, engine: bool = True) -> subprocess.Popen:
    """`dask ...` as README says: from a checkout with PYTHONPATH=$PWD (engine=False: a node without the engine,
    started elsewhere with no PYTHONPATH)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if engine:
        env["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen(["dask", *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def scheduler(tmp_path: Path, engine: bool = True) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = dask("scheduler", "--host", "127.0.0.1", "--port", str(port), "--dashboard-address", "127.0.0.1:0",
                cwd=ROOT if engine else tmp_path, engine=engine)
    address = f"tcp://127.0.0.1:{port}"
    wait_for(lambda: _listening(port), "the scheduler")
    return proc, address


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def worker(address: str) -> subprocess.Popen:
    return dask("worker", address, "--nthreads", "1", "--nworkers", "1", "--dashboard-address", "127.0.0.1:0",
                cwd=ROOT)


def stop(*procs: subprocess.Popen) -> None:
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # the worker's nanny and its worker process
        except ProcessLookupError:
            pass
        p.wait(timeout=DEADLINE)


def workers_of(address: str) -> int:
    from distributed import Client

    with Client(address, timeout="10s") as client:
        return len(client.nthreads())


def test_readme_cluster_runs_a_sweep_and_a_lost_cluster_stops_it(tmp_path):
    """`dask scheduler` and `dask worker` subprocesses as README says run a sweep through --scheduler; then, with
    every worker killed mid-sweep, the CLI says so in its progress line, waits --worker-wait seconds and stops with
    the finished points stored."""
    sched, address = scheduler(tmp_path)
    work = worker(address)
    try:
        wait_for(lambda: workers_of(address) == 1, "the worker to join")
        cache = tmp_path / "cache"
        cli = start(["--axis", "tag=1:3:3", "--scheduler", address], cache)
        out, err = cli.communicate(timeout=DEADLINE)
        assert cli.returncode == 0, err[-2000:]
        assert "3 points computed, 0 from the cache, 0 failed" in out
        cli = start(["--axis", "tag=1:3:3", "--set", f"fail_tag={10**6}", "--scheduler", address], cache)
        out, err = cli.communicate(timeout=DEADLINE)  # the workers' own machine checks, before any point
        assert cli.returncode == 2 and err.count("\n") == 1
        assert "no Dask worker can run these points" in err and "data is not on this machine" in err

        cli = start(["--axis", "tag=11:16:6", "--set", "steps=10", "--set", "delay=0.2", "--scheduler", address,
                     "--worker-wait", "3"], cache)
        wait_for(lambda: stored_points(cache) >= 5, "a first point of the second sweep")  # (4: the first sweep)
        stop(work)
        out, err = cli.communicate(timeout=DEADLINE)
        assert cli.returncode == 1
        assert "no Dask worker left, waiting" in err
        assert "no Dask worker joined" in out and "stopped" in out and "Traceback" not in err
        computed = int(re.search(r"(\d+) points computed", out).group(1))
        assert computed >= 1 and stored_points(cache) == 4 + computed
    finally:
        stop(work, sched)


def test_a_scheduler_without_the_engine_is_refused_before_any_point(tmp_path):
    """The failure README's old recipe met ("Error during deserialization of the task graph" on every point):
    now one line naming the scheduler, exit 2."""
    sched, address = scheduler(tmp_path, engine=False)
    try:
        cli = start(["--axis", "tag=1:2:2", "--scheduler", address], tmp_path / "cache")
        out, err = cli.communicate(timeout=DEADLINE)
        assert cli.returncode == 2
        assert err.count("\n") == 1 and f"the Dask scheduler at {address} cannot load the engine" in err
        assert stored_points(tmp_path / "cache") == 0
    finally:
        stop(sched)


@pytest.mark.parametrize("address", ["bogus", "tcp://127.0.0.1", "tls://", "tls://127.0.0.1:8786",
                                     "tcp://127.0.0.1:99999", "http://127.0.0.1:8786", "tcp://:8786", "FREE"])
def test_a_bad_scheduler_address_is_one_line_and_exit_2(address, capsys, monkeypatch, sleepy):
    monkeypatch.setattr(cluster, "CONNECT_SECONDS", 1.0)
    address = f"tcp://127.0.0.1:{free_port()}" if address == "FREE" else address  # nothing listens there
    assert main(["sweep", "sleepy", "--preset", "default", "--axis", "tag=1,2", "--scheduler", address]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --scheduler")


def test_a_worker_result_that_is_not_a_point_fails_that_point_only(tmp_path, monkeypatch, sleepy):
    from tests.sleepy_experiment import SleepyConfig

    sweep = sweeps.Sweep("sleepy", "default", SleepyConfig(), (sweeps.Axis("tag", (1, 2, 3, 4)),),
                         metrics=("train_loss",))
    good = run_point("sleepy", "tests.sleepy_experiment", sweep.configs()[3].to_dict())
    answers = ["not a dict", dict(good, result={"runs": "no"}), dict(good, engine_version="old"), good]

    def fake(experiment, items, workers, should_stop):
        for (i, _), answer in zip(items, answers):
            yield i, "done", answer, ""

    monkeypatch.setattr(sweep_exec, "_local", fake)
    cells, stats = sweep_exec.execute(sweep, Store(tmp_path))
    assert [c["status"] for c in cells] == ["failed", "failed", "failed", "done"]
    assert "returned str data" in cells[0]["message"] and "engine version old" in cells[2]["message"]
    assert stats["computed"] == 1 and stats["failed"] == 3


# ----------------------------------------------------------------------------- bad input, refused before work
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("args, message", [
    (["run", "sweep", "--set", "sweep={}"], "sweep: experiment, preset, base, axes missing"),
    (["run", "sweep", "--set", "sweep=[]"], "sweep: expected an object"),
    (["run", "sweep", "--set", "sweep=null"], "sweep: expected an object"),
    (["run", "sweep", "--set", 'sweep={"experiment": "diagonal", "preset": "fig2", "base": {}}'], "axes missing"),
    (["run", "sweep", "--set", 'sweep={"experiment": "diagonal", "preset": "fig2", "base": {}, "axes": []}'],
     "1 or 2 axes"),
    (["run", "sweep", "--set", "sweep=" + DEEP], "sweep: nested deeper than"),
    (["run", "diagonal_edge", "--set", "window_runs=" + DEEP], "window_runs: nested deeper than"),
    (["run", "diagonal_edge", "--set", 'window_runs=[{"name": "a"}, {"name": "a"}]'], "window_runs: names must differ"),
    (["sweep", "diagonal", "--preset", "fig2", "--axis", "runs.0.lr=0.1,0.2", "--seeds", "0"], "--seeds 0"),
    (["sweep", "diagonal", "--preset", "fig2", "--axis", "runs.0.lr=0.1,0.2", "--seeds", "١٠"], "--seeds '١٠'"),
    (["sweep", "diagonal", "--preset", "fig2", "--axis", "runs.0.lr=0.1,0.٢"], "ASCII"),
    (["sweep", "diagonal", "--preset", "fig2", "--axis", "runs.0.lr=0.1,0.2", "--stuck-above", "nan"],
     "--stuck-above nan"),
    (["sweep", "diagonal", "--preset", "fig2", "--axis", "runs.0.lr=0.1,0.2", "--stuck-above", "inf"],
     "--stuck-above inf"),
    (["sweep", "bouncing", "--preset", "prop3", "--axis", "eta=0.1,0.2", "--metric", "bogus"], "metric 'bogus'"),
    (["sweep", "bouncing", "--preset", "prop3", "--axis", "eta=0.1,0.2", "--run", "-1"], "no runs table"),
    (["sweep", "sweep", "--preset", "map-fig2", "--axis", "workers=1,2"], "sweep cannot be swept"),
    (["sweep", "resnet", "--preset", "map-cpu-demo", "--set", "dataset=cifar10", "--set", "data_dir=/etc"],
     "outside the data root"),
])
def test_bad_input_is_one_line_and_exit_2_before_any_work(args, message, capsys, tmp_path):
    assert main([*args, "--cache-dir", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert stored_points(tmp_path / "cache") == 0


def test_a_sweep_job_has_the_machine_checks_of_its_points(tmp_path, capsys):
    """`run sweep` and the sweep page (which asks registry.preflight before offering Run) refuse a grid whose data
    is missing, as `sweep` does, before any point."""
    from engine.core.config import with_settings
    from engine.sweeps.experiment import job_config

    plan = sweeps.build("resnet", "map-cpu-demo")
    plan = sweeps.build("resnet", "map-cpu-demo", base=with_settings(plan.base, {"dataset": "cifar10",
                                                                                 "data_dir": "/etc"}))
    assert "outside the data root" in registry.preflight("sweep", job_config(plan))
    assert main(["run", "sweep", "--set", f"sweep={sweeps.dumps(plan)}", "--cache-dir", str(tmp_path)]) == 2
    assert "outside the data root" in capsys.readouterr().err
    assert registry.preflight("sweep", job_config(plan, scheduler="tcp://127.0.0.1:8786")) is None  # asked there


def test_a_link_nested_too_deep_is_ignored_with_a_note():
    from engine.diagonal.config import DiagonalConfig
    from ui.links import read_changes

    data, note = read_changes('{"steps":' + DEEP + "}", DiagonalConfig, "diag_set")
    assert data == {} and "diag_set" in note


# ----------------------------------------------------------------------------- honest status
def test_a_sweep_whose_points_all_failed_is_not_done_and_names_its_log(tmp_path, capsys, sleepy):
    cache = tmp_path / "cache"
    args = ["sweep", "sleepy", "--preset", "default", "--axis", "tag=1,2", "--set", "fail=true", "--workers", "2",
            "--cache-dir", str(cache)]
    assert main(args) == 1
    out, err = capsys.readouterr()
    assert "status: failed" in out and "0 points computed, 0 from the cache, 2 failed" in out
    assert "Traceback" not in err
    log_line = [ln for ln in err.splitlines() if ln.startswith("details of what failed: ")]
    assert len(log_line) == 1
    assert "RuntimeError: boom" in Path(log_line[0].split(": ", 1)[1]).read_text()


def test_a_failed_run_prints_one_line_and_logs_its_traceback(tmp_path, capsys, sleepy):
    assert main(["run", "sleepy", "--set", "fail=true", "--quiet", "--cache-dir", str(tmp_path / "cache")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("details of what failed: ") and err.count("\n") == 1
    assert "RuntimeError: boom" in Path(err.split(": ", 1)[1].strip()).read_text()


def test_a_sweep_from_the_cache_reports_what_this_invocation_did(tmp_path, capsys, sleepy):
    args = ["sweep", "sleepy", "--preset", "default", "--axis", "tag=1,2,3", "--workers", "2",
            "--cache-dir", str(tmp_path / "cache")]
    assert main(args) == 0
    assert "3 points computed, 0 from the cache" in capsys.readouterr().out
    assert main(args) == 0
    assert "0 points computed, 3 from the cache" in capsys.readouterr().out


# ----------------------------------------------------------------------------- late failures
def test_a_full_disk_at_the_json_write_is_one_line_and_the_result_stays_cached(tmp_path, capsys, monkeypatch,
                                                                                 sleepy):
    target = tmp_path / "out.json"
    target.write_text('{"old": true}')
    args = ["sweep", "sleepy", "--preset", "default", "--axis", "tag=1,2", "--workers", "2", "--json", str(target),
            "--cache-dir", str(tmp_path / "cache")]

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as m:
        m.setattr(os, "fsync", full)
        assert main([*args, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and "Traceback" not in err
    assert json.loads(target.read_text()) == {"old": True}  # the old file is whole
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    assert main(args) == 0
    assert "0 points computed, 2 from the cache" in capsys.readouterr().out
    assert len(json.loads(target.read_text())["cells"]) == 2


# ----------------------------------------------------------------------------- the store
@pytest.fixture(scope="module")
def diagonal_result():
    """A finished diagonal result: 2 runs x 2 seeds, and its key."""
    from engine.core.recording import Recorder
    from engine.diagonal import experiment as diagonal

    fig2 = diagonal.PRESETS["fig2"].config
    config = fig2.replace(steps=201, seeds=2, runs=fig2.runs[:2], checkpoints=20)
    rec = Recorder("diagonal", config.to_dict())
    diagonal.run(config, rec, None)
    rec.close("done")
    return config.key("diagonal"), rec.view()


def damaged(result: dict, how: str) -> dict:
    out = json.loads(json.dumps(result))
    if how == "runs cut to one":
        out["runs"] = out["runs"][:1]
    elif how == "a run of another config":
        out["runs"][0]["config"]["name"] = "another run"
    elif how == "history values as text":
        out["runs"][0]["history"]["train_loss"] = [str(v) for v in out["runs"][0]["history"]["train_loss"]]
    elif how == "histories of unequal length":
        out["runs"][1]["history"]["test_loss"].pop()
    return out


@pytest.mark.parametrize("how", ["runs cut to one", "a run of another config", "history values as text",
                                 "histories of unequal length"])
def test_an_inconsistent_stored_result_is_a_miss(tmp_path, diagonal_result, how):
    key, result = diagonal_result
    store = Store(tmp_path)
    assert store.put(key, result) and store.get(key) == result
    assert store.put(key, damaged(result, how))
    assert store.get(key) is None


def test_a_bad_size_limit_is_reset_with_a_warning(tmp_path, diagonal_result):
    import sqlite3

    key, result = diagonal_result
    Store(tmp_path)._cache.close()
    with sqlite3.connect(tmp_path / "results" / "cache.db") as db:
        db.execute("UPDATE Settings SET value = 'lots' WHERE key = 'size_limit'")
    store = Store(tmp_path)
    assert "size_limit='lots' is not a size" in store.warning
    assert store.put(key, result) and store.get(key) == result


def test_a_locked_cache_is_waited_for_briefly_then_reported(tmp_path, monkeypatch, diagonal_result):
    import sqlite3

    import engine.store as store_module

    monkeypatch.setattr(store_module, "LOCK_WAIT_SECONDS", 0.5, raising=False)
    key, result = diagonal_result
    Store(tmp_path)._cache.close()
    holder = sqlite3.connect(tmp_path / "results" / "cache.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        opened = []
        threading.Thread(target=lambda: opened.append(Store(tmp_path)), daemon=True).start()
        store = wait_for(lambda: opened and opened[0], "the store to give up", deadline=20)  # diskcache waits 60 s
        assert "database is locked" in store.warning
        assert store.get(key) is None and not store.put(key, result)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert Store(tmp_path).put(key, result)
