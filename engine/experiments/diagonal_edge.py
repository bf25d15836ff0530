"""Edge of stability of SGD on a diagonal-network data set: the largest constant step size that survives,
per sampling seed (EXPERIMENTS section 2: the sparsifying window sits just below it and moves with the data).

`find_edge` is the search (all seeds and candidate step sizes advance together in the compiled loop); `run`
wraps it as a job so the page can run it in the background with progress.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine import exact
from engine.config import Config, param
from engine.diagonal_data import make_data
from engine.diagonal_sim import ALGORITHMS, CHUNK_OPS, Simulator, Trajectories, sde_delta
from engine.experiments import Preset
from engine.experiments.diagonal import LOSS_LIMIT, DiagonalConfig, DiagonalRun

TITLE = "Diagonal networks: edge of stability finder (largest surviving step size)"


@dataclass(frozen=True)
class EdgeConfig(Config):
    n: int = param(80, 2, 2000, step=1, help="training samples")
    d: int = param(200, 1, 1000, step=1, help="dimension")
    r: int = param(20, 1, 1000, step=1, help="nonzero coordinates of beta*")
    init_scale: float = param(0.1, 1e-4, 10.0, step=0.01, log=True, help="u0 = init_scale * 1, v0 = 0")
    data_seed: int = param(0, 0, 2**32 - 1, step=1, help="data seed (0 = the authors' data)")
    algorithm: str = param("SGD", choices=ALGORITHMS, help="algorithm whose edge is searched")
    batch_size: int = param(1, 1, 2000, step=1, help="SGD mini-batch size")
    noise_level: float = param(0.03, 0.0, 10.0, step=0.005, help="SDE only: loss level of its noise")
    seeds: int = param(3, 1, 20, step=1, help="sampling seeds searched (each gets its own edge)")
    first_seed: int = param(1, 0, 2**31 - 1, step=1, help="first sampling seed")
    steps: int = param(20_001, 100, 1_000_001, step=1000, help="steps a step size must survive (a longer "
                       "run can still diverge later: its edge lies at or below this one)")
    lo: float = param(0.0, 0.0, 100.0, step=0.01, help="lower end of the search (0 = from 0)")
    hi: float = param(0.0, 0.0, 100.0, step=0.01, help="upper end of the search (0 = a guess from the "
                      "curvature at init, widened until a step size diverges)")
    tol: float = param(0.002, 1e-5, 1.0, step=0.001, log=True, help="stop when each bracket is this narrow")

    def check(self) -> None:
        if self.r > self.d:
            raise ValueError(f"r={self.r} must not exceed d={self.d}")
        if self.hi and self.hi <= self.lo:
            raise ValueError(f"hi={self.hi} must exceed lo={self.lo}")


Config = EdgeConfig

PRESETS = {
    "fig2": Preset(EdgeConfig(), "Fig. 2 data (n 80, d 200, r 20): batch-1 SGD survives 2e4 steps up to ~0.28"),
    "fig8": Preset(EdgeConfig(n=40, d=100), "Fig. 8 data (n 40, d 100, r 20): the edge lies below the paper's 0.272"),
}


def diagonal_config(c: EdgeConfig) -> DiagonalConfig:
    """The diagonal-network config whose data and single run the search uses."""
    run = DiagonalRun("edge", c.algorithm, 0.1, 1.0, 1.0, c.batch_size, c.noise_level)
    return DiagonalConfig(n=c.n, d=c.d, r=c.r, init_scale=c.init_scale, data_seed=c.data_seed, steps=c.steps,
                          seeds=c.seeds, first_seed=c.first_seed, runs=(run,))


def find_edge(c: DiagonalConfig, run_index: int = 0, seeds: int = 3, steps: int | None = None,
              lo: float | None = None, hi: float | None = None, tol: float = 0.002, candidates: int = 15,
              progress: Callable[[float, str], None] | None = None) -> dict:
    """Largest constant step size at which run `run_index` (its algorithm and batch size, no decay) survives
    `steps` steps (default min(config steps, 20001)) on this config's data, for each of `seeds` sampling
    seeds from first_seed: a multi-section search (`candidates` step sizes per seed and round, all seeds
    and candidates advancing together in the compiled loop) until each bracket is narrower than `tol`.
    Survival is not monotone in the step size (the bouncing is chaotic); the search follows the first
    divergence above the last survivor. Returns per-seed `edges` (largest step seen to survive) and
    `upper` (smallest seen to diverge above it), their `median`, `min`, `max` and `spread`, and
    `suggested` = 0.95 x the smallest edge. With capped steps a late divergence can
    be missed, so the edge of a longer run can lie lower."""
    t_start = time.time()
    spec = c.runs[run_index]
    steps = int(steps or min(c.steps, 20_001))
    data = make_data(c)
    seed_list = list(range(c.first_seed, c.first_seed + seeds))
    if hi is None:
        scale = c.init_scale**2 * c.d * exact.mean(data.x**2)
        hi = float(np.clip(2.0 * spec.batch_size / max(scale, 1e-12), 1e-4, 100.0))
    lo = 0.0 if lo is None else float(lo)
    lows, highs = np.full(seeds, lo), np.full(seeds, float(hi))
    hi_known = np.zeros(seeds, dtype=bool)  # whether highs[s] is known to diverge
    rounds, evaluations = [], 0
    algo = ALGORITHMS.index(spec.algorithm)
    for round_no in range(40):
        width = highs - lows
        if (hi_known & (width <= tol)).all():
            break
        # candidates strictly inside a known bracket; up to and including hi while hi is untested
        denom = np.where(hi_known, candidates + 1, candidates)[:, None]
        grid = lows[:, None] + width[:, None] * np.arange(1, candidates + 1) / denom
        rows = Trajectories()
        for si, s in enumerate(seed_list):
            for j in range(candidates):
                rows.add(algo, spec.batch_size, si * candidates + j, s, float(np.sqrt(sde_delta(spec, c.n))))
        lr_table = np.repeat(grid.reshape(-1, 1), steps, axis=1)
        sim = Simulator(data, rows, lr_table, c.init_scale)
        stops = np.linspace(0, steps, 2 + int(sim.ops_per_step * steps // CHUNK_OPS)).round().astype(np.int64)[1:]
        for stop in stops:
            u, v = sim.advance(np.array([stop]))
            if progress:
                done = (round_no + stop / steps) / max(round_no + 2, 4)
                progress(min(0.99, done), f"edge search, round {round_no + 1}")
        with np.errstate(all="ignore"):
            loss = data.train_loss(u[-1] * v[-1])
        survived = (sim.alive & np.isfinite(loss) & (loss <= LOSS_LIMIT)).reshape(seeds, candidates)
        evaluations += survived.size
        for si in range(seeds):
            bad = np.flatnonzero(~survived[si])
            if len(bad) == 0:
                if hi_known[si]:
                    lows[si] = grid[si, -1]
                else:  # every candidate survived up to hi: widen
                    lows[si], highs[si] = grid[si, -1], 2 * highs[si]
            else:
                j = bad[0]
                lows[si] = grid[si, j - 1] if j > 0 else lows[si]
                highs[si], hi_known[si] = grid[si, j], True
        rounds.append(dict(lo=lows.tolist(), hi=highs.tolist()))
    edges = lows.copy()
    return dict(seeds=seed_list, edges=edges.tolist(), upper=highs.tolist(), median=float(np.median(edges)),
                min=float(edges.min()), max=float(edges.max()), spread=float(edges.max() - edges.min()),
                suggested=float(0.95 * edges.min()), steps=steps, tol=tol, run=spec.name,
                batch_size=spec.batch_size, algorithm=spec.algorithm, rounds=rounds, evaluations=evaluations,
                seconds=time.time() - t_start)


def run(c: EdgeConfig, rec, workdir=None) -> None:
    """Search the edge; one run per seed whose history is the bracket [lo, hi] per round, extras['edge']."""
    result = find_edge(diagonal_config(c), 0, seeds=c.seeds, steps=c.steps, lo=c.lo, hi=c.hi or None, tol=c.tol,
                       progress=rec.progress)
    for k, seed in enumerate(result["seeds"]):
        i = rec.add_run(f"seed {seed}", label="edge", seed=seed, spec=dict(seed=seed))
        for j, bracket in enumerate(result["rounds"]):
            rec.log(i, j + 1, lo=bracket["lo"][k], hi=bracket["hi"][k])
        rec.finish_run(i, "done", final=dict(edge=result["edges"][k]))
    rec.snapshot(None, "edge", result)
