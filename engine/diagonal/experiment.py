"""Diagonal linear networks: large steps make SGD's loss stabilize and its noise sparsify u * v
(paper Sec. 3.1, Fig. 2, 3, 8; docs/experiments.md §2).

Model h(x) = <u * v, x>, beta = u * v, loss ||X beta - y||^2 / (2n), init u = init_scale * 1, v = 0.
SGD on sample i: e = <x_i, u * v> - y_i; u -= eta e x_i * v; v -= eta e x_i * u (old u, v both).
GD uses the full batch. SDE is Euler-Maruyama of Eq. 8 (see `engine.diagonal.sim.sde_delta`). Every run of a
figure, for every sampling seed, advances together in one compiled loop (engine.diagonal.kernels); metrics are
computed in worker threads on the checkpoints of one chunk while the loop trains the next.

Here: config and presets, the metrics of a checkpoint, run(). Elsewhere: the data (engine.diagonal.data), the
simulator (engine.diagonal.sim), the Fig. 3 plane (engine.diagonal.plane), the edge search (diagonal_edge).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from engine.core import schedules
from engine.core.metrics import DiagonalRank, l0_norm
from engine.diagonal.claims import BY_PRESET
from engine.diagonal.config import (  # noqa: F401 (the registry's)
    LOSS_LIMIT,
    MAX_PENDING,
    METRIC_GROUP,
    PLANE_MAX_D,
    PRESETS,
    TITLE,
    Config,
    DiagonalConfig,
    DiagonalRun,
)
from engine.diagonal.data import Data, make_data
from engine.diagonal.plane import snapshot_plane
from engine.diagonal.sharpness import edge_of_stability, hessian_trace, sharpness
from engine.diagonal.sim import Simulator, plan

# the registry's: each preset's claims; the sharpness preset adds the edge of stability (engine.diagonal.sharpness)
CLAIMS = {**BY_PRESET, "sharpness": lambda runs, c: BY_PRESET["fig8"](runs, c) + edge_of_stability(runs, c["steps"])}


# ----------------------------------------------------------------------------- metrics
def checkpoint_metrics(data: Data, ranker: DiagonalRank, u: np.ndarray, v: np.ndarray,
                       live: np.ndarray, curvature: bool = False) -> dict[str, np.ndarray]:
    """train/test loss, ||u*v||_0 and rank(phi) of states u, v of shape (K, rows, d); rank is computed only
    where `live` (K, rows) is set (-1 elsewhere). `curvature`: also the Hessian's lambda_max and trace
    (`sharpness`, `hessian_trace`; NaN where not live)."""
    beta = u * v
    with np.errstate(all="ignore"):
        train = data.train_loss(beta)
        test = data.test_loss(beta)
    live = live & np.isfinite(train) & (train <= LOSS_LIMIT)
    rank = np.full(live.shape, -1, dtype=np.int64)
    if live.any():
        rank[live] = ranker(u[live], v[live])
    out = dict(train_loss=train, test_loss=test, l0_norm=l0_norm(beta), ntk_rank=rank, live=live)
    if curvature:
        out["sharpness"] = np.full(live.shape, np.nan)
        out["hessian_trace"] = np.full(live.shape, np.nan)
        if live.any():
            out["sharpness"][live] = sharpness(data.x, data.y, u[live], v[live])
            out["hessian_trace"][live] = hessian_trace(data.x, u[live], v[live])
    return out


# ----------------------------------------------------------------------------- run
def run(c: DiagonalConfig, rec, workdir=None) -> None:
    """Train every run (x sampling seeds) of the config together, logging train/test loss, rank(phi),
    ||u*v||_0 and lr at each checkpoint; snapshots: final beta per run, beta* (and Fig. 3's plane)."""
    data = make_data(c)
    rows, lr_table, recorded = plan(c)
    sim = Simulator(data, rows, lr_table, c.init_scale)
    ranker = DiagonalRank(data.x_fresh, c.rank_tau)
    steps = schedules.checkpoint_steps(c.steps, 100, c.checkpoints)
    ids = []
    for k, s, _ in recorded:
        spec = c.runs[k].to_dict()
        name = spec["name"] if c.seeds == 1 else f"{spec['name']} [seed {s}]"
        ids.append(rec.add_run(name, label=spec["name"], seed=s, spec=spec))
    rec.snapshot(None, "beta_star", data.beta_star)
    plane = c.plane and c.d <= PLANE_MAX_D
    if c.plane and not plane:
        rec.snapshot(None, "plane_note", f"the Fig. 3 plane is drawn for d <= {PLANE_MAX_D}")
    path_rows = sorted({row for k, s, row in recorded if s == c.first_seed}) if plane else []
    paths: list[tuple[np.ndarray, np.ndarray]] = []
    open_runs = set(range(len(recorded)))
    last = {}  # recorded index -> (u, v) at its last logged checkpoint
    total, logged = len(steps), 0

    def log_group(group: np.ndarray, u: np.ndarray, v: np.ndarray, m: dict) -> None:
        nonlocal logged
        for j, step in enumerate(group):
            for i in sorted(open_runs):
                k, s, row = recorded[i]
                died = sim.died[row]
                if (died >= 0 and step > died) or not m["live"][j, row]:
                    where = died if died >= 0 else step
                    rec.finish_run(ids[i], "diverged", f"diverged at step {where}")
                    rec.snapshot(ids[i], "diverged_at", int(where))
                    open_runs.discard(i)
                    continue
                curvature = {name: float(m[name][j, row]) for name in ("sharpness", "hessian_trace") if name in m}
                rec.log(ids[i], int(step), train_loss=m["train_loss"][j, row], test_loss=m["test_loss"][j, row],
                        ntk_rank=int(m["ntk_rank"][j, row]), l0_norm=int(m["l0_norm"][j, row]),
                        lr=float(lr_table[k, min(int(step), c.steps - 1)]), **curvature)
                last[i] = (u[j, row], v[j, row])
        logged += len(group)

    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="diagonal-metrics")
    pending: list = []

    def wait_first() -> None:
        group, u, v, future = pending.pop(0)
        while True:
            try:
                m = future.result(timeout=0.1)
                break
            except TimeoutError:
                rec.progress(logged / total, "metrics")
        log_group(group, u, v, m)
        rec.progress(logged / total, "metrics" if sim.t == c.steps else f"step {sim.t:,} of {c.steps:,}")

    try:
        rec.progress(0.0, "training")
        for chunk in sim.chunks(steps):
            while len(pending) > MAX_PENDING:  # metrics lag behind: wait rather than pile up states
                wait_first()
            u, v = sim.advance(chunk)
            if path_rows:
                paths.append((u[:, path_rows], v[:, path_rows]))
            live = (sim.died[None, :] < 0) | (chunk[:, None] <= sim.died[None, :])
            for g in range(0, len(chunk), METRIC_GROUP):
                sl = slice(g, g + METRIC_GROUP)
                pending.append((chunk[sl], u[sl], v[sl],
                                pool.submit(checkpoint_metrics, data, ranker, u[sl], v[sl], live[sl],
                                            c.sharpness)))
            while pending and pending[0][3].done():
                log_group(*pending[0][:3], pending.pop(0)[3].result())
            rec.progress(logged / total, f"step {sim.t:,} of {c.steps:,}")
        while pending:
            wait_first()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    for i in sorted(open_runs):
        rec.finish_run(ids[i], "done")
    for i, (u, v) in last.items():
        rec.snapshot(ids[i], "beta", u * v)
    if plane:
        snapshot_plane(c, data, recorded, ids, path_rows, steps, paths, sim.died, rec)
