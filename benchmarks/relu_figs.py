"""Fig. 4, 5 and 6 of the paper (small ReLU nets) end to end: engine vs a straightforward implementation.

Each run writes its numbers to benchmarks/results/relu_figs.json (README quotes the latest).
Measured earlier (2026-12-02, 2-core AMD EPYC, Python 3.11.7, numpy 2.4.6, numba 0.68.1, torch 2.14.1 CPU, load
1.8 -> 1.1, the machine in a ~2x slower state than earlier runs, see benchmarks/README.md):
`python -m engine run relu1d --preset fig4 --no-cache` (two runs of 31,623 SGD steps of a 100-unit 1D net)
and `... teacher_student --preset fig5` / `--preset fig6` (four runs of 14,126 / 10,001 steps), with every
metric at each of ~300 checkpoints (train/test loss, rank of the NTK feature matrix phi on p inputs, feature
sparsity per hidden layer, kinks or neuron alignment), take 3.40 / 2.30 / 4.43 s as whole processes (best of
3; spread 3.40-3.42, 2.30-2.32, 4.43-4.77), 13x / 15x / 8x faster than the same figure done the obvious way
(43.3 / 34.4 / 34.7 s). On a quiet day the engine took 1.63 / 1.03 / 2.82 s.

The obvious way ("straightforward"), also run as a whole process (`python benchmarks/relu_figs.py
--naive FIG`): torch nn.Modules trained one run at a time with autograd and torch.optim.SGD, one step
per Python iteration; at each checkpoint phi built in one batched torch.func call (vmap of jacrev), one
np.linalg.svd per checkpoint, and the feature sparsity by np.corrcoef and deleting correlated
columns one at a time (the authors' notebook style, with docs/experiments.md's keep-the-first rule);
one torch and one BLAS thread.
Both use the same data, init (the authors' torch seeds, replayed by engine/torch_draws.py), sample
stream (the authors' np.random.choice stream, shared by all runs), schedules, checkpoints and phi inputs:
the engine's own helpers build them. The script prints both sets of final values and the first
checkpoint where the two train losses differ by more than 1e-3. Runs that stay stable agree to the
printed digits (fig4's 2% run, fig5's small step, fig6's constant and 10% runs). Runs with a long
large-step phase are chaotic: float32 summation order (autograd and BLAS vs the engine's loop) grows
from the last bit into a visible gap (fig5's large steps, 0.455 at the edge of stability: at step 68;
fig4's 50% warmup at step 3,585, fig6's 50% and 30% warmups at 4,528 and 8,011; run of 2026-12-04,
benchmarks/results/relu_figs.json, which records where each run parts), so their details differ and their
trends agree (fewer kinks, lower rank, sparser features, lower test loss, more aligned neurons).

How measured: each engine command runs once to warm numba's on-disk cache, then `--repeats` times;
the best wall time counts (the machine is shared with other jobs). Each straightforward process runs
once. Numbers and machine: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# name: (experiment, preset); each preset at its own seed (fig4: 3, fig5: the authors' 0, fig6: 5).
FIGS = {"fig4": ("relu1d", "fig4"), "fig5": ("teacher_student", "fig5"), "fig6": ("teacher_student", "fig6")}
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# ----------------------------------------------------------------------------- timing whole processes
def timed(cmd: list[str], **env_vars: str) -> tuple[float, str]:
    env = dict(os.environ, SPARSE_SGD_CACHE=str(ROOT / "cache" / "bench"), **env_vars)
    t = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - t, out.stdout


def engine_cmd(fig: str, out: Path) -> list[str]:
    experiment, preset = FIGS[fig]
    return [sys.executable, "-m", "engine", "run", experiment, "--preset", preset, "--no-cache", "--quiet",
            "--json", str(out)]


# ----------------------------------------------------------------------------- straightforward version
def naive(fig: str) -> dict:
    """The figure the obvious way; returns {"final": {run name: final metrics},
    "train_loss": {run name: [[checkpoint step, train loss], ...]}}."""
    import numpy as np
    import torch

    from engine.core.schedules import checkpoint_steps
    from engine.core.sparsity import kinks
    from engine.relu import nets as rn
    from engine.relu import relu1d
    from engine.relu import teacher_student as ts

    torch.set_num_threads(1)
    experiment, preset = FIGS[fig]
    module = relu1d if experiment == "relu1d" else ts
    c = module.PRESETS[preset].config
    if module is relu1d:
        x, y = relu1d.data()
        x, x_test, y_test = x[:, None], None, None
        layout, init = rn.layout_1d(c.width), relu1d.init_params(c)
        fresh = relu1d.fresh_inputs(c.seed, x[:, 0], layout.size)[:, None]  # phi's inputs, as relu1d.run draws them
    else:
        p = ts.problem(c)                         # data, teacher labels, init and phi's inputs (first p test inputs)
        x, y, x_test, y_test, fresh = p["x"], p["y"], p["x_test"], p["y_test"], p["fresh"]
        layout, init = ts.layouts(c)[1], p["student"]

    def net() -> torch.nn.Sequential:
        layers = []
        for k, (w, b) in enumerate(layout.layers(init)):
            lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
            with torch.no_grad():
                lin.weight.copy_(torch.tensor(w, dtype=torch.float32))
                if b is not None:
                    lin.bias.copy_(torch.tensor(b, dtype=torch.float32))
            layers += [lin, torch.nn.ReLU()] if k < layout.depth - 1 else [lin]
        return torch.nn.Sequential(*layers)

    def sparsity(acts: np.ndarray, threshold: float) -> float:
        phi = acts / np.linalg.norm(acts, axis=1, keepdims=True)
        phi[np.isnan(phi)] = 0.0
        keep = list(np.where((phi > 0).sum(0) > 0)[0])
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.abs(np.corrcoef(phi[:, keep].T))
        corr[np.isnan(corr)] = 0.0
        i = 0
        while i < len(keep):                      # delete a column correlated with a kept earlier one
            if (corr[i, :i] > threshold).any():
                corr = np.delete(np.delete(corr, i, 0), i, 1)
                keep.pop(i)
            else:
                i += 1
        return (phi[:, keep] != 0).sum() / phi.size

    fresh_t = torch.tensor(fresh, dtype=torch.float32)

    def rank(model: torch.nn.Module) -> int:
        """phi in one batched call (torch.func: vmap over the inputs of jacrev w.r.t. every parameter), then
        one SVD: the fair way to do it in torch, not one backward pass per input."""
        params = {k: v.detach() for k, v in model.named_parameters()}

        def output(p: dict, xi: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(model, p, (xi[None],))[0, 0]

        jac = torch.func.vmap(torch.func.jacrev(output), in_dims=(None, 0))(params, fresh_t)
        phi = torch.cat([jac[k].reshape(len(fresh_t), -1) for k in params], dim=1).numpy()
        s = np.linalg.svd(phi, compute_uv=False)
        return int((s / s[0] > 1e-4).sum())

    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    checkpoints = set(checkpoint_steps(c.steps, count=c.checkpoints).tolist())
    idx = rn.batch_indices(len(x), c.steps, [r.batch_size for r in c.runs], c.seed)
    finals, curves = {}, {}
    for r, spec in enumerate(c.runs):
        model, lrs = net(), spec.schedule(c.steps)
        opt = torch.optim.SGD(model.parameters(), lr=float(lrs[0]))
        for step in range(c.steps + 1):
            if step in checkpoints:
                with torch.no_grad():
                    out = model(xt)[:, 0]
                    row = dict(train_loss=float(((out - yt) ** 2).mean()))
                    if x_test is not None:
                        pred = model(torch.tensor(x_test, dtype=torch.float32))[:, 0]
                        row["test_loss"] = float(((pred - torch.tensor(y_test)) ** 2).mean())
                    acts, h = [], xt
                    for layer in model:
                        h = layer(h)
                        if isinstance(layer, torch.nn.ReLU):
                            acts.append(h.numpy())
                row["ntk_rank"] = rank(model)
                for k, a in enumerate(acts):
                    row["feature_sparsity" if len(acts) == 1 else f"feature_sparsity_l{k + 1}"] = \
                        sparsity(a, c.corr_threshold)
                if module is relu1d:
                    w, b, a = model[0].weight[:, 0].detach(), model[0].bias.detach(), model[2].weight[0].detach()
                    row["kinks"] = len(kinks(w, b, a, x.min(), x.max(), tol=c.kink_tol))
                else:
                    w1 = model[0].weight.detach().numpy()[None]
                    row["alignment"] = float(ts.alignment(w1, p["directions"], c.align_degrees, c.min_norm)[0])
                if not np.isfinite(row["train_loss"]):
                    break
                finals[spec.name] = row
                curves.setdefault(spec.name, []).append([step, row["train_loss"]])
            if step == c.steps:
                break
            for group in opt.param_groups:
                group["lr"] = float(lrs[step])
            batch = idx[r, step][idx[r, step] >= 0]
            loss = ((model(xt[batch])[:, 0] - yt[batch]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return {"final": finals, "train_loss": curves}


# ----------------------------------------------------------------------------- report
def _values(final: dict, like: dict | None = None) -> str:
    keys = [k for k in (like or final) if k != "lr"]
    return " ".join(f"{k}={final[k]:.3g}" if final.get(k) is not None else f"{k}=-" for k in keys)


def parting(engine_run: dict, curve: list, rtol: float = 1e-3) -> str:
    """The first checkpoint where the two versions' train losses differ by more than rtol (relative): same
    inputs start both from the same state, so this is where float32 rounding has grown into a visible gap."""
    ours = dict(zip(engine_run["history"]["step"], engine_run["history"]["train_loss"], strict=True))
    for step, theirs in curve:
        mine = ours.get(step)
        if mine is not None and abs(mine - theirs) > rtol * max(abs(mine), abs(theirs)):
            return f"train losses first differ by > {rtol:g} (relative) at step {step}"
    return f"train losses within {rtol:g} (relative) at all {len(curve)} checkpoints"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--naive", choices=sorted(FIGS), help="run only the straightforward version of FIG")
    parser.add_argument("--figs", nargs="*", default=sorted(FIGS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--engine-only", action="store_true", help="time only the engine (no straightforward runs)")
    args = parser.parse_args()
    if args.naive:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(naive(args.naive)))
        return
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}")
    rows, record = [], {}
    for fig in args.figs:
        out = ROOT / "cache" / "bench" / f"{fig}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        load = os.getloadavg()[0]
        timed(engine_cmd(fig, out))                      # warm-up: numba's cache
        times = [timed(engine_cmd(fig, out))[0] for _ in range(args.repeats)]
        best = min(times)
        print(f"{fig}: engine best {best:.2f} s (runs: {', '.join(f'{t:.2f}' for t in times)}), "
              f"load {load:.2f} -> {os.getloadavg()[0]:.2f}", flush=True)
        record[fig] = dict(engine_best_s=best, engine_all_s=times, load_before=load)
        if args.engine_only:
            continue
        # one BLAS thread, like torch's: two threads spin against the other jobs on this shared machine
        slow, text = timed([sys.executable, str(Path(__file__).resolve()), "--naive", fig], **ONE_THREAD)
        engine_runs = {r["name"]: r for r in json.loads(out.read_text())["runs"]}
        slow_out = json.loads(text.strip().splitlines()[-1])
        rows.append((fig, best, slow))
        record[fig].update(straightforward_s=slow, ratio=slow / best,
                           parting={name: parting(run, slow_out["train_loss"].get(name, []))
                                    for name, run in engine_runs.items()})
        print(f"{fig}: engine {best:.2f} s, straightforward {slow:.1f} s (load after {os.getloadavg()[0]:.2f}), "
              f"ratio {slow / best:.0f}x")
        for name, run in engine_runs.items():
            print(f"  {name:22s} engine: {_values(run['final'])}")
            print(f"  {'':22s} naive:  {_values(slow_out['final'].get(name, {}), run['final'])}")
            print(f"  {'':22s} {parting(run, slow_out['train_loss'].get(name, []))}", flush=True)
    if rows:
        print("\nfigure      engine (s)  straightforward (s)  ratio")
    for fig, best, slow in rows:
        print(f"{fig:10s}  {best:10.2f}  {slow:19.1f}  {slow / best:5.0f}x")
    if record:
        sys.path.insert(0, str(ROOT))
        from benchmarks.results import write

        write("relu_figs" + ("_engine" if args.engine_only else ""), record)


if __name__ == "__main__":
    main()
