"""Job manager: background runs, sharing, cache hits, cancel, divergence, failure, the long-job queue."""

import time

import pytest

from engine import registry
from engine.jobs import JobManager
from engine.store import Store
from tests import sleepy_experiment as sleepy


@pytest.fixture
def manager(tmp_path, monkeypatch):
    monkeypatch.setitem(registry.MODULES, "sleepy", "tests.sleepy_experiment")
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
    started = len(sleepy.STARTED)
    cached = fresh.submit("sleepy", config)
    assert cached.from_cache and cached.status == "done" and cached.finished  # at once: nothing ran again
    assert len(sleepy.STARTED) == started
    assert cached.view()["runs"][0]["history"] == first.view()["runs"][0]["history"]


def test_cancel_stops_at_the_next_checkpoint_and_keeps_the_history(manager):
    config = sleepy.SleepyConfig(steps=300, delay=0.01, tag=2)
    job = manager.submit("sleepy", config)
    assert _wait_for(lambda: bool(job.view()["runs"]) and len(job.view()["runs"][0]["history"]["step"]) >= 5)
    job.cancel()
    assert job.wait(30)
    view = job.view()
    assert view["status"] == "cancelled"
    assert 5 <= len(view["runs"][0]["history"]["step"]) < 300
    # a cancelled run is not cached, and Run again (the same config, hence the same key) starts it afresh
    assert manager.store.get(job.key) is None
    started = sleepy.STARTED.count(2)
    again = manager.submit("sleepy", config)
    assert again is not job and again.key == job.key and not again.from_cache
    assert again.wait(30) and again.status == "done"
    assert sleepy.STARTED.count(2) == started + 1
    assert again.view()["runs"][0]["history"]["step"] == list(range(300))  # from step 0, to the end
    assert manager.store.get(job.key) is not None  # the finished run is cached


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
    # the first job runs until cancelled, so the others' places hold however slow the machine is
    configs = [_slow(100, "long")] + [sleepy.SleepyConfig(steps=10, delay=0.0, lane_name="long", tag=100 + k)
                                      for k in (1, 2)]
    jobs = [manager.submit("sleepy", c) for c in configs]
    assert _wait_for(lambda: jobs[0].status == "running")
    assert [j.queue_position for j in jobs[1:]] == [1, 2]
    assert [j.status for j in jobs[1:]] == ["queued", "queued"]
    jobs[2].cancel()  # leaving the queue
    assert jobs[2].status == "cancelled"
    assert jobs[1].queue_position == 1 and jobs[1].status == "queued"
    jobs[0].cancel()
    assert jobs[0].wait(30) and jobs[1].wait(30) and jobs[1].status == "done"
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


# ----------------------------------------------------------------------------- bounded work (issue 8, section 1)
def _slow(tag: int, lane: str = "quick") -> sleepy.SleepyConfig:
    return sleepy.SleepyConfig(steps=1000, delay=0.01, lane_name=lane, tag=tag)  # ~10 s unless cancelled


def _wait_for(predicate, seconds: float = 10.0) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def _cancel_all(jobs) -> None:
    for job in jobs:
        job.cancel()
    assert all(job.wait(5) for job in jobs)


def test_fifty_submissions_run_on_a_bounded_pool_with_queue_places(tmp_path, monkeypatch):
    import threading

    from engine.jobs import QueueFull

    monkeypatch.setitem(registry.MODULES, "sleepy", "tests.sleepy_experiment")
    manager = JobManager(Store(tmp_path / "store"), workers=2, quick_queue=32)
    before = threading.active_count()
    jobs, refused = [], []
    lock = threading.Lock()

    def submit(k: int) -> None:  # 50 visitors at once
        try:
            job = manager.submit("sleepy", _slow(300 + k))
            with lock:
                jobs.append(job)
        except QueueFull as exc:
            with lock:
                refused.append(str(exc))

    submitters = [threading.Thread(target=submit, args=(k,)) for k in range(50)]
    for t in submitters:
        t.start()
    for t in submitters:
        t.join()
    try:
        assert len(jobs) == 34 and len(refused) == 16
        assert refused[0] == "the quick queue is full (32 jobs waiting): try again when one finishes"
        assert _wait_for(lambda: sum(j.status == "running" for j in jobs) == 2)
        assert threading.active_count() <= before + 2  # two workers, not a thread per job
        queued = sorted(j.queue_position for j in jobs if j.status == "queued")
        assert queued == list(range(1, 33))  # "Queued: place k"
        assert [j.view()["queue_position"] for j in jobs if j.status == "running"] == [None, None]
    finally:
        _cancel_all(jobs)


def test_quick_jobs_start_in_submission_order_and_a_cancelled_queued_job_never_runs(manager, tmp_path):
    manager = JobManager(Store(tmp_path / "fifo"), workers=1)
    first = manager.submit("sleepy", _slow(400))
    assert _wait_for(lambda: first.status == "running")
    rest = [manager.submit("sleepy", sleepy.SleepyConfig(steps=2, delay=0.0, tag=401 + k)) for k in range(3)]
    assert [j.queue_position for j in rest] == [1, 2, 3]
    rest[1].cancel()  # dropped at once, before it starts
    assert rest[1].finished and rest[1].status == "cancelled"
    assert [rest[0].queue_position, rest[2].queue_position] == [1, 2]
    first.cancel()
    assert all(j.wait(5) for j in (first, rest[0], rest[2]))
    assert [t for t in sleepy.STARTED if 400 <= t <= 403] == [400, 401, 403]


def test_the_long_lane_queue_is_bounded_too(manager, tmp_path):
    from engine.jobs import QueueFull

    manager = JobManager(Store(tmp_path / "long"), long_queue=2)
    jobs = [manager.submit("sleepy", _slow(500 + k, "long")) for k in range(3)]
    try:
        assert _wait_for(lambda: jobs[0].status == "running")
        assert [j.queue_position for j in jobs] == [None, 1, 2]
        with pytest.raises(QueueFull, match=r"the long queue is full \(2 jobs waiting\): try again when one finishes"):
            manager.submit("sleepy", _slow(503, "long"))
        assert manager.submit("sleepy", jobs[1].config) is jobs[1]  # the same config still joins its job
    finally:
        _cancel_all(jobs)


def test_finished_jobs_leave_memory_but_not_the_disk_cache_and_running_ones_stay(manager, tmp_path):
    manager = JobManager(Store(tmp_path / "lru"), keep_finished=2)
    running = manager.submit("sleepy", _slow(600))
    done = []
    for k in range(4):
        job = manager.submit("sleepy", sleepy.SleepyConfig(steps=2, delay=0.0, tag=601 + k))
        assert job.wait(5)
        done.append(job)
    try:
        assert set(manager.jobs()) == {running, done[2], done[3]}  # the two most recent finished, and the running one
        again = manager.find("sleepy", done[0].config)  # read back from the disk cache
        assert again is not done[0] and again.from_cache and again.status == "done"
        assert again.view()["runs"][0]["history"] == done[0].view()["runs"][0]["history"]
        assert set(manager.jobs()) == {running, done[3], again}
    finally:
        _cancel_all([running])


def test_only_experiments_that_checkpoint_get_a_work_folder(manager, monkeypatch):
    job = manager.submit("sleepy", sleepy.SleepyConfig(steps=2, tag=700))
    assert job.wait(5) and job.status == "done"
    work = manager.store.dir / "work"
    assert not (work / job.key).exists()
    seen = []
    plain_run = sleepy.run
    monkeypatch.setattr(sleepy, "CHECKPOINTS", True, raising=False)
    monkeypatch.setattr(sleepy, "run", lambda c, rec, workdir=None: (seen.append(workdir), plain_run(c, rec, workdir)))
    job = manager.submit("sleepy", sleepy.SleepyConfig(steps=2, tag=701))
    assert job.wait(5) and job.status == "done"
    assert seen[0] is not None and seen[0].is_dir() and seen[0].name == job.key


def test_thread_limits_hold_while_a_job_runs_and_not_for_the_process(manager, monkeypatch, tmp_path):
    import threading

    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads() -> set[int]:
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    def fresh_thread_torch_threads() -> int:  # what a thread that never set it gets: the process's setting
        out = []
        t = threading.Thread(target=lambda: out.append(torch.get_num_threads()))
        t.start()
        t.join()
        return out[0]

    seen = {}
    plain_run = sleepy.run

    def run(c, rec, workdir=None):
        seen.update(blas=blas_threads(), torch=torch.get_num_threads())
        plain_run(c, rec, workdir)

    monkeypatch.setattr(sleepy, "run", run)
    torch_before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with threadpool_limits(2, user_api="blas"):
            manager = JobManager(Store(tmp_path / "threads"))
            assert blas_threads() == {2}  # making the manager changes nothing
            job = manager.submit("sleepy", sleepy.SleepyConfig(steps=2, tag=800))
            assert job.wait(5) and job.status == "done"
            assert seen == dict(blas={1}, torch=1)  # one thread each while the job runs
            assert blas_threads() == {2} and fresh_thread_torch_threads() == 2  # restored after it
    finally:
        torch.set_num_threads(torch_before)


def test_the_eta_comes_from_the_recent_rate_not_from_a_slow_start(monkeypatch):
    """A job that spent 60 s loading data, then advances 1% per second, has about 40 s left at 60%; the
    elapsed/progress estimate would say 80 s."""
    from engine.core.recording import Recorder
    from engine.jobs import Job

    job = Job("k", "sleepy", None, Recorder("sleepy", {}))
    clock = {"t": 1000.0}
    monkeypatch.setattr("engine.jobs.time.time", lambda: clock["t"])
    eta = None
    for second in range(61):  # 0..60 s of 1%/s after a 60 s start
        clock["t"] = 1060.0 + second
        eta = job._eta(dict(progress=second / 100, started=1000.0))
    assert eta is not None and abs(eta - 40.0) < 1.0
