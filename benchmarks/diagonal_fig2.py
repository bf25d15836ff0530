"""Fig. 2 of the paper (diagonal linear networks) end to end: engine vs a straightforward implementation.

Measured: `python -m engine run diagonal --preset fig2 --no-cache` -- four SGD runs of 1e5 + 1 steps on the
authors' data, train/test loss, rank(phi) on 400 fresh inputs and ||u*v||_0 at each of 300 checkpoints --
took 0.92 s (best of 5, spread 0.92-0.95) as a whole process (start-up and imports included, ~0.6 s of it)
on a quiet 2-core AMD EPYC, and 1.83 s (1.83-1.85) on 2026-12-02 when the same machine ran everything ~2x
slower; 13-14x faster than a straightforward implementation of the same figure (per-step numpy, one run at a
time, a full SVD of the 400 x 400 phi per checkpoint; 13.3 s and 23.4 s on one BLAS thread in the same two
runs), more when the baseline runs with two BLAS threads or under load. Python 3.11.7, numpy 2.4.6 (OpenBLAS
0.3.31), numba 0.68.1.

How measured: the engine command runs as a subprocess, once to warm numba's on-disk cache, then
`--repeats` times; the best wall time counts (the machine is shared). The straightforward version runs
in this process (its imports not counted), once with numpy's default BLAS threads (as a user would run
it) and once limited to one thread (its fastest setting when the other core is busy). Both use the same
data, sample streams, schedules and checkpoints; the script checks that they agree on the small-step
run (the large steps bounce chaotically, so a different summation order changes their details, not their
trend) and prints both sets of final values. Numbers and machine: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.results import write  # noqa: E402
from engine.core import schedules  # noqa: E402
from engine.core.recording import Recorder  # noqa: E402
from engine.diagonal import data as diagonal_data  # noqa: E402
from engine.diagonal import experiment as diagonal  # noqa: E402
from engine.diagonal.config import LOSS_LIMIT, DiagonalConfig  # noqa: E402


# ----------------------------------------------------------------------------- engine, as a user runs it
def time_engine(repeats: int) -> list[float]:
    """Wall seconds of whole `python -m engine run diagonal --preset fig2 --no-cache --quiet` processes."""
    cmd = [sys.executable, "-m", "engine", "run", "diagonal", "--preset", "fig2", "--no-cache", "--quiet"]
    env = dict(os.environ, SPARSE_SGD_CACHE=str(ROOT / "cache" / "bench"))
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)  # warm-up: builds numba's cache if needed
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, env=env, check=True)
        times.append(time.perf_counter() - t)
    return times


# ----------------------------------------------------------------------------- straightforward version
def straightforward(c: DiagonalConfig) -> list[dict]:
    """The same figure the obvious way: per-step numpy updates, one run after the other, full SVD of phi."""
    data = diagonal_data.make_data(c)
    x, y, x_test, y_test, fresh = data.x, data.y, data.x_test, data.y_test, data.x_fresh
    checkpoints = set(schedules.checkpoint_steps(c.steps, 100, c.checkpoints).tolist())
    results = []
    for run in c.runs:
        lr = schedules.step_decay(run.lr, c.steps, run.decay_at, run.decay_factor)
        idx = np.random.RandomState(c.first_seed).randint(c.n, size=c.steps)
        u, v = np.full(c.d, c.init_scale), np.zeros(c.d)
        history, status = [], "done"
        for t in range(c.steps + 1):
            if t in checkpoints:
                beta = u * v
                train = np.sum((x @ beta - y) ** 2) / (2 * c.n)
                if not np.isfinite(train) or train > LOSS_LIMIT:
                    status = "diverged"
                    break
                s = np.linalg.svd(np.hstack([fresh * v, fresh * u]), compute_uv=False)
                test = np.sum((x_test @ beta - y_test) ** 2) / (2 * len(y_test))
                rank = int((s / s[0] > c.rank_tau).sum())
                history.append(dict(step=t, train_loss=train, test_loss=test, ntk_rank=rank,
                                    l0_norm=int((abs(beta) > 1e-50).sum())))
            if t == c.steps:
                break
            i = idx[t]
            e = x[i] @ (u * v) - y[i]
            u, v = u - lr[t] * e * x[i] * v, v - lr[t] * e * x[i] * u
        results.append(dict(name=run.name, status=status, final=history[-1]))
    return results


# ----------------------------------------------------------------------------- report
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed engine runs (best counts)")
    parser.add_argument("--one-thread", action="store_true",
                        help="time the straightforward version with one BLAS thread only (the ratio README quotes)")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    engine_times = time_engine(args.repeats)
    c = diagonal.PRESETS["fig2"].config
    plain_times = {}
    for threads in (1,) if args.one_thread else (None, 1):
        with threadpool_limits(threads), np.errstate(all="ignore"):
            t = time.perf_counter()
            plain = straightforward(c)
            plain_times["default BLAS threads" if threads is None else "1 BLAS thread"] = time.perf_counter() - t
    rec = Recorder("diagonal", c.to_dict())
    with threadpool_limits(1):
        diagonal.run(c, rec, None)
    engine_runs = rec.view()["runs"]
    # the small step is not chaotic: both must agree
    assert engine_runs[0]["final"]["l0_norm"] == plain[0]["final"]["l0_norm"] == 200
    best = min(engine_times)
    print(f"load average before: {load:.2f}, after: {os.getloadavg()[0]:.2f}")
    print(f"engine (whole process), best of {args.repeats}: {best:.2f} s  (all: "
          + ", ".join(f"{x:.2f}" for x in engine_times) + ")")
    for name, seconds in plain_times.items():
        print(f"straightforward, {name} (in process): {seconds:.1f} s  -> ratio {seconds / best:.0f}x")
    for e, p in zip(engine_runs, plain, strict=True):
        print(f"  {e['name']:<22} engine l0 {e['final']['l0_norm']:>5.0f} rank {e['final']['ntk_rank']:>5.0f} | "
              f"straightforward l0 {p['final']['l0_norm']:>5} rank {p['final']['ntk_rank']:>5}")
    write("diagonal_fig2", dict(
        engine_best_s=best, engine_all_s=engine_times, load_before=load,
        straightforward_s=plain_times, ratio_1_thread=plain_times["1 BLAS thread"] / best,
        ratio_default_threads=plain_times["default BLAS threads"] / best if not args.one_thread else None,
        final_l0=dict(engine=[e["final"]["l0_norm"] for e in engine_runs], straightforward=[p["final"]["l0_norm"]
                                                                                           for p in plain])))


if __name__ == "__main__":
    main()
