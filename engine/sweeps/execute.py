"""Running a sweep's points where they fit: local worker processes (joblib's loky executor) or an existing Dask
cluster. Points stream back as they finish; each is stored under its own cache key, so a repeated, widened or
cancelled sweep reuses every finished point. A point that raises, or whose worker dies, is retried once and
otherwise reported in its cell; it never sinks the sweep. No scheduler of our own: loky and Dask do that.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from engine import registry
from engine.core.version import engine_version
from engine.sweeps.grid import Sweep

log = logging.getLogger(__name__)
GPU_EXPERIMENTS = ("resnet",)  # their points ask a Dask cluster for a worker with the resource GPU=1
POLL_SECONDS = 0.1


def run_point(experiment: str, module_name: str, config: dict) -> dict:
    """Train one grid point in a worker process with the experiment's own run() (from module `module_name`) and
    one BLAS thread; returns {"result": the Result, "engine_version", "worker"}. Exceptions propagate (the
    runner retries them once)."""
    import importlib

    from threadpoolctl import threadpool_limits

    from engine.core.recording import Recorder

    module = importlib.import_module(module_name)
    c = module.Config.from_dict(config)
    rec = Recorder(experiment, c.to_dict())
    rec.data["status"] = "running"
    with threadpool_limits(1), tempfile.TemporaryDirectory(prefix="sweep-point-") as work:
        module.run(c, rec, Path(work))
    rec.close("done")
    return dict(result=rec.view(), engine_version=engine_version(), worker=_worker_name())


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"local pid {os.getpid()}"


def default_workers() -> int:
    """One worker process per core."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


Outcome = tuple[int, str, dict | None, str]  # (point index, "done" | "failed", payload, message)


# ----------------------------------------------------------------------------- local processes
def _local(experiment: str, items: list[tuple[int, dict]], workers: int,
           should_stop: Callable[[], bool]) -> Iterator[Outcome]:
    """Points on `workers` loky processes (reused between sweeps, so compiled kernels stay loaded). When a worker
    dies, loky fails every pending point with TerminatedWorkerError: each is retried once on a fresh pool."""
    from joblib.externals.loky import get_reusable_executor

    tries = {i: 0 for i, _ in items}
    todo = list(items)
    while todo:
        executor = get_reusable_executor(max_workers=workers, timeout=120)
        futures = {executor.submit(run_point, experiment, registry.MODULES[experiment], cfg): (i, cfg)
                   for i, cfg in todo}
        todo = []
        try:
            while futures:
                if should_stop():
                    executor.shutdown(wait=False, kill_workers=True)
                    return
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
                        todo.append((i, cfg))
                    else:
                        yield i, "failed", None, _describe(exc)
        finally:
            for f in futures:
                f.cancel()


def _describe(exc: BaseException) -> str:
    from joblib.externals.loky.process_executor import BrokenProcessPool

    if isinstance(exc, BrokenProcessPool):
        return "its worker process died (on both tries)"
    return f"{type(exc).__name__}: {exc}"


# ----------------------------------------------------------------------------- Dask
def _dask(experiment: str, items: list[tuple[int, dict]], address: str,
          should_stop: Callable[[], bool], notes: list[str]) -> Iterator[Outcome]:
    """Points on an existing Dask cluster; GPU experiments ask for a worker with the resource GPU=1 when the
    cluster has one. Dask retries a point once when it raises and reschedules it when its worker dies."""
    from distributed import Client, as_completed

    with Client(address, timeout="10s") as client:
        workers = client.scheduler_info()["workers"].values()
        resources = None
        if experiment in GPU_EXPERIMENTS:
            if any(w.get("resources", {}).get("GPU") for w in workers):
                resources = {"GPU": 1}
            else:
                notes.append("no worker declares the resource GPU=1: the points run on any worker")
        module = registry.MODULES[experiment]
        futures = {client.submit(run_point, experiment, module, cfg, resources=resources, retries=1, pure=False): i
                   for i, cfg in items}
        pending = as_completed(list(futures))
        try:
            while not pending.is_empty():
                if should_stop():
                    client.cancel(list(futures))
                    return
                if not pending.has_ready():
                    time.sleep(POLL_SECONDS)
                    continue
                for f in pending.next_batch(block=False):
                    i = futures[f]
                    if f.status == "finished":
                        yield i, "done", f.result(), ""
                    else:
                        yield i, "failed", None, _describe(f.exception())
        finally:
            client.cancel([f for f in futures if not f.done()])


# ----------------------------------------------------------------------------- a whole sweep
def execute(sweep: Sweep, store, scheduler: str | None = None, workers: int | None = None, use_cache: bool = True,
            on_cell: Callable[[int, dict, str], None] | None = None,
            should_stop: Callable[[], bool] = lambda: False) -> tuple[list[dict | None], dict]:
    """Run every point of `sweep` (cached points first, from `store`), calling `on_cell(index, cell, source)` as
    each finishes (source: 'cached' | 'computed' | 'failed', the keys of the returned counts). Returns the cells
    in grid order (None where the sweep stopped first) and counts {computed, cached, failed, notes}."""
    points, configs = sweep.points(), sweep.configs()
    keys = [c.key(sweep.experiment) for c in configs]
    cells: list[dict | None] = [None] * len(points)
    stats = dict(computed=0, cached=0, failed=0, notes=[])
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
        outcomes = _dask(sweep.experiment, todo, scheduler, should_stop, stats["notes"])
    else:
        outcomes = _local(sweep.experiment, todo, workers or default_workers(), should_stop)
    for i, status, payload, message in outcomes:
        if status == "done" and payload["engine_version"] != engine_version():
            status, message = "failed", (f"{payload['worker']} runs engine version {payload['engine_version']}, "
                                         f"this process {engine_version()}: give every worker the same code")
        if status == "done":
            try:
                store.put(keys[i], payload["result"])
            except Exception:  # an unwritable cache loses the point's reuse, not the point
                log.warning("could not store sweep point %s", keys[i], exc_info=True)
            cells[i] = sweep.cell(points[i], payload["result"])
            cells[i]["worker"] = payload["worker"]
            stats["computed"] += 1
        else:
            cells[i] = sweep.cell(points[i], None, "failed", message)
            stats["failed"] += 1
            log.warning("sweep point %s failed: %s", points[i], message)
        if on_cell:
            on_cell(i, cells[i], "computed" if status == "done" else "failed")
    return cells, stats

