"""Simulator of the diagonal-network experiments: every run of a config, for every sampling seed, as rows of
one (rows, d) state advanced chunk by chunk by the compiled loop (engine.diagonal.kernels), with the SGD
sample streams and the SDE's noise drawn so that no row depends on the others or on the chunking."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from engine.core import schedules
from engine.diagonal.data import Data
from engine.diagonal.kernels import GD, SDE, SGD, advance

if TYPE_CHECKING:
    from engine.diagonal.config import DiagonalConfig, DiagonalRun

ALGORITHMS = ("SGD", "GD", "SDE")  # in the order of the kernel's codes SGD, GD, SDE
CHUNK_OPS = 2e8            # kernel work between two live updates (~0.05 s here)


def sde_delta(run: DiagonalRun, n: int) -> float:
    """Noise intensity delta of Eq. 8 for an SDE run: 2 L / (n B) at loss level L = noise_level.

    Why: one SGD step is a GD step plus eta/n * (X^T xi) * v with label noise xi_j = r_j (1 - n 1[j = i_t])
    (Prop. 1), whose covariance is n diag(r^2) - r r^T ~ n (2 L) I when the loss stays at L (r_j^2 ~ 2L;
    the rank-one term is dropped, as in Claim 4). So SGD's per-step noise covariance is
    eta^2 (2L/n) D_v X^T X D_v (and / B for a batch of B). One Euler-Maruyama step of Eq. 8 with dt = eta
    adds sqrt(eta delta) v * (X^T dB), dB ~ N(0, eta I_n): covariance eta^2 delta D_v X^T X D_v. Equal
    when delta = 2 L / (n B)."""
    return 2.0 * run.noise_level / (n * run.batch_size)


class _NoiseStream:
    """Standard normals for one SDE trajectory, n per step, in fixed blocks of steps so that the values
    do not depend on how training is split into chunks."""

    def __init__(self, seed: int, n: int):
        self.seed, self.n = seed, n
        self.block = max(1, 2**16 // n)
        self._cache: dict[int, np.ndarray] = {}

    def take(self, t0: int, t1: int) -> np.ndarray:
        out = np.empty((t1 - t0, self.n))
        for b in range(t0 // self.block, (t1 - 1) // self.block + 1 if t1 > t0 else 0):
            if b not in self._cache:
                self._cache = {b: np.random.default_rng([self.seed, 0x5DE, b]).standard_normal((self.block, self.n))}
            lo, hi = max(t0, b * self.block), min(t1, (b + 1) * self.block)
            out[lo - t0:hi - t0] = self._cache[b][lo - b * self.block:hi - b * self.block]
        return out.ravel()


@dataclass(frozen=True)
class Options:
    """A run's changes to plain SGD / GD (the runs table's SAM, step rule and weight decay columns)."""

    rho: float = 0.0          # SAM radius (0: no SAM)
    one_sam: bool = False     # 1-SAM (a perturbation per sample) rather than n-SAM (one per batch)
    normalized: bool = False  # step eta g / ||g||
    wd: float = 0.0           # weight decay: g += wd (u, v)

    @property
    def plain(self) -> bool:
        return self.rho == 0 and not self.normalized and self.wd == 0


PLAIN = Options()


def run_options(run: DiagonalRun) -> Options:
    """The kernel's options of a run of the table."""
    return Options(run.sam_rho, run.sam == "1-SAM", run.step_rule == "normalized", run.weight_decay)


@dataclass
class Trajectories:
    """Rows of the compiled loop: one per distinct trajectory (GD runs do not depend on the seed)."""

    algo: list[int] = field(default_factory=list)
    batch: list[int] = field(default_factory=list)
    sched: list[int] = field(default_factory=list)
    seed: list[int] = field(default_factory=list)
    sqrt_delta: list[float] = field(default_factory=list)
    options: list[Options] = field(default_factory=list)

    def add(self, algo: int, batch: int, sched: int, seed: int, sqrt_delta: float = 0.0,
            options: Options | None = None) -> int:
        key = (algo, batch, sched, seed if algo != GD else -1, sqrt_delta, options or PLAIN)
        columns = (self.algo, self.batch, self.sched, self.seed, self.sqrt_delta, self.options)
        for i, row in enumerate(zip(*columns, strict=True)):
            if row == key:
                return i
        for lst, value in zip(columns, key, strict=True):
            lst.append(value)
        return len(self.algo) - 1


class Simulator:
    """All trajectories of a config as one (rows, d) state, advanced chunk by chunk by the compiled loop."""

    def __init__(self, data: Data, rows: Trajectories, lr_table: np.ndarray, init_scale: float):
        self.x, self.y = data.x, data.y
        self.n, self.d = data.x.shape
        self.rows = len(rows.algo)
        self.algo = np.array(rows.algo, dtype=np.int64)
        self.batch = np.array(rows.batch, dtype=np.int64)
        self.sched = np.array(rows.sched, dtype=np.int64)
        self.sqrt_delta = np.array(rows.sqrt_delta, dtype=np.float64)
        self.variant = np.array([not o.plain for o in rows.options], dtype=np.bool_)
        self.rho = np.array([o.rho for o in rows.options], dtype=np.float64)
        self.one_sam = np.array([o.one_sam for o in rows.options], dtype=np.bool_)
        self.normalized = np.array([o.normalized for o in rows.options], dtype=np.bool_)
        self.wd = np.array([o.wd for o in rows.options], dtype=np.float64)
        self.lr = np.ascontiguousarray(lr_table, dtype=np.float64)
        self.u = np.full((self.rows, self.d), float(init_scale))
        self.v = np.zeros((self.rows, self.d))
        self.alive = np.ones(self.rows, dtype=np.bool_)
        self.died = np.full(self.rows, -1, dtype=np.int64)
        self.t = 0
        # SGD sample streams, one per (seed, batch): RandomState(seed).randint(n, size=steps * B), drawn by chunk
        keys = sorted({(s, b) for a, s, b in zip(rows.algo, rows.seed, rows.batch, strict=True) if a == SGD})
        self._streams = [np.random.RandomState(s) for s, _ in keys]
        self._stream_batch = np.array([b for _, b in keys] or [1], dtype=np.int64)
        self.stream = np.array([keys.index((s, b)) if a == SGD else 0
                                for a, s, b in zip(rows.algo, rows.seed, rows.batch, strict=True)], dtype=np.int64)
        noise_seeds = sorted({s for a, s in zip(rows.algo, rows.seed, strict=True) if a == SDE})
        self._noise = [_NoiseStream(s, self.n) for s in noise_seeds]
        self.noise_of = np.array([noise_seeds.index(s) if a == SDE else 0
                                  for a, s in zip(rows.algo, rows.seed, strict=True)], dtype=np.int64)
        per_step = np.where(self.algo == SGD, self.d * (2 * self.batch + 2), 2 * self.n * self.d + 2 * self.d) + 20
        per_step = np.where(self.variant, 2 * per_step, per_step)  # SAM: two gradients a step
        self.ops_per_step = float(per_step.sum())

    def advance(self, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Train to each step of `stops` (ascending); the states there, shape (len(stops), rows, d)."""
        stops = np.ascontiguousarray(stops, dtype=np.int64)
        length = int(stops[-1]) - self.t
        idx = np.zeros((len(self._streams) or 1, max(length, 1) * int(self._stream_batch.max())), dtype=np.int64)
        for q, rs in enumerate(self._streams):
            idx[q, : length * self._stream_batch[q]] = rs.randint(self.n, size=length * self._stream_batch[q])
        if self._noise:
            noise = np.stack([s.take(self.t, self.t + length) for s in self._noise])
        else:
            noise = np.zeros((1, 1))
        out_u = np.empty((len(stops), self.rows, self.d))
        out_v = np.empty((len(stops), self.rows, self.d))
        advance(self.u, self.v, self.x, self.y, self.algo, self.batch, self.lr, self.sched, self.stream, idx,
                self.noise_of, noise, self.sqrt_delta, self.t, stops, out_u, out_v, self.alive, self.died,
                self.variant, self.rho, self.one_sam, self.normalized, self.wd)
        self.t = int(stops[-1])
        return out_u, out_v

    def chunks(self, steps: np.ndarray, ops: float = CHUNK_OPS, values: float = 4e6) -> list[np.ndarray]:
        """Split checkpoint steps into consecutive groups of about `ops` kernel work each, holding at most
        `values` state entries (checkpoints x rows x d)."""
        groups, start = [], 0
        span = max(1.0, ops / self.ops_per_step)
        most = int(max(1, min(256, values // (self.rows * self.d))))
        for k in range(1, len(steps) + 1):
            if k == len(steps) or steps[k] - steps[start] > span or k - start >= most:
                groups.append(steps[start:k])
                start = k
        return groups


def plan(c: DiagonalConfig) -> tuple[Trajectories, np.ndarray, list[tuple[int, int, int]]]:
    """Rows of the compiled loop, the step-size table (one schedule per run of the config) and the recorded
    runs as (run index, sampling seed, row)."""
    rows = Trajectories()
    lr_table = np.stack([schedules.step_decay(run.lr, c.steps, run.decay_at, run.decay_factor) for run in c.runs])
    recorded = []
    for k, run in enumerate(c.runs):
        algo = ALGORITHMS.index(run.algorithm)
        delta = sde_delta(run, c.n) if algo == SDE else 0.0
        for s in range(c.first_seed, c.first_seed + c.seeds):
            recorded.append((k, s, rows.add(algo, run.batch_size, k, s, float(np.sqrt(delta)), run_options(run))))
    return rows, lr_table, recorded
