"""Background job manager: runs experiments in daemon threads, shares one job per config,
serves finished configs from the disk cache, and queues long jobs (the GPU) one at a time.

Workers never touch Streamlit; readers poll `Job.view()`.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field

from engine import experiments
from engine.config import Config
from engine.recording import Cancelled, Recorder
from engine.store import Store

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Job:
    """One submitted config: its live record, status and place in the queue."""

    key: str
    experiment: str
    config: Config
    recorder: Recorder
    lane: str = "quick"
    from_cache: bool = False
    submitted: float = field(default_factory=time.time)
    thread: threading.Thread | None = None
    _manager: JobManager | None = None
    _settled: threading.Event = field(default_factory=threading.Event)  # set once its result is stored

    @property
    def status(self) -> str:
        """'queued', 'running', 'done', 'cancelled' or 'failed'."""
        return self.recorder.data["status"]

    @property
    def finished(self) -> bool:
        """True once the job has ended and its result is in the disk cache (if it is to be cached)."""
        return self._settled.is_set()

    @property
    def queue_position(self) -> int | None:
        """1 for the next job to start in its lane's queue, None when not queued."""
        return self._manager.queue_position(self) if self._manager else None

    def view(self) -> dict:
        """A consistent copy of the record so far, plus status, ETA and queue place."""
        data = self.recorder.view()
        p, elapsed = data["progress"], data["elapsed"]
        if data["status"] == "running":
            elapsed = time.time() - data["started"]
        data["eta"] = elapsed * (1 - p) / p if data["status"] == "running" and p > 0.01 else None
        data["queue_position"] = self.queue_position
        data["from_cache"] = self.from_cache
        data["key"] = self.key
        return data

    def cancel(self) -> None:
        """Ask the job to stop (a queued job is dropped at once)."""
        if self._manager:
            self._manager.cancel(self)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job finishes; True if it did."""
        return self._settled.wait(timeout)


class JobManager:
    """Owns every job of the process; one instance per app (st.cache_resource) or CLI call."""

    def __init__(self, store: Store | None = None, blas_threads: int | None = 1):
        self.store = store or Store()
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._queue: deque[Job] = deque()
        self._queue_ready = threading.Condition(self._lock)
        self._long_worker: threading.Thread | None = None
        if blas_threads:
            # Background jobs and the web server share two cores: one BLAS thread per job is fastest.
            from threadpoolctl import threadpool_limits

            threadpool_limits(blas_threads)

    # ---- public API ----
    def find(self, experiment: str, config: Config) -> Job | None:
        """The live or cached job for this config, if any (never starts one)."""
        key = config.key(experiment)
        with self._lock:
            job = self._jobs.get(key)
        if job is not None:
            return job
        result = self.store.get(key)
        if result is None:
            return None
        job = Job(key, experiment, config, Recorder.from_result(result), from_cache=True, _manager=self)
        job._settled.set()
        with self._lock:
            return self._jobs.setdefault(key, job)

    def submit(self, experiment: str, config: Config, preset: str | None = None, use_cache: bool = True,
               restart: bool = False) -> Job:
        """Start (or join) the job for this config. A running, queued or finished job with the same
        config is returned as is; a cancelled or failed one is started again, resuming from its saved
        work (long jobs checkpoint into their work folder). `use_cache=False` ignores a stored result;
        `restart=True` also discards the saved work, so the run starts from scratch."""
        key = config.key(experiment)
        if restart:
            shutil.rmtree(self.store.workdir(key), ignore_errors=True)
        if use_cache:
            job = self.find(experiment, config)
            if job is not None and job.status not in ("cancelled", "failed"):
                return job
        lane = experiments.lane(experiment, config)
        rec = Recorder(experiment, config.to_dict(), preset)
        rec.data["status"] = "queued"
        job = Job(key, experiment, config, rec, lane=lane, _manager=self)
        with self._lock:
            old = self._jobs.get(key)
            if old is not None and not old.finished:
                return old
            self._jobs[key] = job
            if lane == "long":
                self._queue.append(job)
                self._ensure_long_worker()
                self._queue_ready.notify_all()
                return job
        job.thread = threading.Thread(target=self._execute, args=(job,), daemon=True,
                                      name=f"job-{experiment}-{key[:8]}")
        job.thread.start()
        return job

    def cancel(self, job: Job) -> None:
        """Stop a running job at its next checkpoint, or drop a queued one."""
        with self._lock:
            if job in self._queue:
                self._queue.remove(job)
                job.recorder.close("cancelled", "cancelled before it started")
                job._settled.set()
                return
        job.recorder.request_stop()

    def queue_position(self, job: Job) -> int | None:
        with self._lock:
            try:
                return list(self._queue).index(job) + 1
            except ValueError:
                return None

    def jobs(self) -> list[Job]:
        """Every job of this process, newest first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: -j.submitted)

    def forget(self, key: str) -> None:
        """Drop a finished job from memory (it stays in the disk cache)."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.finished:
                del self._jobs[key]

    # ---- workers ----
    def _ensure_long_worker(self) -> None:
        if self._long_worker is None or not self._long_worker.is_alive():
            self._long_worker = threading.Thread(target=self._long_loop, daemon=True, name="job-long-lane")
            self._long_worker.start()

    def _long_loop(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    self._queue_ready.wait()
                job = self._queue.popleft()
            self._execute(job)

    def _execute(self, job: Job) -> None:
        try:
            self._run(job)
        finally:
            job._settled.set()

    def _run(self, job: Job) -> None:
        rec = job.recorder
        rec.data["status"] = "running"
        rec.data["started"] = time.time()
        try:
            module = experiments.get(job.experiment)
            extra = {"store": self.store} if getattr(module, "USES_STORE", False) else {}
            module.run(job.config, rec, self.store.workdir(job.key), **extra)
        except Cancelled:
            rec.close("cancelled", "cancelled by the user")
            return
        except Exception as exc:  # a failed run is reported on the page, not raised into the app
            log.error("job %s failed:\n%s", job.key, traceback.format_exc())
            rec.close("failed", f"{type(exc).__name__}: {exc}")
            return
        rec.close("done")
        try:
            self.store.put(job.key, rec.view())
        except Exception:
            log.warning("could not store result %s", job.key, exc_info=True)
