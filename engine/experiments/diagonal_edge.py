"""Edge of stability of SGD on a diagonal-network data set: the largest constant step size that survives,
per sampling seed (EXPERIMENTS section 2: the sparsifying window sits just below it and moves with the data).

A job wrapper around `diagonal.find_edge` so the page can run the search in the background with progress.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.config import Config, param
from engine.experiments import Preset
from engine.experiments.diagonal import ALGORITHMS, DiagonalConfig, DiagonalRun, find_edge

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
