"""Running the figures over seeds and checking their claims on every seed.

A figure's seeds are a one-axis sweep over its seed setting (engine.sweeps): one point per seed, each an ordinary
config of the experiment cached under its own key, so a rerun, a cancelled run or a run with more seeds reuses
every finished seed. All figures' points are submitted at once (one thread per figure feeding the same pool of
loky processes, or the same Dask cluster), so no worker idles while another figure finishes. After a figure's
points are in, each seed's stored runs go through the experiment's own criteria (registry.claims_for), which this
module treats as data: a list of Check(claim, obtained, ok).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from engine import registry
from engine.core import claims
from engine.reproduce.figures import Figure
from engine.sweeps import execute as sweep_exec
from engine.sweeps import grid

log = logging.getLogger("engine.reproduce")

Progress = Callable[[int, int, str], None]  # (points finished, points in all, figure key)


def seed_sweep(figure: Figure, seeds: int) -> grid.Sweep:
    """The figure's preset at `seeds` consecutive seeds from the preset's own, one point per seed. A seed that is
    a run's setting (runs.0.seed) is carried to every run of the table, so all runs of a point share it."""
    _, config = registry.preset(figure.experiment, figure.preset)
    first = grid.get_value(config, figure.seed_field)
    values = [first + k for k in range(seeds)]
    axis = grid.parse_axis(config, f"{figure.seed_field}=" + ",".join(map(str, values)))
    links = ()
    if figure.seed_field.startswith("runs."):
        field = figure.seed_field.split(".")[2]
        links = tuple(grid.Link(figure.seed_field, f"runs.{k}.{field}", tuple((v, v) for v in values))
                      for k in range(1, len(config.runs)))
    return grid.Sweep(figure.experiment, figure.preset, config, (axis,), seeds=1, links=links)


def check_seed(figure: Figure, result: dict) -> list[dict]:
    """The figure's checks on one seed's stored result, as plain data: claim, obtained, ok, and the measured
    value and threshold when the criteria's Check carries them (value/threshold attributes; None otherwise)."""
    check = registry.claims_for(figure.experiment, figure.preset, result["config"])
    if check is None:
        return []
    return [dict(claim=c.claim, obtained=c.obtained, ok=bool(c.ok), value=getattr(c, "value", None),
                 threshold=getattr(c, "threshold", None)) for c in check(result["runs"])]


def point_record(figure: Figure, seed: int, config, key: str, cell: dict | None, result: dict | None) -> dict:
    """What the reproduction keeps of one seed: its config and cache key (a page link opens exactly it), how its
    runs ended, and its checks."""
    record = dict(seed=seed, key=key, config=config.to_dict(), status="missing", message="", checks=[],
                  holds=None, runs=None)
    if cell is not None and cell["status"] == "failed":
        record.update(status="failed", message=cell.get("message", ""))
    elif result is None:
        if cell is not None:
            record["message"] = "finished, but the cache could not keep its runs: rerun with a writable cache"
    else:
        statuses = [r["status"] for r in result["runs"]]
        checks = check_seed(figure, result) if figure.checked else []
        record.update(status="done", checks=checks, runs={s: statuses.count(s) for s in sorted(set(statuses))},
                      holds=claims.holds([claims.Check(c["claim"], c["obtained"], c["ok"]) for c in checks])
                      if checks else None)
    return record


def run_figures(figures: list[Figure], seeds: int, store, scheduler: str | None = None, workers: int | None = None,
                use_cache: bool = True, on_progress: Progress | None = None,
                should_stop: Callable[[], bool] = lambda: False) -> dict[str, dict]:
    """Run every figure's seed sweep (all at once) and check each seed. Returns figure key -> {"points": [point
    records in seed order], "computed", "cached", "failed", "wall_s" (from the start until its last point)}."""
    plans = {f.key: seed_sweep(f, seeds) for f in figures}
    total = sum(p.size for p in plans.values())
    lock = threading.Lock()
    done = [0]
    start = time.perf_counter()
    stopping = threading.Event()  # set when the caller's thread is interrupted (Ctrl-C): the workers stop too

    def stop() -> bool:
        return stopping.is_set() or should_stop()

    def one(figure: Figure) -> dict:
        plan = plans[figure.key]

        def on_cell(i: int, cell: dict, source: str) -> None:
            with lock:
                done[0] += 1
                finished = done[0]
            if on_progress:
                on_progress(finished, total, figure.key)

        cells, stats = sweep_exec.execute(plan, store, scheduler=scheduler, workers=workers, use_cache=use_cache,
                                          on_cell=on_cell, should_stop=stop)
        wall = time.perf_counter() - start
        points = []
        for point, config, cell in zip(plan.points(), plan.configs(), cells):
            key = config.key(figure.experiment)
            result = store.get(key) if cell is not None and cell["status"] == "done" else None
            points.append(point_record(figure, int(point[figure.seed_field]), config, key, cell, result))
        out = dict(points=points, computed=stats["computed"], cached=stats["cached"], failed=stats["failed"],
                   notes=stats["notes"], wall_s=round(wall, 2))
        log.info(figure_line(figure, out))
        return out

    with ThreadPoolExecutor(max_workers=max(1, len(figures)), thread_name_prefix="reproduce") as pool:
        futures = {f.key: pool.submit(one, f) for f in figures}
        try:
            return {k: fut.result() for k, fut in futures.items()}
        except BaseException:
            stopping.set()
            raise


def figure_line(figure: Figure, out: dict) -> str:
    """One log line: the figure, its seeds' sources and time, and how often the whole figure held."""
    points = out["points"]
    judged = [p for p in points if p["holds"] is not None]
    verdict = (f"every claim holds on {sum(p['holds'] for p in judged)} of {len(judged)} seeds" if judged
               else f"{sum(p['status'] == 'done' for p in points)} of {len(points)} seeds ran (no claims checked)")
    return (f"{figure.key} ({figure.label}): {len(points)} seeds ({out['computed']} computed, {out['cached']} cached, "
            f"{out['failed']} failed) after {out['wall_s']:.1f} s; {verdict}")
