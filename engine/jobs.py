"""Background job manager: runs experiments on a bounded pool of daemon worker threads, shares one job per
config, serves finished configs from the disk cache, and queues long jobs (the GPU) one at a time.

Two lanes, each a FIFO queue with a bounded number of places: 'quick' jobs run on about one worker per core,
'long' jobs one at a time. A full queue refuses a job (`QueueFull`). Finished jobs stay in memory only as the
`KEEP_FINISHED` most recently used (they stay in the disk cache, and `find()` reloads them). BLAS and torch
thread counts are set around each job's run, not for the process. Workers never touch Streamlit; readers poll
`Job.view()`.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback
from collections import OrderedDict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from engine import registry
from engine.core.config import Config
from engine.core.recording import Cancelled, Recorder
from engine.store import Store

log = logging.getLogger(__name__)
RATE_WINDOW = 20.0  # seconds of progress the ETA's rate is measured over

QUICK_WORKERS = max(2, min(os.cpu_count() or 2, 8))  # quick jobs running at once: about one per core
QUICK_QUEUE = 32     # quick jobs waiting for a worker
LONG_QUEUE = 8       # long jobs (ResNets: hours each on the one GPU) waiting for the long lane
KEEP_FINISHED = 16   # finished jobs kept in memory; older ones are read back from the disk cache when asked for
IDLE_SECONDS = 30.0  # a worker with nothing to do for this long ends (the next job starts a new one)


class QueueFull(ValueError):
    """A lane's queue has no free place: the job was not submitted (try again when one finishes)."""


def _release_blas_control() -> None:
    """threadpoolctl (>= 3.7) lets only one thread at a time change a process-wide OpenBLAS pool: the first to
    try keeps control while it lives. Job threads come and go, so the limits of jobs are set and restored with no
    thread holding it."""
    from threadpoolctl import OpenBLASController

    clear = getattr(OpenBLASController, "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)


class _JobThreads:
    """BLAS and torch thread counts while jobs run. BLAS limits (threadpoolctl) are process-wide, so the first job
    to start sets them and the last one to end restores the process's own; torch's count is set in each job's
    thread (its OpenMP pool is per thread) and restored with the BLAS limits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._blas = None
        self._torch: int | None = None  # the process's torch thread count, read before any job changed it

    @contextmanager
    def limit(self, threads: int | None) -> Iterator[None]:
        """Run the body with `threads` BLAS and torch threads (None: leave them as they are)."""
        if not threads:
            yield
            return
        torch = sys.modules.get("torch")  # set only when an experiment uses it: never import it for a numpy job
        with self._lock:
            if self._running == 0:
                from threadpoolctl import threadpool_limits

                _release_blas_control()
                self._blas = threadpool_limits(threads, user_api="blas")
                _release_blas_control()
            if torch is not None and self._torch is None:
                self._torch = torch.get_num_threads()
            self._running += 1
        if torch is not None:
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                if self._running == 0:
                    _release_blas_control()
                    self._blas.restore_original_limits()
                    _release_blas_control()
                    self._blas = None
                    if self._torch is not None:
                        sys.modules["torch"].set_num_threads(self._torch)


_THREADS = _JobThreads()  # one per process: the limits it sets are process-wide


@dataclass(eq=False)
class _Lane:
    """One queue of jobs and the worker threads that take jobs from it."""

    name: str
    workers: int
    places: int  # jobs that may wait
    ready: threading.Condition
    queue: deque = field(default_factory=deque)
    threads: list = field(default_factory=list)
    running: int = 0  # jobs its workers are running

    def full(self) -> bool:
        """No place left: every worker busy (or about to be) and `places` jobs waiting."""
        return len(self.queue) + self.running >= self.workers + self.places


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
    _samples: deque = field(default_factory=deque)  # (time, progress) seen by view(): the ETA's rate

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
        data["eta"] = self._eta(data) if data["status"] == "running" else None
        data["queue_position"] = self.queue_position
        data["from_cache"] = self.from_cache
        data["key"] = self.key
        return data

    def _eta(self, data: dict) -> float | None:
        """Seconds left from the progress rate over the last RATE_WINDOW seconds (steadier than elapsed /
        progress, which a slow start, e.g. loading data or compiling, throws off for the whole run)."""
        now, p = time.time(), data["progress"]
        samples = self._samples
        if not samples or samples[-1][1] != p:
            samples.append((now, p))
        while len(samples) > 2 and now - samples[1][0] > RATE_WINDOW:
            samples.popleft()
        t0, p0 = samples[0]
        if p <= 0.01 or p <= p0 or now - t0 < 1.0:
            return None
        return (1 - p) * (now - t0) / (p - p0)

    def cancel(self) -> None:
        """Ask the job to stop (a queued job is dropped at once)."""
        if self._manager:
            self._manager.cancel(self)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job finishes; True if it did."""
        return self._settled.wait(timeout)


class JobManager:
    """Owns every job of the process; one instance per app (st.cache_resource) or CLI call."""

    def __init__(self, store: Store | None = None, blas_threads: int | None = 1, workers: int = QUICK_WORKERS,
                 quick_queue: int = QUICK_QUEUE, long_queue: int = LONG_QUEUE, keep_finished: int = KEEP_FINISHED):
        """`blas_threads`: BLAS and torch threads of each job while it runs (None: leave them); `workers`: quick
        jobs running at once; `quick_queue` / `long_queue`: jobs that may wait in each lane; `keep_finished`:
        finished jobs kept in memory."""
        self.store = store or Store()
        # Background jobs and the web server share two cores: one BLAS thread per job is fastest.
        self.threads = blas_threads
        self.keep_finished = keep_finished
        self._jobs: OrderedDict[str, Job] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()
        self._lanes = {"quick": _Lane("quick", max(1, workers), quick_queue, threading.Condition(self._lock)),
                       "long": _Lane("long", 1, long_queue, threading.Condition(self._lock))}

    # ---- public API ----
    def find(self, experiment: str, config: Config) -> Job | None:
        """The live or cached job for this config, if any (never starts one)."""
        key = config.key(experiment)
        with self._lock:
            job = self._jobs.get(key)
            if job is not None:
                self._jobs.move_to_end(key)
        if job is not None:
            return job
        result = self.store.get(key)
        if result is None:
            return None
        job = Job(key, experiment, config, Recorder.from_result(result), from_cache=True, _manager=self)
        job._settled.set()
        with self._lock:
            job = self._jobs.setdefault(key, job)
            self._jobs.move_to_end(key)
            self._trim()
            return job

    def submit(self, experiment: str, config: Config, preset: str | None = None, use_cache: bool = True,
               restart: bool = False) -> Job:
        """Start (or join) the job for this config. A running, queued or finished job with the same
        config is returned as is; a cancelled or failed one is started again, resuming from its saved
        work (long jobs checkpoint into their work folder). `use_cache=False` ignores a stored result;
        `restart=True` also discards the saved work, so the run starts from scratch. A new job waits in its
        lane's queue until a worker is free; QueueFull (a ValueError) when the queue has no free place."""
        key = config.key(experiment)
        if restart:
            self.store.discard_work(key)
        if use_cache:
            job = self.find(experiment, config)
            if job is not None and job.status not in ("cancelled", "failed"):
                return job
        lane = registry.lane(experiment, config)
        rec = Recorder(experiment, config.to_dict(), preset)
        rec.data["status"] = "queued"
        job = Job(key, experiment, config, rec, lane=lane, _manager=self)
        with self._lock:
            old = self._jobs.get(key)
            if old is not None and not old.finished:
                return old
            line = self._lanes[lane]
            if line.full():
                raise QueueFull(f"the {lane} queue is full ({line.places} jobs waiting): try again when one "
                                "finishes")
            self._jobs[key] = job
            self._jobs.move_to_end(key)
            line.queue.append(job)
            self._start_workers(line)
            line.ready.notify()
        return job

    def cancel(self, job: Job) -> None:
        """Stop a running job at its next checkpoint, or drop a queued one at once."""
        with self._lock:
            queue = self._lanes[job.lane].queue
            if job in queue:
                queue.remove(job)
                job.recorder.close("cancelled", "cancelled before it started")
                job._settled.set()
                self._trim()
                return
        job.recorder.request_stop()

    def queue_position(self, job: Job) -> int | None:
        """1 for the next job to start in its lane, None when the job is not waiting."""
        with self._lock:
            try:
                return list(self._lanes[job.lane].queue).index(job) + 1
            except ValueError:
                return None

    def jobs(self) -> list[Job]:
        """Every job in memory (running, queued, and the most recently used finished ones), newest first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: -j.submitted)

    def forget(self, key: str) -> None:
        """Drop a finished job from memory (it stays in the disk cache)."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.finished:
                del self._jobs[key]

    # ---- workers ----
    def _trim(self) -> None:
        """Keep at most `keep_finished` finished jobs in memory, dropping the least recently used (lock held);
        running and queued jobs always stay."""
        finished = [key for key, job in self._jobs.items() if job.finished]
        for key in finished[:max(0, len(finished) - self.keep_finished)]:
            del self._jobs[key]

    def _start_workers(self, lane: _Lane) -> None:
        """Start the lane's worker threads that are not running (lock held)."""
        while len(lane.threads) < lane.workers:
            thread = threading.Thread(target=self._work, args=(lane,), daemon=True,
                                      name=f"job-{lane.name}-{len(lane.threads)}")
            lane.threads.append(thread)
            thread.start()

    def _work(self, lane: _Lane) -> None:
        """A worker: run the lane's jobs in queue order; end after IDLE_SECONDS without one."""
        me = threading.current_thread()
        while True:
            with self._lock:
                while not lane.queue:
                    if not lane.ready.wait(IDLE_SECONDS) and not lane.queue:
                        lane.threads.remove(me)
                        return
                job = lane.queue.popleft()
                job.thread = me
                lane.running += 1
            try:
                self._execute(job)
            finally:
                with self._lock:
                    lane.running -= 1

    def _execute(self, job: Job) -> None:
        try:
            try:
                registry.get(job.experiment)  # imported first, so the thread limits see whether it uses torch
            except Exception:
                pass  # reported by _run
            with _THREADS.limit(self.threads):
                self._run(job)
        finally:
            job._settled.set()
            with self._lock:
                if self._jobs.get(job.key) is job:
                    self._jobs.move_to_end(job.key)
                self._trim()

    def _run(self, job: Job) -> None:
        rec = job.recorder
        rec.data["status"] = "running"
        rec.data["started"] = time.time()
        try:
            module = registry.get(job.experiment)
            extra = {"store": self.store} if getattr(module, "USES_STORE", False) else {}
            about = dict(experiment=job.experiment, config=job.config.to_dict())
            work = self.store.workdir(job.key, about) if getattr(module, "CHECKPOINTS", False) else None
            module.run(job.config, rec, work, **extra)
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
