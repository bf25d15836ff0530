"""The diagonal phase diagram `map-fig2` end to end: engine sweep (local processes, 2-worker Dask LocalCluster) vs
a straightforward per-run numpy loop.

Measured (2026-12-02, 2-core AMD EPYC, Python 3.11.7, numpy 2.4.6, numba 0.68.1, dask/distributed 2026.8.0,
load 1.47 -> 2.51): `python -m engine sweep diagonal --preset map-fig2 --no-cache` -- 11 step sizes x 4 decay
times x 10 sampling seeds = 440 SGD runs of 100,001 steps on the Fig. 2 data, final test loss, ||u*v||_0,
rank(phi) and divergence -- takes 11.8 s as a whole CLI process on local worker processes (best of 3: 11.8,
12.5, 15.0 s) and 11.8 s on a 2-worker Dask LocalCluster (11.8, 11.9, 12.0 s), 33x the straightforward loop
(per-step numpy, one run after the other, final metrics; 0.88 s a run over 6 timed runs, 385 s for 440).
benchmarks/README.md has the table and the machine's state.

How measured: each engine variant runs once to warm up (numba's on-disk cache, worker start), then `--repeats`
times with --no-cache; the best wall time counts (the machine is shared: the load average is printed). The
local variant uses one worker process per core; the Dask variant a LocalCluster of 2 worker processes with one
thread each, started in this script (its start not timed, as an existing cluster's would not be). The script
checks that both variants give the same cells, and that the straightforward loop agrees with the engine on a
non-chaotic point (step 0.20: every seed survives, ||u*v||_0 = 200).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.core import schedules  # noqa: E402
from engine.diagonal import data as diagonal_data  # noqa: E402
from engine.diagonal.config import DiagonalConfig  # noqa: E402
from engine.sweeps import grid as sweeps  # noqa: E402


# ----------------------------------------------------------------------------- engine, as a user runs it
def time_cli(extra: list[str], repeats: int, out: Path) -> list[float]:
    """Wall seconds of whole `python -m engine sweep diagonal --preset map-fig2 --no-cache` processes."""
    cmd = [sys.executable, "-m", "engine", "sweep", "diagonal", "--preset", "map-fig2", "--no-cache", "--quiet",
           "--json", str(out), *extra]
    env = dict(os.environ, SPARSE_SGD_CACHE=tempfile.mkdtemp(prefix="bench-sweep-"))
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, env=env, check=True)
        times.append(time.perf_counter() - t)
    return times


# ----------------------------------------------------------------------------- straightforward version
def straightforward(c: DiagonalConfig, seed: int) -> dict:
    """One point's run for one seed the obvious way: per-step numpy SGD, then the final metrics."""
    data = diagonal_data.make_data(c)
    run = c.runs[0]
    lr = schedules.step_decay(run.lr, c.steps, run.decay_at, run.decay_factor)
    idx = np.random.RandomState(seed).randint(c.n, size=c.steps)
    u, v = np.full(c.d, c.init_scale), np.zeros(c.d)
    for t in range(c.steps):
        i = idx[t]
        e = data.x[i] @ (u * v) - data.y[i]
        if not abs(e) <= 1e6:
            return dict(status="diverged")
        u, v = u - lr[t] * e * data.x[i] * v, v - lr[t] * e * data.x[i] * u
    beta = u * v
    s = np.linalg.svd(np.hstack([data.x_fresh * v, data.x_fresh * u]), compute_uv=False)
    return dict(status="done", test_loss=float(np.sum((data.x_test @ beta - data.y_test) ** 2) / (2 * c.n_test)),
                l0_norm=int((abs(beta) > 1e-50).sum()), ntk_rank=int((s / s[0] > c.rank_tau).sum()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed engine runs per variant (best counts)")
    parser.add_argument("--plain", type=int, default=4, help="straightforward runs timed (scaled to 440)")
    args = parser.parse_args()
    plan = sweeps.build("diagonal", "map-fig2")
    runs = plan.size * plan.seeds
    load = os.getloadavg()[0]
    out = Path(tempfile.mkdtemp()) / "local.json"
    local = time_cli([], args.repeats, out)
    local_cells = json.loads(out.read_text())["cells"]

    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        out_dask = out.with_name("dask.json")
        dask = time_cli(["--scheduler", cluster.scheduler_address], args.repeats, out_dask)
    def results(cells: list[dict]) -> list[dict]:
        return [{k: v for k, v in c.items() if k != "worker"} for c in cells]

    assert results(json.loads(out_dask.read_text())["cells"]) == results(local_cells), "local and Dask cells differ"

    configs = plan.configs()
    with threadpool_limits(1), np.errstate(all="ignore"):
        t = time.perf_counter()
        plain = [straightforward(configs[(k * 7) % len(configs)], 1 + k % 10) for k in range(args.plain)]
        per_run = (time.perf_counter() - t) / args.plain
        first = straightforward(configs[0], 1)  # step 0.20, decay at 10%: not chaotic
    assert first["l0_norm"] == 200 and local_cells[0]["metrics"]["l0_norm"]["median"] == 200
    print(f"map-fig2: {plan.size} points x {plan.seeds} seeds = {runs} runs of {plan.base.steps:,} steps")
    print(f"load average before: {load:.2f}, after: {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores")
    for name, times in (("local processes", local), ("Dask LocalCluster, 2 workers", dask)):
        print(f"engine, {name} (whole CLI process), best of {args.repeats}: {min(times):.1f} s  (all: "
              + ", ".join(f"{x:.1f}" for x in times) + f")  -> {per_run * runs / min(times):.0f}x")
    print(f"straightforward: {per_run:.2f} s per run ({args.plain} timed: "
          + ", ".join(p["status"] for p in plain) + f") -> {per_run * runs:.0f} s for {runs} runs")


if __name__ == "__main__":
    main()
