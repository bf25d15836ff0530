"""Diagonal-network variants of the runs table (issue 18): SAM (n-SAM, 1-SAM), the normalized step and weight
decay. One step of the compiled loop equals the formula's step written out here in numpy, on a tiny problem."""

from __future__ import annotations

import numpy as np
import pytest

from engine.diagonal.config import DiagonalConfig, DiagonalRun
from engine.diagonal.data import make_data
from engine.diagonal.sim import Simulator, plan

N, D, SEED, LR = 6, 4, 5, 0.07


def grad(x, y, u, v, rows):
    """Gradient in (u, v) of mean_{i in rows} (<x_i, u * v> - y_i)^2 / 2."""
    xs = x[rows]
    e = xs @ (u * v) - y[rows]
    g = xs.T @ e / len(rows)
    return np.concatenate([v * g, u * g])


def formula_step(x, y, u, v, rows, run: DiagonalRun):
    """One step of the run's rule from (u, v) on samples `rows`, as the issue writes it."""
    w = np.concatenate([u, v])
    split = lambda z: np.split(z, 2)  # noqa: E731
    if run.sam_rho > 0 and run.sam == "n-SAM":
        a = grad(x, y, u, v, rows)
        g = grad(x, y, *split(w + run.sam_rho * a / np.linalg.norm(a)), rows)
    elif run.sam_rho > 0:
        g = np.zeros_like(w)
        for i in rows:
            a = grad(x, y, u, v, [i])
            g += grad(x, y, *split(w + run.sam_rho * a / np.linalg.norm(a)), [i]) / len(rows)
    else:
        g = grad(x, y, u, v, rows)
    g = g + run.weight_decay * w
    if run.step_rule == "normalized":
        g = g / np.linalg.norm(g)
    return split(w - LR * g)


RUNS = [dict(sam_rho=0.05), dict(sam_rho=0.05, sam="1-SAM"), dict(step_rule="normalized"), dict(weight_decay=0.3),
        dict(sam_rho=0.2, sam="1-SAM", weight_decay=0.1, step_rule="normalized")]


@pytest.mark.parametrize("algorithm, batch", [("SGD", 1), ("SGD", 3), ("GD", 1)])
@pytest.mark.parametrize("options", RUNS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_one_step_equals_the_formula(algorithm, batch, options):
    run = DiagonalRun("variant", algorithm, LR, batch_size=batch, **options)
    c = DiagonalConfig(n=N, d=D, r=2, n_test=10, steps=10, first_seed=SEED, runs=(run,))
    data = make_data(c)
    rows, lr_table, _ = plan(c)
    sim = Simulator(data, rows, lr_table, c.init_scale)
    rng = np.random.default_rng(0)
    u0, v0 = rng.standard_normal(D), rng.standard_normal(D)
    sim.u[:], sim.v[:] = u0, v0
    u1, v1 = sim.advance(np.array([1]))
    samples = list(range(N)) if algorithm == "GD" else list(np.random.RandomState(SEED).randint(N, size=batch))
    want_u, want_v = formula_step(data.x, data.y, u0, v0, samples, run)
    np.testing.assert_allclose(u1[0, 0], want_u, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(v1[0, 0], want_v, rtol=1e-13, atol=1e-15)


def test_a_sam_run_does_not_share_the_plain_runs_trajectory_and_sde_variants_are_refused():
    plain = DiagonalRun("plain", "SGD", LR)
    c = DiagonalConfig(n=N, d=D, r=2, n_test=10, steps=10, runs=(plain, plain.replace(name="sam", sam_rho=0.1)))
    rows, _, recorded = plan(c)
    assert len(rows.algo) == 2 and recorded[0][2] != recorded[1][2]
    with pytest.raises(ValueError, match="apply to SGD and GD, not to the SDE"):
        DiagonalRun("x", "SDE", LR, sam_rho=0.1)


def test_the_sam_preset_shows_sam_lowering_the_rank_and_the_test_loss_of_the_small_step():
    """SAM's implicit bias on diagonal networks (Andriushchenko & Flammarion, 2022): from the same small-step SGD,
    SAM ends with a lower-rank phi and a lower test loss. The preset's two SGD runs alone (rows are independent)."""
    from engine.core.recording import Recorder
    from engine.diagonal import experiment as diagonal

    c = diagonal.PRESETS["sam"].config
    c = c.replace(runs=c.runs[:2], checkpoints=20)
    rec = Recorder("diagonal", c.to_dict())
    diagonal.run(c, rec, None)
    plain, sam = (r["final"] for r in rec.view()["runs"])
    assert sam["ntk_rank"] < plain["ntk_rank"] and sam["test_loss"] < plain["test_loss"]


def test_sweeps_take_the_sam_radius_and_weight_decay_as_axes():
    from engine.sweeps import grid

    sweep = grid.build("diagonal", "sam", axes=["runs.1.sam_rho=0,0.05,0.1", "runs.1.weight_decay=0,0.001"])
    configs = sweep.configs()
    assert len(configs) == 6 and sweep.run == 1
    assert sorted({(c.runs[1].sam_rho, c.runs[1].weight_decay) for c in configs}) == [
        (0.0, 0.0), (0.0, 0.001), (0.05, 0.0), (0.05, 0.001), (0.1, 0.0), (0.1, 0.001)]
    with pytest.raises(ValueError, match="runs.1.sam_rho"):
        grid.build("diagonal", "sam", axes=["runs.1.sam_rho=0,20"])  # above the column's bound


def test_the_variants_preset_shows_weight_decay_sparsifying_gd():
    """Weight decay on (u, v) is an l1 penalty on beta = u * v (min of (u^2 + v^2) / 2 over u * v = beta is |beta|):
    GD with it ends sparser, with a lower-rank phi, and closer to the sparse beta* than plain GD."""
    from engine.core.recording import Recorder
    from engine.diagonal import experiment as diagonal

    c = diagonal.PRESETS["variants"].config
    c = c.replace(runs=c.runs[:2], checkpoints=20)
    rec = Recorder("diagonal", c.to_dict())
    diagonal.run(c, rec, None)
    plain, decayed = (r["final"] for r in rec.view()["runs"])
    assert decayed["l0_norm"] < plain["l0_norm"] and decayed["ntk_rank"] < plain["ntk_rank"]
    assert decayed["test_loss"] < plain["test_loss"]
