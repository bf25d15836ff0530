"""Edge of stability of SGD on a diagonal-network data set: the largest constant step size that survives,
per sampling seed (docs/experiments.md §2: the sparsifying window sits just below it and moves with the data).

`find_edge` is the search (all seeds and candidate step sizes advance together in the compiled loop); `run`
wraps it as a job so the page can run it in the background with progress.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.core import exact
from engine.core.config import Config, Preset, param, parse_json
from engine.diagonal.config import LOSS_LIMIT, DiagonalConfig, DiagonalRun
from engine.diagonal.data import make_data
from engine.diagonal.sim import ALGORITHMS, CHUNK_OPS, Simulator, Trajectories, sde_delta
from engine.diagonal.window import probe_window

TITLE = "Diagonal networks: edge of stability finder (largest surviving step size)"
MAX_REL_WIDTH = 0.1  # a bracket counts as narrow only once it is also within 10% of its upper end, whatever tol is


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
    tol: float = param(0.002, 1e-5, 1.0, step=0.001, log=True, help="stop when each bracket is this narrow (and "
                       "within 10% of its upper end)")
    window_runs: str = param("", help="JSON list of diagonal runs (schedules) to measure the sparsifying window "
                             "with, below the edge ('' = edge only)")
    window_steps: int = param(100_001, 100, 1_000_001, step=1000, help="steps of the window's runs")

    def check(self) -> None:
        if self.r > self.d:
            raise ValueError(f"r={self.r} must not exceed d={self.d}")
        if self.hi and self.hi <= self.lo:
            raise ValueError(f"hi={self.hi} must exceed lo={self.lo}")
        self.window()  # raises ValueError naming the problem

    def window(self) -> tuple[DiagonalRun, ...]:
        """The runs whose schedules measure the window (none: edge only)."""
        if not self.window_runs:
            return ()
        rows = parse_json(self.window_runs, "window_runs")
        if not isinstance(rows, list) or not 1 <= len(rows) <= 8:
            raise ValueError("window_runs: expected a JSON list of 1 to 8 runs")
        runs = tuple(DiagonalRun.from_dict(r, f"window_runs.{i}.") for i, r in enumerate(rows))
        names = [r.name for r in runs]
        if len(set(names)) != len(names):
            raise ValueError(f"window_runs: names must differ, got {names}")
        return runs


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
    and candidates advancing together in the compiled loop) until each bracket [a step seen to survive, one seen
    to diverge] is narrower than `tol` and than MAX_REL_WIDTH x its upper end. ValueError when a seed's edge
    lies outside the search range: nothing above `lo` survives, or everything up to a given `hi` does.
    Survival is not monotone in the step size (the bouncing is chaotic); the search follows the first
    divergence above the last survivor. Returns per-seed `edges` (largest step seen to survive) and
    `upper` (smallest seen to diverge above it), their `median`, `min`, `max` and `spread`. With capped steps
    a late divergence can be missed, so the edge of a longer run can lie lower. (Which steps below the edge
    sparsify is measured by engine.diagonal.window.probe_window.)"""
    t_start = time.time()
    spec = c.runs[run_index]
    steps = int(steps or min(c.steps, 20_001))
    data = make_data(c)
    seed_list = list(range(c.first_seed, c.first_seed + seeds))
    given_hi = None
    if hi is None:
        scale = c.init_scale**2 * c.d * exact.mean(data.x**2)
        hi = float(np.clip(2.0 * spec.batch_size / max(scale, 1e-12), 1e-4, 100.0))
    else:
        given_hi = float(hi)
    lo = 0.0 if lo is None else float(lo)
    lows, highs = np.full(seeds, lo), np.full(seeds, float(hi))
    hi_known = np.zeros(seeds, dtype=bool)  # whether highs[s] is known to diverge
    lo_known = np.zeros(seeds, dtype=bool)  # whether lows[s] is known to survive

    def narrow() -> np.ndarray:  # per seed: the bracket is narrow enough (a seed with no survivor above lo stops
        return hi_known & (highs - lows <= np.minimum(tol, MAX_REL_WIDTH * highs))  # too, and is an error below)

    rounds, evaluations = [], 0
    algo = ALGORITHMS.index(spec.algorithm)
    for round_no in range(40):
        width = highs - lows
        if narrow().all():
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
                lo_known[si] = True
                if hi_known[si]:
                    lows[si] = grid[si, -1]
                else:  # every candidate survived up to hi: widen
                    lows[si], highs[si] = grid[si, -1], 2 * highs[si]
            else:
                j = bad[0]
                if j > 0:
                    lows[si], lo_known[si] = grid[si, j - 1], True
                highs[si], hi_known[si] = grid[si, j], True
        rounds.append(dict(lo=lows.tolist(), hi=highs.tolist()))
    for si, s in enumerate(seed_list):
        if not lo_known[si]:
            raise ValueError(f"seed {s}: no step size above lo={lo:g} survived {steps:,} steps (every one tried down "
                             f"to {highs[si]:.4g} diverged): the edge lies below the search range")
        if not hi_known[si] or (given_hi is not None and lows[si] > given_hi):
            raise ValueError(f"seed {s}: every step size tried up to {lows[si]:.3g} survived {steps:,} steps: the "
                             f"edge lies above the search range" + (f" (hi={given_hi:g})" if given_hi else ""))
    edges = lows.copy()
    return dict(seeds=seed_list, edges=edges.tolist(), upper=highs.tolist(), median=float(np.median(edges)),
                min=float(edges.min()), max=float(edges.max()), spread=float(edges.max() - edges.min()),
                steps=steps, tol=tol, run=spec.name,
                batch_size=spec.batch_size, algorithm=spec.algorithm, rounds=rounds, evaluations=evaluations,
                seconds=time.time() - t_start)


def run(c: EdgeConfig, rec, workdir=None) -> None:
    """Search the edge, then (with window_runs) measure the sparsifying window below it; one run per seed whose
    history is the bracket [lo, hi] per round; extras['edge'] and extras['window']."""
    window_runs = c.window()
    share = 0.5 if window_runs else 1.0  # of the progress bar
    result = find_edge(diagonal_config(c), 0, seeds=c.seeds, steps=c.steps, lo=c.lo, hi=c.hi or None, tol=c.tol,
                       progress=lambda f, m: rec.progress(share * f, m))
    for k, seed in enumerate(result["seeds"]):
        i = rec.add_run(f"seed {seed}", label="edge", seed=seed, spec=dict(seed=seed))
        for j, bracket in enumerate(result["rounds"]):
            rec.log(i, j + 1, lo=bracket["lo"][k], hi=bracket["hi"][k])
        rec.finish_run(i, "done", final=dict(edge=result["edges"][k]))
    rec.snapshot(None, "edge", result)
    if window_runs:
        probe = diagonal_config(c).replace(steps=c.window_steps, runs=window_runs)
        rec.snapshot(None, "window", probe_window(probe, list(window_runs), result["median"],
                                                  progress=lambda f, m: rec.progress(share + share * f, m)))
