"""Running a sweep's points where they fit: local worker processes (joblib's loky executor) or an existing Dask
cluster. Points stream back as they finish; each is stored under its own cache key, so a repeated, widened or
cancelled sweep reuses every finished point. A point that raises, or whose worker dies, is retried once and
otherwise reported in its cell; it never sinks the sweep. No scheduler of our own: loky and Dask do that.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from engine import registry
from engine.core.version import ENGINE_VERSION
from engine.sweeps.grid import Sweep

log = logging.getLogger(__name__)
GPU_EXPERIMENTS = ("resnet",)  # their points ask a Dask cluster for a worker with the resource GPU=1
POLL_SECONDS = 0.1
CONNECT_SECONDS = 10.0  # how long a sweep waits for a Dask scheduler to answer
WORKER_WAIT = 120.0  # default seconds a Dask sweep waits for a worker when none is left
WORKER_LOOK_SECONDS = 1.0  # how often it looks
PARENT_POLL_SECONDS = 0.5  # how often a local worker checks that the sweep's process lives


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
    return dict(result=rec.view(), engine_version=ENGINE_VERSION, worker=_worker_name())


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
                        yield i, "failed", None, _describe(exc)
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


def _describe(exc: BaseException) -> str:
    from joblib.externals.loky.process_executor import BrokenProcessPool

    if isinstance(exc, BrokenProcessPool):
        return "its worker process died (on both tries)"
    return f"{type(exc).__name__}: {exc}"


# ----------------------------------------------------------------------------- Dask
def engine_version() -> str:
    """This node's engine version (run on the scheduler and each worker before a sweep: unpickling this function
    there imports the engine, so it also shows whether the node has it)."""
    return ENGINE_VERSION


def check_address(address: str) -> None:
    """ValueError unless `address` looks like a Dask scheduler address: tcp:// or tls://, a host and a port."""
    from urllib.parse import urlsplit

    bad = f"--scheduler {address!r}: expected tcp://HOST:PORT (or tls://HOST:PORT with certificates)"
    try:
        parts = urlsplit(address)
        port = parts.port
    except ValueError:
        raise ValueError(bad) from None
    if parts.scheme not in ("tcp", "tls") or not parts.hostname or port is None or not 0 < port < 65536 \
            or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(bad)
    if parts.scheme == "tls":
        import dask.config

        tls = dask.config.get("distributed.comm.tls")
        if not (tls.get("ca-file") and tls.get("client", {}).get("cert")):
            raise ValueError(f"--scheduler {address}: tls:// needs certificates: set distributed.comm.tls.ca-file and "
                             f"distributed.comm.tls.client.cert (and .key) in Dask's configuration")


def connect(address: str, timeout: float | None = None, experiment: str | None = None, config: dict | None = None):
    """A distributed Client of the scheduler at `address` whose nodes (the scheduler and every worker) import
    this engine version, and (given a point's `config` of `experiment`) at least one of whose workers passes the
    checks `run` does (CUDA, data on disk); ValueError in one line naming the node otherwise, or when nothing
    answers within `timeout` seconds (default CONNECT_SECONDS)."""
    from distributed import Client

    check_address(address)
    timeout = CONNECT_SECONDS if timeout is None else timeout
    try:
        client = Client(address, timeout=f"{timeout}s", set_as_default=False)
    except Exception as exc:  # OSError, TimeoutError, a TLS setup error: all say the same to the user
        raise ValueError(f"--scheduler {address}: no Dask scheduler answered within {timeout:g} s "
                         f"({_short(exc)})") from None
    try:
        _check_nodes(client, address)
        if experiment is not None and config is not None:
            _check_workers_can_run(client, experiment, config)
    except BaseException:
        client.close()
        raise
    return client


def _check_nodes(client, address: str) -> None:
    fix = "install this checkout on it (pip install . or PYTHONPATH=<checkout>) and restart it"
    try:
        theirs = client.run_on_scheduler(engine_version)
    except Exception as exc:
        raise ValueError(f"the Dask scheduler at {address} cannot load the engine ({_short(exc)}): {fix}") from None
    if theirs != ENGINE_VERSION:
        raise ValueError(f"the Dask scheduler at {address} runs engine version {theirs!r}, this process "
                         f"{ENGINE_VERSION}: {fix}")
    for worker, theirs in client.run(engine_version, on_error="return").items():
        if isinstance(theirs, BaseException):
            raise ValueError(f"Dask worker {worker} cannot load the engine ({_short(theirs)}): {fix}")
        if theirs != ENGINE_VERSION:
            raise ValueError(f"Dask worker {worker} runs engine version {theirs!r}, this process {ENGINE_VERSION}: "
                             f"{fix}")


def preflight(experiment: str, module_name: str, config: dict) -> str | None:
    """`registry.preflight` of a point's config, on the node that runs it (the axes are numeric settings, which
    its checks do not read, so one point stands for the grid). The experiment is known there as on the client
    (`module_name`, as `run_point` gets it)."""
    registry.MODULES.setdefault(experiment, module_name)
    return registry.preflight(experiment, registry.get(experiment).Config.from_dict(config))


def _check_workers_can_run(client, experiment: str, config: dict) -> None:
    answers = client.run(preflight, experiment, registry.MODULES[experiment], config, on_error="return")
    problems = {w: str(a) if isinstance(a, BaseException) else a for w, a in answers.items()}
    if answers and all(problems.values()):
        worker, problem = next(iter(problems.items()))
        raise ValueError(f"no Dask worker can run these points: {worker}: {problem}")


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _dask(experiment: str, items: list[tuple[int, dict]], address: str, should_stop: Callable[[], bool],
          stats: dict, on_note: Callable[[str], None], worker_wait: float) -> Iterator[Outcome]:
    """Points on an existing Dask cluster; GPU experiments ask for a worker with the resource GPU=1 when the
    cluster has one. Dask retries a point once when it raises and reschedules it when its worker dies. When no
    worker is left, the sweep waits `worker_wait` seconds for one (saying so through `on_note`), then stops:
    stats['stopped'] says why."""
    from distributed import as_completed

    with connect(address, experiment=experiment, config=items[0][1]) as client:
        workers = client.scheduler_info()["workers"].values()
        resources = None
        if experiment in GPU_EXPERIMENTS:
            if any(w.get("resources", {}).get("GPU") for w in workers):
                resources = {"GPU": 1}
            else:
                stats["notes"].append("no worker declares the resource GPU=1: the points run on any worker")
        module = registry.MODULES[experiment]
        futures = {client.submit(run_point, experiment, module, cfg, resources=resources, retries=1, pure=False): i
                   for i, cfg in items}
        pending = as_completed(list(futures), loop=client.loop)
        alone_since, next_look = None, 0.0
        try:
            while not pending.is_empty():
                if should_stop():
                    return
                now = time.monotonic()
                if now >= next_look:  # is any worker left?
                    next_look = now + WORKER_LOOK_SECONDS
                    if client.nthreads():
                        if alone_since is not None:
                            on_note("")
                        alone_since = None
                    else:
                        alone_since = now if alone_since is None else alone_since
                        left = worker_wait - (now - alone_since)
                        if left <= 0:
                            stats["stopped"] = (f"no Dask worker joined {address} for {worker_wait:g} s: stopped "
                                                f"(the finished points are stored)")
                            return
                        on_note(f"no Dask worker left, waiting {left:.0f} s")
                if not pending.has_ready():
                    time.sleep(POLL_SECONDS)
                    continue
                for f in pending.next_batch(block=False):
                    i = futures[f]
                    if f.status == "finished":
                        try:
                            payload = f.result()
                        except Exception as exc:  # a result that cannot be unpickled here fails its point
                            yield i, "failed", None, f"its result could not be read: {_short(exc)}"
                            continue
                        yield i, "done", payload, ""
                    else:
                        yield i, "failed", None, _describe(f.exception())
        finally:
            client.cancel([f for f in futures if not f.done()])


def _payload_problem(payload: object) -> str | None:
    """Why a worker's answer is not a point's result (it is data from another machine), or None."""
    from engine.store import well_formed

    if not isinstance(payload, dict) or not isinstance(payload.get("engine_version"), str) \
            or not isinstance(payload.get("worker"), str) or not isinstance(payload.get("result"), dict):
        return f"its worker returned {type(payload).__name__} data, not a point's result"
    if payload["engine_version"] != ENGINE_VERSION:
        return (f"{payload['worker']} runs engine version {payload['engine_version']}, this process "
                f"{ENGINE_VERSION}: give every worker the same code")
    if not well_formed(payload["result"]):
        return f"{payload['worker']} returned a result that is not a finished run of this point"
    return None


# ----------------------------------------------------------------------------- a whole sweep
def execute(sweep: Sweep, store, scheduler: str | None = None, workers: int | None = None, use_cache: bool = True,
            on_cell: Callable[[int, dict, str], None] | None = None,
            should_stop: Callable[[], bool] = lambda: False, on_note: Callable[[str], None] = lambda text: None,
            worker_wait: float = WORKER_WAIT) -> tuple[list[dict | None], dict]:
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
        outcomes = _dask(sweep.experiment, todo, scheduler, should_stop, stats, on_note, worker_wait)
    else:
        outcomes = _local(sweep.experiment, todo, workers or default_workers(), should_stop)
    for i, status, payload, message in outcomes:
        if status == "done":
            problem = _payload_problem(payload)
            if problem is None:
                try:
                    cells[i] = sweep.cell(points[i], payload["result"])
                except Exception as exc:  # a result this point cannot summarize fails the point
                    problem = f"{payload['worker']} returned a result that does not fit the point ({_short(exc)})"
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
