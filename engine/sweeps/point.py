"""One sweep point, run where a worker is: the experiment's own run() on the point's config; and what a runner
reports for each point (an Outcome)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from engine.core.version import engine_version

POLL_SECONDS = 0.1  # how often a runner looks for finished points
Outcome = tuple[int, str, dict | None, str]  # (point index, "done" | "failed", payload, message)


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


def describe(exc: BaseException) -> str:
    """A failed point's message."""
    from joblib.externals.loky.process_executor import BrokenProcessPool

    if isinstance(exc, BrokenProcessPool):
        return "its worker process died (on both tries)"
    return f"{type(exc).__name__}: {exc}"
