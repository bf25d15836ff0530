"""A sweep's points on an existing Dask cluster: the scheduler's address checked, every node asked for its engine
version and the workers for the machine checks `run` does before any point runs; then the points stream back as
they finish, and a cluster left without workers is waited for a bounded time."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from engine import registry
from engine.core import version
from engine.sweeps.point import POLL_SECONDS, Outcome, describe, run_point

GPU_EXPERIMENTS = ("resnet",)  # their points ask a Dask cluster for a worker with the resource GPU=1
CONNECT_SECONDS = 10.0  # how long a sweep waits for a Dask scheduler to answer
WORKER_WAIT = 120.0  # default seconds a Dask sweep waits for a worker when none is left
WORKER_LOOK_SECONDS = 1.0  # how often it looks


def engine_version() -> str:
    """This node's engine version (run on the scheduler and each worker before a sweep: unpickling this function
    there imports the engine, so it also shows whether the node has it)."""
    return version.engine_version()


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
                         f"({short(exc)})") from None
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
        raise ValueError(f"the Dask scheduler at {address} cannot load the engine ({short(exc)}): {fix}") from None
    if theirs != engine_version():
        raise ValueError(f"the Dask scheduler at {address} runs engine version {theirs!r}, this process "
                         f"{engine_version()}: {fix}")
    for worker, theirs in client.run(engine_version, on_error="return").items():
        if isinstance(theirs, BaseException):
            raise ValueError(f"Dask worker {worker} cannot load the engine ({short(theirs)}): {fix}")
        if theirs != engine_version():
            raise ValueError(f"Dask worker {worker} runs engine version {theirs!r}, this process {engine_version()}: "
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


def short(exc: BaseException) -> str:
    """An error as one short line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def points(experiment: str, items: list[tuple[int, dict]], address: str, should_stop: Callable[[], bool],
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
                            yield i, "failed", None, f"its result could not be read: {short(exc)}"
                            continue
                        yield i, "done", payload, ""
                    else:
                        yield i, "failed", None, describe(f.exception())
        finally:
            client.cancel([f for f in futures if not f.done()])
