"""Running a sweep's points where they fit: local worker processes (joblib's loky executor) or an existing Dask
cluster (`engine.sweeps.cluster`). Points stream back as they finish; each is stored under its own cache key, so a
repeated, widened or cancelled sweep reuses every finished point. A point that raises, or whose worker dies, is
retried once and otherwise reported in its cell; it never sinks the sweep. No scheduler of our own: loky and Dask
do that.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator

from engine import registry
from engine.core.version import engine_version
from engine.sweeps import cluster
from engine.sweeps.grid import Sweep
from engine.sweeps.point import POLL_SECONDS, Outcome, describe, run_point

log = logging.getLogger(__name__)
PARENT_POLL_SECONDS = 0.5  # how often a local worker checks that the sweep's process lives


def default_workers() -> int:
    """One worker process per core."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


# ----------------------------------------------------------------------------- local processes
def _exit_with_parent(parent: int) -> None:
    """loky initializer of each local worker: a daemon thread ends the worker as soon as the process that started
    it is gone (killed, even with SIGKILL), instead of finishing the points queued to it and idling until loky's
    timeout. The worker's parent is the sweep's process; once it dies the worker is re-parented."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _local(experiment: str, items: list[tuple[int, dict]], workers: int,
           should_stop: Callable[[], bool]) -> Iterator[Outcome]:
    """Points on `workers` loky processes (reused between sweeps, so compiled kernels stay loaded; each ends with
    this process). When a worker dies, loky fails every pending point with TerminatedWorkerError: each is retried
    once on a fresh pool. A stop kills the workers at once, dropping the points they were running."""
    from joblib.externals.loky import get_reusable_executor

    tries = {i: 0 for i, _ in items}
    todo = list(items)
    while todo:
        executor = get_reusable_executor(max_workers=workers, timeout=120, initializer=_exit_with_parent,
                                         initargs=(os.getpid(),))
        futures: dict = {}
        retry = []
        try:
            while todo or futures:
                if should_stop():
                    return
                # one point per worker at a time: nothing waits in loky's queues, so a stop drops only the points
                # running (and loky's shutdown finds no queued work it could trip over)
                while todo and len(futures) < workers:
                    i, cfg = todo.pop(0)
                    futures[executor.submit(run_point, experiment, registry.MODULES[experiment], cfg)] = (i, cfg)
                ready = [f for f in futures if f.done()]
                if not ready:
                    time.sleep(POLL_SECONDS)
                for f in ready:
                    i, cfg = futures.pop(f)
                    exc = f.exception()
                    if exc is None:
                        yield i, "done", f.result(), ""
                    elif tries[i] == 0:
                        tries[i] += 1
                        retry.append((i, cfg))
                    else:
                        yield i, "failed", None, describe(exc)
                if ready and any(isinstance(f.exception(), _broken()) for f in ready):
                    break  # the pool is broken: the points left start again on a fresh one
        finally:
            if futures:  # stopped (or the caller gave up): the points left go with their workers
                # (loky fails the pending futures itself; cancelling them too races its manager thread, which
                # then dies on InvalidStateError before killing the workers, and the process waits for them)
                executor.shutdown(wait=False, kill_workers=True)
        todo = retry + [item for item in futures.values()] + todo
        futures.clear()


def _broken() -> type:
    from joblib.externals.loky.process_executor import BrokenProcessPool

    return BrokenProcessPool


def _payload_problem(payload: object) -> str | None:
    """Why a worker's answer is not a point's result (it is data from another machine), or None."""
    from engine.store import well_formed

    if not isinstance(payload, dict) or not isinstance(payload.get("engine_version"), str) \
            or not isinstance(payload.get("worker"), str) or not isinstance(payload.get("result"), dict):
        return f"its worker returned {type(payload).__name__} data, not a point's result"
    if payload["engine_version"] != engine_version():
        return (f"{payload['worker']} runs engine version {payload['engine_version']}, this process "
                f"{engine_version()}: give every worker the same code")
    if not well_formed(payload["result"]):
        return f"{payload['worker']} returned a result that is not a finished run of this point"
    return None


# ----------------------------------------------------------------------------- a whole sweep
def execute(sweep: Sweep, store, scheduler: str | None = None, workers: int | None = None, use_cache: bool = True,
            on_cell: Callable[[int, dict, str], None] | None = None,
            should_stop: Callable[[], bool] = lambda: False, on_note: Callable[[str], None] = lambda text: None,
            worker_wait: float = cluster.WORKER_WAIT) -> tuple[list[dict | None], dict]:
    """Run every point of `sweep` (cached points first, from `store`), calling `on_cell(index, cell, source)` as
    each finishes (source: 'cached' | 'computed' | 'failed', the keys of the returned counts) and `on_note(text)`
    with a passing state of the cluster ('' when it is over). Returns the cells in grid order (None where the
    sweep stopped first) and counts {computed, cached, failed, notes, stopped (why it stopped early, if it did)}."""
    points, configs = sweep.points(), sweep.configs()
    keys = [c.key(sweep.experiment) for c in configs]
    cells: list[dict | None] = [None] * len(points)
    stats = dict(computed=0, cached=0, failed=0, notes=[], stopped="")
    todo = []
    for i, key in enumerate(keys):
        result = store.get(key) if use_cache else None
        if result is not None:
            cells[i] = sweep.cell(points[i], result)
            stats["cached"] += 1
            if on_cell:
                on_cell(i, cells[i], "cached")
        else:
            todo.append((i, configs[i].to_dict()))
    if not todo:
        return cells, stats
    if scheduler:
        outcomes = cluster.points(sweep.experiment, todo, scheduler, should_stop, stats, on_note, worker_wait)
    else:
        outcomes = _local(sweep.experiment, todo, workers or default_workers(), should_stop)
    for i, status, payload, message in outcomes:
        if status == "done":
            problem = _payload_problem(payload)
            if problem is None:
                try:
                    cells[i] = sweep.cell(points[i], payload["result"])
                except Exception as exc:  # a result this point cannot summarize fails the point
                    problem = f"{payload['worker']} returned a result that does not fit the point " \
                              f"({cluster.short(exc)})"
            if problem is not None:
                status, message = "failed", problem
        if status == "done":
            try:
                store.put(keys[i], payload["result"])
            except Exception:  # an unwritable cache loses the point's reuse, not the point
                log.warning("could not store sweep point %s", keys[i], exc_info=True)
            cells[i]["worker"] = payload["worker"]
            stats["computed"] += 1
        else:
            cells[i] = sweep.cell(points[i], None, "failed", message)
            stats["failed"] += 1
            log.warning("sweep point %s failed: %s", points[i], message)
        if on_cell:
            on_cell(i, cells[i], "computed" if status == "done" else "failed")
    return cells, stats
