"""Job manager: background runs, sharing, cache hits, cancel, divergence, failure, the long-job queue."""

import time

import pytest

from engine import experiments
from engine.jobs import JobManager
from engine.store import Store
from tests import sleepy_experiment as sleepy


@pytest.fixture
def manager(tmp_path, monkeypatch):
    monkeypatch.setitem(experiments.MODULES, "sleepy", "tests.sleepy_experiment")
    return JobManager(Store(tmp_path / "store"))


def test_run_completes_and_records_history(manager):
    job = manager.submit("sleepy", sleepy.SleepyConfig(steps=4))
    assert job.wait(5)
    view = job.view()
    assert view["status"] == "done" and view["progress"] == 1.0
    assert view["runs"][0]["history"]["step"] == [0, 1, 2, 3]
    assert view["runs"][0]["final"]["train_loss"] == pytest.approx(0.25)


def test_same_config_shares_one_job_and_a_finished_one_comes_from_the_cache(manager, tmp_path):
    config = sleepy.SleepyConfig(steps=20, delay=0.01, tag=1)
    first = manager.submit("sleepy", config)
    second = manager.submit("sleepy", config)  # e.g. a second browser tab
    assert first is second
    assert first.wait(5)
    fresh = JobManager(Store(tmp_path / "store"))  # the app restarted
    start = time.time()
    cached = fresh.submit("sleepy", config)
    assert cached.from_cache and cached.status == "done"
    assert time.time() - start < 1.0
    assert cached.view()["runs"][0]["history"] == first.view()["runs"][0]["history"]


def test_cancel_stops_within_a_second_and_keeps_the_history(manager):
    job = manager.submit("sleepy", sleepy.SleepyConfig(steps=1000, delay=0.01, tag=2))
    time.sleep(0.3)
    job.cancel()
    start = time.time()
    assert job.wait(1.0)
    assert time.time() - start < 1.0
    view = job.view()
    assert view["status"] == "cancelled"
    assert 0 < len(view["runs"][0]["history"]["step"]) < 1000
    # a cancelled run is not cached, and Run again starts it afresh
    again = manager.submit("sleepy", sleepy.SleepyConfig(steps=3, delay=0.0, tag=2).replace(steps=1000, delay=0.0))
    assert again.wait(5) and again.status == "done"


def test_divergence_is_a_result_not_an_error(manager):
    job = manager.submit("sleepy", sleepy.SleepyConfig(steps=10, diverge_at=3, tag=3))
    assert job.wait(5)
    view = job.view()
    assert view["status"] == "done"
    run = view["runs"][0]
    assert run["status"] == "diverged" and "step 3" in run["message"]
    assert run["history"]["step"] == [0, 1, 2, 3]
    assert run["history"]["train_loss"][-1] is None  # inf is stored as null (JSON)


def test_failure_is_reported_with_its_message(manager):
    job = manager.submit("sleepy", sleepy.SleepyConfig(fail=True, tag=4))
    assert job.wait(5)
    assert job.status == "failed" and "boom" in job.view()["message"]


def test_long_jobs_queue_one_at_a_time_with_their_place(manager):
    configs = [sleepy.SleepyConfig(steps=10, delay=0.03, lane_name="long", tag=100 + k) for k in range(3)]
    jobs = [manager.submit("sleepy", c) for c in configs]
    time.sleep(0.1)
    assert jobs[0].status == "running"
    assert [j.queue_position for j in jobs[1:]] == [1, 2]
    assert [j.status for j in jobs[1:]] == ["queued", "queued"]
    jobs[2].cancel()  # leaving the queue
    assert jobs[2].status == "cancelled"
    assert jobs[1].wait(5)
    assert [sleepy.STARTED.count(100 + k) for k in range(3)] == [1, 1, 0]


def test_a_corrupt_cache_entry_is_a_miss(tmp_path):
    store = Store(tmp_path / "s")
    store._cache.set("k", b"not a result")
    assert store.get("k") is None
    store._cache.set("k2", dict(engine_version="0", result=dict(runs=[])))
    assert store.get("k2") is None


def test_restart_discards_saved_work_but_a_plain_rerun_keeps_it(manager):
    config = sleepy.SleepyConfig(steps=3, tag=5)
    job = manager.submit("sleepy", config)
    assert job.wait(5)
    saved = manager.store.workdir(job.key) / "epoch.pt"
    saved.write_text("checkpoint")
    manager.submit("sleepy", config, use_cache=False).wait(5)  # e.g. Run again after a cancel
    assert saved.exists()
    manager.submit("sleepy", config, use_cache=False, restart=True).wait(5)  # the CLI's --no-cache
    assert not saved.exists()
