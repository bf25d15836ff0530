"""The sparsifying window below the edge of stability, measured: which step sizes, run with the table's own
schedules for the full length, survive *and* sparsify, seed by seed.

The edge search (engine.diagonal.edge.find_edge) brackets the largest constant step that survives a
few thousand steps; the steps that sparsify sit in a narrow band just below it (about 0.27-0.29 on Fig. 2's
data), and 5% lower nothing sparsifies. So a proposal is measured, not assumed: every candidate step (a fraction
of the median edge) trains every given run schedule for every seed, and the candidate where the most of them
survive with ||u*v||_0 at most 90% of d is proposed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine.core import schedules
from engine.core.metrics import l0_norm
from engine.diagonal.data import make_data
from engine.diagonal.sim import ALGORITHMS, CHUNK_OPS, Simulator, Trajectories, sde_delta

FRACTIONS = (0.95, 0.97, 0.98, 0.99, 1.0, 1.01, 1.02, 1.03)  # of the median edge (decayed runs survive a bit above it)
SPARSE_SHARE = 0.9  # a run sparsified when ||u*v||_0 <= 90% of d (the small steps of Fig. 2 keep all d)


def probe_window(c, runs: list, edge: float, fractions: tuple[float, ...] = FRACTIONS,
                 progress: Callable[[float, str], None] | None = None) -> dict:
    """Train each run of `runs` (DiagonalRun: schedule, algorithm, batch) at lr = f * edge for every fraction f,
    for c.steps steps and c.seeds sampling seeds from c.first_seed, all in one compiled loop. Returns the
    candidates, per candidate the runs x seeds that survived and that sparsified, and the proposal: the
    candidate where the most survived and sparsified (ties: more survivors, then the smaller step)."""
    data = make_data(c)
    seeds = list(range(c.first_seed, c.first_seed + c.seeds))
    candidates = [float(f"{f * edge:.5g}") for f in fractions]
    rows, cells = Trajectories(), []
    lr_table = []
    for k, lr in enumerate(candidates):
        for run in runs:
            lr_table.append(schedules.step_decay(lr, c.steps, run.decay_at, run.decay_factor))
            algo = ALGORITHMS.index(run.algorithm)
            delta = sde_delta(run, c.n) if run.algorithm == "SDE" else 0.0
            for s in seeds:
                cells.append((k, rows.add(algo, run.batch_size, len(lr_table) - 1, s, float(np.sqrt(delta)))))
    sim = Simulator(data, rows, np.stack(lr_table), c.init_scale)
    stops = np.linspace(0, c.steps, 2 + int(sim.ops_per_step * c.steps // CHUNK_OPS)).round().astype(np.int64)[1:]
    for stop in stops:
        u, v = sim.advance(np.array([stop]))
        if progress:
            progress(float(stop) / c.steps, f"window probe: step {int(stop):,} of {c.steps:,}")
    with np.errstate(all="ignore"):
        beta = u[-1] * v[-1]
        finite = np.isfinite(beta).all(axis=1)
    l0 = l0_norm(beta)
    survived = sim.alive & finite
    sparse = survived & (l0 <= SPARSE_SHARE * c.d)
    total = len(runs) * len(seeds)
    per = [dict(lr=lr, fraction=f, survived=0, sparsified=0, l0=[]) for lr, f in zip(candidates, fractions,
                                                                                   strict=True)]
    for k, row in cells:
        per[k]["survived"] += int(survived[row])
        per[k]["sparsified"] += int(sparse[row])
        per[k]["l0"].append(int(l0[row]) if survived[row] else None)
    best = max(range(len(per)), key=lambda k: (per[k]["sparsified"], per[k]["survived"], -k))
    sparsifying = [p["lr"] for p in per if p["sparsified"] > 0]
    return dict(candidates=per, total=total, seeds=seeds, runs=[r.name for r in runs], edge=edge,
                proposal=per[best]["lr"], proposal_fraction=per[best]["fraction"],
                proposal_sparsified=per[best]["sparsified"], proposal_survived=per[best]["survived"],
                lowest_sparsifying=min(sparsifying) if sparsifying else None, steps=c.steps)
