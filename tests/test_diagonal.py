"""Diagonal linear networks (docs/experiments.md §2, issue 2 "Fidelity"): the update rules against a plain
numpy transcription, the authors' data recipe, and the paper's observations on the presets exactly
(fig2 over sampling seeds 1-10, fig8, fig3), plus divergence, cancellation and the edge finder.
Runtime here (2 cores, shared): ~10 s."""

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from engine.core import claims, schedules
from engine.core.recording import Cancelled, Recorder
from engine.diagonal import data as diagonal_data
from engine.diagonal import edge as diagonal_edge
from engine.diagonal import experiment as diagonal
from engine.diagonal import kernels as diagonal_kernels
from engine.diagonal import sim as diagonal_sim
from engine.diagonal.claims import diagonal_gd_vs_sgd, diagonal_large_steps
from engine.diagonal.config import DiagonalRun
from engine.diagonal.kernels import GD, SDE, SGD

FIG2, FIG8, FIG3 = (diagonal.PRESETS[k].config for k in ("fig2", "fig8", "fig3"))


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """Two shared cores: one BLAS thread per metrics worker (as the job manager sets it)."""
    with threadpool_limits(1):
        yield


def run_config(c) -> dict:
    rec = Recorder("diagonal", c.to_dict())
    diagonal.run(c, rec, None)
    return rec.view()


def by_seed(view: dict) -> dict[int, dict[str, dict]]:
    out: dict[int, dict[str, dict]] = {}
    for r in view["runs"]:
        out.setdefault(r["seed"], {})[r["label"]] = r
    return out


def history(run: dict, metric: str) -> tuple[np.ndarray, np.ndarray]:
    h = run["history"]
    return np.array(h["step"]), np.array(h[metric], dtype=float)


# ----------------------------------------------------------------------------- rules and data
def test_data_is_the_authors_recipe():
    for c in (FIG2, FIG8, FIG3):
        data = diagonal_data.make_data(c)
        rs = np.random.RandomState(0)
        x = rs.multivariate_normal(np.zeros(c.d), np.eye(c.d), c.n)
        x_test = rs.multivariate_normal(np.zeros(c.d), np.eye(c.d), 1000)
        beta = rs.randn(c.d)
        beta[c.r:] = 0
        beta = np.abs(beta) / np.linalg.norm(np.abs(beta))
        assert np.array_equal(data.x, x) and np.array_equal(data.x_test, x_test)
        np.testing.assert_allclose(data.beta_star, beta, rtol=1e-15)
        np.testing.assert_allclose(data.y, x @ beta, rtol=1e-12)
        assert data.x_fresh.shape == (2 * c.d, c.d)


def reference(c, run: DiagonalRun, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The update rules of docs/experiments.md §2 and Eq. 8, one step at a time in numpy."""
    data = diagonal_data.make_data(c)
    x, y, n = data.x, data.y, c.n
    u, v = np.full(c.d, c.init_scale), np.zeros(c.d)
    lr = schedules.step_decay(run.lr, c.steps, run.decay_at, run.decay_factor)
    idx = np.random.RandomState(seed).randint(n, size=steps * run.batch_size).reshape(steps, run.batch_size)
    noise = diagonal_sim._NoiseStream(seed, n).take(0, steps).reshape(steps, n)
    delta = diagonal_sim.sde_delta(run, n)
    for t in range(steps):
        if run.algorithm == "SGD":
            xb = x[idx[t]]
            e = xb @ (u * v) - y[idx[t]]
            g = xb.T @ e / run.batch_size
        else:
            g = x.T @ ((x @ (u * v) - y) / n - (np.sqrt(delta) * noise[t] if run.algorithm == "SDE" else 0))
        u, v = u - lr[t] * g * v, v - lr[t] * g * u
    return u, v


@pytest.mark.parametrize("run", [
    DiagonalRun("sgd", "SGD", 0.282, 0.005, 4.8),
    DiagonalRun("sgd batch", "SGD", 0.5, batch_size=4),
    DiagonalRun("gd", "GD", 0.5, 0.2, 2.0),
    DiagonalRun("sde", "SDE", 0.282, noise_level=0.03),
])
def test_kernel_follows_the_update_rules(run):
    c = FIG2.replace(steps=1000, runs=(run,), first_seed=3)
    rows, lr, _ = diagonal_sim.plan(c)
    sim = diagonal_sim.Simulator(diagonal_data.make_data(c), rows, lr, c.init_scale)
    u, v = sim.advance(np.array([300]))
    ru, rv = reference(c, run, 300, 3)
    np.testing.assert_allclose(u[0, 0] * v[0, 0], ru * rv, rtol=1e-7, atol=1e-12)
    assert np.abs(ru * rv).max() > 1e-3  # it moved


def test_results_do_not_depend_on_chunking_or_on_other_rows():
    runs = (DiagonalRun("a", "SGD", 0.282), DiagonalRun("b", "SGD", 0.3, batch_size=3),
            DiagonalRun("c", "GD", 2.0), DiagonalRun("d", "SDE", 0.2, noise_level=0.05))
    c = FIG8.replace(steps=3000, runs=runs, seeds=2)
    data = diagonal_data.make_data(c)
    rows, lr, _ = diagonal_sim.plan(c)
    assert len(rows.algo) == 7  # GD does not depend on the seed: one row for both
    one = diagonal_sim.Simulator(data, rows, lr, c.init_scale)
    u1, v1 = one.advance(np.array([3000]))
    split = diagonal_sim.Simulator(data, rows, lr, c.init_scale)
    for stop in (1, 17, 1000, 2048, 3000):
        u2, v2 = split.advance(np.array([stop]))
    assert np.array_equal(u1, u2) and np.array_equal(v1, v2)
    alone = diagonal_sim.plan(c.replace(runs=runs[3:], seeds=1, first_seed=2))
    sim = diagonal_sim.Simulator(data, *alone[:2], c.init_scale)
    u3, _ = sim.advance(np.array([3000]))
    assert np.array_equal(u3[0, 0], u1[0, [i for i, a in enumerate(rows.algo) if a == SDE][1]])
    assert {SGD, GD, SDE} == set(rows.algo)


def test_each_kernel_compiles_once():
    """Training, the edge finder and warm_up() call the kernels with one set of argument types, so a page's
    warm-up (or numba's disk cache) covers every later run: no hidden multi-second compile on a Run."""
    diagonal_kernels.warm_up()
    runs = (DiagonalRun("a", "SGD", 0.2), DiagonalRun("b", "SGD", 0.2, batch_size=2),
            DiagonalRun("c", "GD", 0.5), DiagonalRun("d", "SDE", 0.2))
    run_config(FIG3.replace(steps=301, runs=runs, plane=False))
    diagonal_edge.find_edge(FIG3, 0, seeds=1, steps=101)
    entry_points = (diagonal_kernels.advance, diagonal_kernels.residual_losses, diagonal_kernels.quadratic_forms)
    assert [len(k.signatures) for k in entry_points] == [1, 1, 1]


def test_sde_noise_matches_sgd_noise_at_the_loss_level():
    """delta = 2 L / n: at a state of the stabilized fig2 run, the SDE's one-step noise covariance
    eta^2 delta D_v X^T X D_v has the same trace as SGD's exact one (Prop. 1: eta^2/n^2 D_v X^T Cov(xi) X D_v,
    Cov(xi) = n diag(r^2) - r r^T), within the isotropy approximation of Claim 4."""
    c = FIG2.replace(runs=FIG2.runs[1:2])
    data = diagonal_data.make_data(c)
    sim = diagonal_sim.Simulator(data, *diagonal_sim.plan(c)[:2], c.init_scale)
    u, v = sim.advance(np.array([8000]))
    u, v = u[0, 0], v[0, 0]
    r = data.x @ (u * v) - data.y
    loss = r @ r / (2 * c.n)
    xv = data.x * v
    sgd = (c.n * (r**2 * (xv**2).sum(1)).sum() - ((xv.T @ r) ** 2).sum()) / c.n**2
    run = DiagonalRun("sde", "SDE", noise_level=loss)
    sde = diagonal_sim.sde_delta(run, c.n) * (xv**2).sum()
    assert 1e-3 < loss < 1e-1 and 0.5 < sde / sgd < 2.0


# ----------------------------------------------------------------------------- fig2
# The large steps sit at the edge of stability, so the claims are asserted as rates over sampling seeds, with a
# margin, and at the preset's seed (deterministic on every machine: see test_determinism.py).
@pytest.fixture(scope="module")
def fig2_seeds():
    return by_seed(run_config(FIG2.replace(seeds=10, first_seed=1)))


def fig2_checks(runs: dict[str, dict]) -> list:
    return diagonal_large_steps(list(runs.values()), FIG2.steps, FIG2.d)


@pytest.mark.slow
def test_fig2_over_ten_sampling_seeds(fig2_seeds):
    """Measured: all four runs survive at 8 of seeds 1-10 and the whole figure holds at 7 (seed 1's 30% run
    generalizes only 1.3x better); asserted: at least 5 of 10 each."""
    assert sorted(fig2_seeds) == list(range(1, 11))
    survived = [s for s, runs in fig2_seeds.items() if all(r["status"] == "done" for r in runs.values())]
    holds = [s for s, runs in fig2_seeds.items() if claims.holds(fig2_checks(runs))]
    assert len(survived) >= 5 and len(holds) >= 5, (survived, holds)
    for runs in fig2_seeds.values():
        assert runs["small step"]["status"] == "done" and runs["small step"]["final"]["l0_norm"] >= 190
        for r in runs.values():  # a diverged run is reported as such, with its history
            assert r["status"] in ("done", "diverged")
            if r["status"] == "diverged":
                assert r["message"].startswith("diverged at step") and len(r["history"]["step"]) > 100
    for s in survived:  # every survivor sparsifies in the paper's order
        assert [c.ok for c in fig2_checks(fig2_seeds[s])][3:5] == [True, True], s


def test_fig2_preset_shows_the_figure():
    view = run_config(FIG2)
    assert [r["status"] for r in view["runs"]] == ["done"] * 4
    assert [r["seed"] for r in view["runs"]] == [FIG2.first_seed] * 4
    checks = fig2_checks({r["label"]: r for r in view["runs"]})
    assert claims.holds(checks), checks
    run = view["runs"][1]
    step, _ = history(run, "train_loss")
    assert step[0] == 0 and step[-1] == FIG2.steps and len(step) == 300
    _, lr = history(run, "lr")
    assert lr[0] == 0.282 and lr[-1] == pytest.approx(0.282 / 4.8)
    assert np.array_equal(view["extras"]["beta_star"], diagonal_data.make_data(FIG2).beta_star)
    beta = np.array(run["snapshots"]["beta"])
    assert beta.shape == (200,) and np.linalg.norm(beta - view["extras"]["beta_star"]) < 0.05


def test_a_seed_gives_the_same_trajectories_alone_or_among_others(fig2_seeds):
    alone = run_config(FIG2.replace(first_seed=4))
    for r in alone["runs"]:
        assert r["final"] == fig2_seeds[4][r["name"]]["final"] and r["status"] == fig2_seeds[4][r["name"]]["status"]


# ----------------------------------------------------------------------------- fig8
@pytest.fixture(scope="module")
def fig8():
    return run_config(FIG8)


def test_fig8_gd_stabilizes_but_stays_dense_while_sgd_sparsifies(fig8):
    checks = diagonal_gd_vs_sgd(fig8["runs"], FIG8.d)
    assert claims.holds(checks), checks
    gd = [r for r in fig8["runs"] if r["config"]["algorithm"] == "GD"]
    for r in gd:
        if r["config"]["decay_at"] < 1:
            decay = int(r["config"]["decay_at"] * FIG8.steps)
            step, loss = history(r, "train_loss")
            assert -2.5 <= np.log10(np.median(loss[(step >= 0.2 * decay) & (step < decay)])) <= -0.5
    again = run_config(FIG8.replace(runs=FIG8.runs[1:2], first_seed=7))["runs"][0]
    assert again["history"] == gd[1]["history"]  # GD does not depend on the sampling seed


@pytest.mark.slow
def test_fig8_the_papers_sgd_step_lies_past_the_edge_on_this_data():
    """Measured over sampling seeds 1-10: the paper's 0.272 survives at 1, the preset's 0.262 at 10 (and
    sparsifies); asserted with a margin: at most 3 and at least 8."""
    sgd = FIG8.runs[4]
    view = run_config(FIG8.replace(runs=(sgd.replace(name="paper", lr=0.272), sgd), seeds=10, first_seed=1))
    paper = [r for r in view["runs"] if r["label"] == "paper"]
    preset = [r for r in view["runs"] if r["label"] == sgd.name]
    assert sum(r["status"] == "done" for r in paper) <= 3
    assert sum(r["status"] == "done" and r["final"]["l0_norm"] < 0.75 * FIG8.d for r in preset) >= 8
    for r in paper:
        if r["status"] == "diverged":
            at = r["snapshots"]["diverged_at"]
            assert 0 < at < FIG8.steps and r["message"] == f"diverged at step {at}"
            assert r["history"]["step"][-1] <= at


def test_the_edge_finder_proposes_a_surviving_step():
    edge = diagonal_edge.find_edge(FIG8, 4, seeds=3)
    assert edge["steps"] == 20_001
    assert all(0 < lo <= hi <= lo + 0.002 for lo, hi in zip(edge["edges"], edge["upper"], strict=True))
    assert edge["min"] <= edge["median"] <= edge["max"] < 0.272


def test_the_window_probe_proposes_a_step_that_sparsifies_fig2():
    """The proposal is measured: at it most (run, seed) pairs of Fig. 2's large-step schedules survive and
    sparsify, while 5% below the edge none sparsifies (the issue's 0.95 x edge = 0.265 stayed dense)."""
    large = [r for r in FIG2.runs if r.decay_at < 1]
    c = diagonal_edge.PRESETS["fig2"].config.replace(
        first_seed=FIG2.first_seed, window_steps=FIG2.steps, window_runs=json.dumps([r.to_dict() for r in large]))
    rec = Recorder("diagonal_edge", c.to_dict())
    diagonal_edge.run(c, rec)
    window = rec.view()["extras"]["window"]
    assert window["proposal_sparsified"] >= window["total"] // 2
    assert window["candidates"][0]["fraction"] == 0.95 and window["candidates"][0]["sparsified"] == 0
    followed = run_config(FIG2.replace(runs=(FIG2.runs[0], *(r.replace(lr=window["proposal"]) for r in large))))
    l0 = [r["final"]["l0_norm"] for r in followed["runs"]]
    assert l0[0] == 200 and l0[-1] <= 0.9 * 200


def test_edge_experiment_records_one_run_per_seed():
    c = diagonal_edge.PRESETS["fig8"].config.replace(steps=5001, seeds=2)
    rec = Recorder("diagonal_edge", c.to_dict())
    diagonal_edge.run(c, rec, None)
    view = rec.view()
    edge = view["extras"]["edge"]
    assert [r["final"]["edge"] for r in view["runs"]] == edge["edges"] and len(edge["edges"]) == 2
    assert 0.2 < edge["median"] < 0.4


# ----------------------------------------------------------------------------- fig3
def test_fig3_plane_and_paths():
    view = run_config(FIG3)
    plane = view["extras"]["plane"]
    data = diagonal_data.make_data(FIG3)
    flow, gd, sgd = view["runs"]
    assert [r["status"] for r in view["runs"]] == ["done"] * 3 and flow["seed"] == 2
    d = FIG3.d
    w_init = np.concatenate([np.full(d, 0.1), np.zeros(d)])
    u = np.array(flow["snapshots"]["beta"])  # gradient flow keeps u^2 - v^2 = 0.01: recover w_flow from beta
    uu = np.sqrt((0.01 + np.sqrt(0.01**2 + 4 * u**2)) / 2)
    w_flow = np.concatenate([uu, u / uu])
    path = np.array(flow["snapshots"]["path"])
    np.testing.assert_allclose(path[-1], [np.linalg.norm(w_flow - w_init), 0], atol=1e-4)
    np.testing.assert_allclose(path[0], [0, 0], atol=1e-12)
    w_star = np.concatenate([np.sqrt(data.beta_star)] * 2)
    assert np.linalg.norm(plane["star"]) == pytest.approx(np.linalg.norm(w_star - w_init), rel=1e-9)
    loss = np.array(plane["loss"])
    assert loss.shape == (60, 60) and np.isfinite(loss).all() and loss.min() >= 0
    for r in view["runs"]:
        assert 250 <= len(r["snapshots"]["path"]) == len(r["snapshots"]["path_steps"]) <= 400
    assert sgd["final"]["test_loss"] < 1e-3 < gd["final"]["test_loss"]  # SGD finds the sparse solution


def test_fig3_plane_is_skipped_with_a_note_for_large_d():
    view = run_config(FIG3.replace(d=300, steps=201))
    assert "plane" not in view["extras"] and "d <= 200" in view["extras"]["plane_note"]


def test_cli_writes_the_json_contract(tmp_path):
    out = tmp_path / "fig3.json"
    subprocess.run([sys.executable, "-m", "engine", "run", "diagonal", "--preset", "fig3", "--json", str(out),
                    "--no-cache", "--quiet"], check=True, timeout=120)
    result = json.loads(out.read_text())
    assert result["experiment"] == "diagonal" and result["preset"] == "fig3"
    assert {"train_loss", "test_loss", "ntk_rank", "l0_norm", "lr"} <= set(result["runs"][0]["history"])


# ----------------------------------------------------------------------------- divergence, cancel, bounds
def test_divergence_keeps_history_and_other_runs_go_on():
    c = FIG2.replace(steps=5001, runs=(FIG2.runs[0], DiagonalRun("too large", "SGD", 1.5)))
    ok, bad = run_config(c)["runs"]
    assert ok["status"] == "done" and ok["history"]["step"][-1] == 5001
    assert bad["status"] == "diverged" and bad["message"].startswith("diverged at step")
    assert 0 < len(bad["history"]["step"]) and np.isfinite(bad["history"]["train_loss"]).all()


def test_cancel_stops_at_the_next_chunk(monkeypatch):
    """Cancel is honoured between two chunks of the compiled loop (each ~0.05 s of work): after the request at
    most the chunk in flight and one more run, whatever the machine's speed (no wall clock here)."""
    diagonal_kernels.warm_up()
    c = FIG2.replace(steps=1_000_001, seeds=2)
    rec = Recorder("diagonal", c.to_dict())
    calls = {"after": 0}
    advance = diagonal_sim.Simulator.advance

    def counting(self, stops):
        if rec.stop_requested:
            calls["after"] += 1
        return advance(self, stops)

    monkeypatch.setattr(diagonal_sim.Simulator, "advance", counting)
    outcome = {}

    def work():
        try:
            diagonal.run(c, rec, None)
        except Cancelled:
            outcome["cancelled"] = True

    thread = threading.Thread(target=work)
    thread.start()
    while thread.is_alive() and not (rec.view()["runs"] and rec.view()["runs"][0]["history"]["step"]):
        time.sleep(0.05)  # training has started
    rec.request_stop()
    thread.join(60)
    assert outcome.get("cancelled") and calls["after"] <= 2
    last = max(r["history"]["step"][-1] for r in rec.view()["runs"] if r["history"]["step"])
    assert last < c.steps  # it stopped long before the end


def test_bounds_and_cross_checks():
    with pytest.raises(ValueError, match="r=30 must not exceed d=20"):
        FIG2.replace(d=20, r=30)
    with pytest.raises(ValueError, match="steps"):
        FIG2.replace(steps=2_000_000)
    with pytest.raises(ValueError, match="algorithm"):
        DiagonalRun("x", "Adam")
    with pytest.raises(ValueError, match="names must differ"):
        FIG2.replace(runs=(FIG2.runs[0], FIG2.runs[0]))



def test_sde_preset_noise_alone_sparsifies_while_noiseless_gd_stays_dense():
    rec = Recorder("diagonal", diagonal.PRESETS["sde"].config.to_dict())
    diagonal.run(diagonal.PRESETS["sde"].config, rec, None)
    final = {r["name"]: r["final"] for r in rec.view()["runs"]}
    assert final["GD, no noise"]["l0_norm"] == 200
    assert final["SGD"]["l0_norm"] < 120 and final["SDE (Eq. 8)"]["l0_norm"] < 120
    assert final["SDE (Eq. 8)"]["test_loss"] < final["GD, no noise"]["test_loss"] / 3


# ----------------------------------------------------------------------------- bounded work, edge search (issue 8)
def test_a_job_is_bounded_in_runs_and_in_steps_x_runs_x_seeds():
    """The limits admit every preset at 20 seeds and the sweep preset's points; a URL asking for more is refused
    with the limit in the message (today 1,000,001 steps x 8 runs x 20 seeds validate)."""
    from engine.sweeps import grid as sweep

    for preset in diagonal.PRESETS.values():
        preset.config.replace(seeds=20)
    sweep.build("diagonal", "map-fig2", seeds=20)  # raises if a point is over a bound
    with pytest.raises(ValueError, match=r"^steps x runs x seeds = 1,000,001 x 8 x 20 = 160,000,160 is above the "
                                         r"limit of 40,000,000 per job: use fewer steps, runs or seeds$"):
        FIG2.replace(steps=1_000_001, seeds=20, runs=tuple(FIG2.runs[0].replace(name=f"r{k}") for k in range(8)))
    with pytest.raises(ValueError, match=r"^runs: 9 runs, above the limit of 8 per job: use fewer runs$"):
        FIG2.replace(runs=tuple(FIG2.runs[0].replace(name=f"r{k}") for k in range(9)))


def test_the_edge_finder_never_reports_an_edge_outside_its_bracket():
    """tol=1 once ended the search after one round with an edge of 0 ("done"): the bracket is now also narrow
    relative to its upper end, and a seed whose edge lies outside the search range is an error."""
    edge = diagonal_edge.find_edge(FIG8, 4, seeds=2, steps=5001, hi=5.0, tol=1.0)
    for lo, hi in zip(edge["edges"], edge["upper"], strict=True):
        assert 0.2 < lo < hi <= lo + diagonal_edge.MAX_REL_WIDTH * hi
    with pytest.raises(ValueError, match=r"^seed 1: every step size tried up to .* survived 5,001 steps: the edge "
                                         r"lies above the search range \(hi=0\.1\)$"):
        diagonal_edge.find_edge(FIG8, 4, seeds=1, steps=5001, hi=0.1)
    with pytest.raises(ValueError, match=r"^seed 1: no step size above lo=0\.5 survived 5,001 steps"):
        diagonal_edge.find_edge(FIG8, 4, seeds=1, steps=5001, lo=0.5, hi=1.0)
