"""What the two ReLU experiments (relu1d, teacher_student) share: the spec of one run (a warmup-then-decay SGD
schedule, with each experiment's bounds) and the training of every run x seed, recorded into a Recorder.

Every (run, seed) is one row of one compiled SGD loop (`relu_nets.train`): each seed's training set is stacked
into one array and its sample indices shifted to its block, so a row computes exactly what it computes alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from engine.core.config import Config, check_runs, check_work, param
from engine.core.schedules import checkpoint_steps, linear_warmup
from engine.relu import nets as rn
from engine.relu.curvature import hessian_trace, top_hessian_eigen

MAX_RUNS = 8            # runs in one job's table
MAX_WORK = 2_500_000    # steps x runs x seeds of one job: every preset at 20 seeds is at most 1.3 million
                        # (Fig. 4: 77 s, Fig. 5: 46 s, Fig. 6 at 0.8 million: 110 s on the 2-core dev machine)


# ----------------------------------------------------------------------------- one run
def warmup_run_spec(lrs: tuple[float, float, float, float], max_factor: float, max_batch: int,
                    default_factor: float = 1.0, default_at: float = 1.0, default_decay: float = 1.0) -> type[Config]:
    """The dataclass of one run with an experiment's bounds and defaults: `lrs` = (default, lo, hi, widget step)
    of lr, the largest warmup factor and batch size, and the default warmup factor, decay time and decay."""

    @dataclass(frozen=True)
    class WarmupRun(Config):
        """One SGD schedule: warmup lr -> lr * factor over the first `at` of training, then / decay."""

        name: str = param("run", help="run name")
        lr: float = param(lrs[0], lrs[1], lrs[2], step=lrs[3], help="base step size η₀", log=True, label="η₀")
        warmup_factor: float = param(default_factor, 1.0, max_factor, step=0.5, label="warmup factor W",
                                     help="warmup to lr * factor (1 = no warmup)")
        warmup_exponent: float = param(1.0, 0.1, 4.0, step=0.1, label="exponent e",
                                       help="warmup exponent e: η₀ (1 + (W-1)(i/N)^e)")
        at: float = param(default_at, 0.0, 1.0, step=0.01, label="phase length s",
                          help="warmup/decay time, as a fraction of training (1 = never)")
        decay: float = param(default_decay, 1.0, 100.0, step=0.1, label="decay factor",
                             help="step size divided by this at the end of the warmup")
        batch_size: int = param(1, 1, max_batch, step=1, help="SGD batch size (without replacement within a batch)")

        def schedule(self, steps: int) -> np.ndarray:
            return linear_warmup(self.lr, steps, self.warmup_factor, self.warmup_exponent, self.at, self.decay)

    return WarmupRun


SEEDS_HELP = "repeat every run over this many seeds: seed, seed+1, ..."
SHARPNESS_HELP = ("log the top eigenvalue lambda_max of the training loss's Hessian (full training set, exact "
                  "Hessian-vector products, Lanczos to 1e-10 relative, warm-started from the run's previous "
                  "checkpoint) against 2/eta, and its trace, at every checkpoint")


def check_seeds(c: Config) -> None:
    """The last seed of a repeat stays within the seed field's bounds."""
    hi = next(f.metadata["hi"] for f in fields(c) if f.name == "seed")
    if c.seed + c.seeds - 1 > hi:
        raise ValueError(f"seed={c.seed} with seeds={c.seeds} goes past the largest seed {hi}")


def check_bounds(c: Config) -> None:
    """One job's work stays within its limits: MAX_RUNS runs, MAX_WORK steps x runs x seeds."""
    check_runs(c, MAX_RUNS)
    check_work(MAX_WORK, steps=c.steps, runs=len(c.runs), seeds=c.seeds)


# ----------------------------------------------------------------------------- runs x seeds
@dataclass(frozen=True)
class SeedData:
    """What one seed trains on: inputs x (n, d), labels y (n,), the initial params (p,) every run starts from,
    and whatever else the experiment's metrics need (`extra`: phi's fresh inputs, a test set...)."""

    seed: int
    x: np.ndarray
    y: np.ndarray
    init: np.ndarray
    extra: Any = None


def train_runs(c: Config, rec, layout: rn.Layout, data: list[SeedData],
               metrics: Callable[[np.ndarray, SeedData], list[dict]],
               snapshot: tuple[str, Callable[[np.ndarray, SeedData], dict]]) -> None:
    """Train every run of `c` from every seed's init on that seed's data (SGD's samples from the seed too), as rows
    of one loop; record one Recorder run per (run, seed), named "<run> [seed s]" when there are several seeds.
    At each checkpoint a row logs lr and `metrics(params (C, p), seed data)` (one dict per param set), and with
    `c.sharpness` the Hessian's top eigenvalue and trace (`curvature`); at `c.snapshots` of them the first seed's
    runs store snapshot[0] = snapshot[1](params (p,), seed data)."""
    dtype = np.float32 if c.dtype == "float32" else np.float64
    ckpts = checkpoint_steps(c.steps, count=c.checkpoints)
    shown = set(ckpts[np.unique(np.linspace(0, len(ckpts) - 1, c.snapshots).round().astype(int))].tolist())
    lrs = np.stack([r.schedule(c.steps) for r in c.runs])
    rec.snapshot(None, "schedules", dict(step=ckpts, lr=lrs[:, np.minimum(ckpts, c.steps - 1)]))
    rows = [(r, k) for r in range(len(c.runs)) for k in range(len(data))]   # run-major, like the ids
    ids = [rec.add_run(c.runs[r].name if len(data) == 1 else f"{c.runs[r].name} [seed {data[k].seed}]",
                       label=c.runs[r].name, seed=data[k].seed, spec=c.runs[r].to_dict()) for r, k in rows]

    # each seed's training set is a block of the stacked data: shift its sample indices (-1 = padding) there
    n = len(data[0].x)
    idx = [rn.batch_indices(n, c.steps, [r.batch_size for r in c.runs], s.seed) for s in data]
    idx = np.stack([np.where(idx[k][r] >= 0, idx[k][r] + k * n, -1) for r, k in rows])
    x, y = np.concatenate([s.x for s in data]), np.concatenate([s.y for s in data])
    params = np.stack([data[k].init for _, k in rows]).astype(dtype)
    key, draw = snapshot
    warm: dict[int, np.ndarray] = {}  # row -> lambda_max's eigenvector at its last checkpoint

    def log_rows(items: list) -> None:
        for k, s in enumerate(data):
            mine = [(step, i, p) for step, i, p in items if rows[i][1] == k]
            if not mine:
                continue
            batch = np.stack([p for _, _, p in mine])
            found = metrics(batch, s)
            if getattr(c, "sharpness", False):
                found = [dict(row, **extra) for row, extra in
                         zip(found, curvature(layout, batch, s, [i for _, i, _ in mine], warm), strict=True)]
            for (step, i, p), row in zip(mine, found, strict=True):
                rec.log(ids[i], step, lr=lrs[rows[i][0], min(step, c.steps - 1)], **row)
                if k == 0 and step in shown:
                    rec.snapshot(ids[i], key, draw(p, s), step=step)

    trainer = rn.train(layout, params, x, y, idx, np.stack([lrs[r] for r, _ in rows]), ckpts,
                       rn.resolve_device(c.device))
    rn.record(rec, ids, trainer, c.steps, log_rows)


def curvature(layout: rn.Layout, params: np.ndarray, s: SeedData, rows: list[int],
              warm: dict[int, np.ndarray]) -> list[dict]:
    """`sharpness` (lambda_max) and `hessian_trace` of the training loss on the seed's whole training set for each
    param set (C, p) of rows `rows`; Lanczos starts from each row's eigenvector in `warm` (updated here)."""
    start = np.random.default_rng(0x5A4).standard_normal(params.shape[1])
    starts = np.stack([warm.get(i, start) for i in rows])
    top = top_hessian_eigen(layout, params, s.x, s.y, starts)
    for i, vector in zip(rows, top.vector, strict=True):
        warm[i] = vector
    trace = hessian_trace(layout, params, s.x, s.y)
    return [dict(sharpness=float(a), hessian_trace=float(b)) for a, b in zip(top.value, trace, strict=True)]
