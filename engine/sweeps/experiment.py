"""A sweep as a background job (engine.sweeps.grid + engine.sweeps.execute): progress, ETA and Cancel like any run, the
cells filling in live as points finish. The job's config is the sweep as plain data plus where to run it.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.core import version
from engine.core.config import Config, Preset, param, parse_json
from engine.sweeps import cluster
from engine.sweeps import execute as sweep_exec
from engine.sweeps import grid as sweeps

TITLE = "Sweeps: grids of settings x seeds (phase diagrams), cached point by point"
USES_STORE = True  # the job manager hands run() its result store: every point is cached under its own key


@dataclass(frozen=True)
class SweepConfig(Config):
    sweep: str = param("", help="the sweep as JSON (engine.sweeps.grid.to_dict)")
    scheduler: str = param("", help="address of a Dask scheduler (tcp://HOST:8786); '' = local processes")
    workers: int = param(0, 0, 256, step=1, help="local worker processes (0 = one per core)")
    use_cache: bool = param(True, help="reuse cached points (off: recompute every point)")
    worker_wait: float = param(cluster.WORKER_WAIT, 0.0, 86_400.0, step=10.0,
                               help="seconds a Dask sweep waits for a worker when none is left, then stops")

    def check(self) -> None:
        self.plan()  # raises ValueError naming the problem

    def plan(self) -> sweeps.Sweep:
        """The sweep this job runs."""
        return sweeps.from_dict(parse_json(self.sweep, "sweep"))

    def state(self) -> dict:
        """The sweep's own code and the code and libraries of the experiment it sweeps."""
        plan = self.plan()
        return dict(sweep=super().state(), points=plan.base.state())

    def key(self, experiment: str) -> str:
        """Where the points run does not change the results: the key is the sweep (and the cache choice)."""
        return version.fingerprint([experiment, self.state(), self.sweep, self.use_cache])


Config = SweepConfig


def job_config(sweep: sweeps.Sweep, scheduler: str = "", workers: int = 0, use_cache: bool = True,
               worker_wait: float = cluster.WORKER_WAIT) -> SweepConfig:
    """The job config of a sweep."""
    return SweepConfig(sweeps.dumps(sweep), scheduler, workers, use_cache, worker_wait)


class SweepIncomplete(Exception):
    """Some points failed, or the cluster went away: the job is not a finished sweep (its finished points are
    stored, so running it again computes only the rest)."""


PRESETS = {
    "map-fig2": Preset(job_config(sweeps.build("diagonal", "map-fig2")),
                       sweeps.presets("diagonal")["map-fig2"].description),
}


def preflight(c: SweepConfig) -> str | None:
    """What would stop a local sweep's points from running on this machine (CUDA, data on disk), checked once for
    the grid before any work (a cluster's workers are asked when the sweep connects)."""
    return None if c.scheduler else sweeps.preflight(c.plan())


def run(c: SweepConfig, rec, workdir=None, store=None) -> None:
    """Run every point (cached ones first); extras: 'sweep' (the JSON header), 'cells' (None until finished),
    'stats' (points computed / cached / failed). Progress counts finished points."""
    plan = c.plan()
    total = plan.size
    cells: list[dict | None] = [None] * total
    rec.snapshot(None, "sweep", plan.export([]))
    rec.snapshot(None, "cells", cells)
    counts = dict(computed=0, cached=0, failed=0)

    def on_cell(i: int, cell: dict, source: str) -> None:
        cells[i] = cell
        counts[source] += 1
        rec.snapshot(None, "cells", cells)
        rec.snapshot(None, "stats", dict(counts))
        show()

    def show(note: str = "") -> None:
        done = sum(counts.values())
        if not rec.stop_requested:  # (a stop is raised below, once the workers are stopped)
            rec.progress(done / total, (f"{note} - " if note else "")  # first: a progress line is short
                         + f"{done} of {total} points ({counts['cached']} from the cache)")

    if store is None:
        from engine.store import Store

        store = Store()
    _, stats = sweep_exec.execute(plan, store, scheduler=c.scheduler or None, workers=c.workers or None,
                                  use_cache=c.use_cache, on_cell=on_cell, should_stop=lambda: rec.stop_requested,
                                  on_note=show, worker_wait=c.worker_wait)
    rec.snapshot(None, "stats", dict(counts, notes=stats["notes"]))
    rec.progress(sum(counts.values()) / total)  # raises Cancelled after a stop: the finished points stay cached
    if stats["stopped"]:
        raise SweepIncomplete(stats["stopped"])
    if counts["failed"]:
        raise SweepIncomplete(f"{counts['failed']} of {total} points failed (their cells say why); the others are "
                              f"stored, so running the sweep again computes only the failed ones")
