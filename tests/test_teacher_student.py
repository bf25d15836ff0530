"""Teacher-student ReLU nets (docs/experiments.md §4): NTK and metrics by hand or autograd, Fig. 5 / Fig. 6.

Fidelity checks run each preset at its seed and the three seeds after it (one job with seeds=4), with fewer
checkpoints.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.core.recording import Recorder
from engine.relu import nets as rn
from engine.relu import teacher_student as ts


def run_preset(preset: str, **changes) -> dict:
    config = ts.PRESETS[preset].config.replace(**changes)
    rec = Recorder("teacher_student", config.to_dict(), preset)
    ts.run(config, rec)
    return rec.view()


# ----------------------------------------------------------------------------- nets and metrics
@pytest.mark.parametrize("preset", ["fig5", "fig6"])
def test_ntk_gram_and_rank_match_autograd(preset: str) -> None:
    c = ts.PRESETS[preset].config
    p = ts.problem(c)
    layout = ts.layouts(c)[1]
    params = p["student"] + np.random.default_rng(0).normal(size=(2, layout.size)) * 0.3

    def output(flat, x):
        out = x
        for k, (w, b) in enumerate(layout.layers(flat)):
            out = torch.nn.functional.linear(out, w, b)
            out = torch.relu(out) if k < layout.depth - 1 else out
        return out[0, 0]

    jac = torch.func.vmap(torch.func.jacrev(output), in_dims=(None, 0))
    grams = rn.ntk_gram(layout, params, p["fresh"])
    for i in range(2):
        phi = jac(torch.tensor(params[i]), torch.tensor(p["fresh"][:, None, :])).numpy()
        np.testing.assert_allclose(rn.ntk_features(layout, params[i], p["fresh"]), phi, atol=1e-12)
        np.testing.assert_allclose(grams[i], phi @ phi.T, atol=1e-10)
        s = np.linalg.svd(phi, compute_uv=False)
        assert rn.ntk_ranks(layout, params[i:i + 1], p["fresh"])[0] == (s / s[0] > 1e-4).sum()


def test_alignment_by_hand() -> None:
    teacher = np.array([[1.0, 0.0], [0.0, 2.0]])
    deg = np.radians
    neurons = np.array([[[np.cos(deg(5)), np.sin(deg(5))],       # 5 degrees from the first: aligned
                         [0.0, -3.0],                             # opposite the second: not aligned
                         [2 * np.cos(deg(79)), 2 * np.sin(deg(79))],   # 11 degrees from the second
                         [1e-3, 0.0]]])                           # negligible norm: not counted
    assert ts.alignment(neurons, teacher, 10.0, 0.1)[0] == pytest.approx(1 / 3)
    assert ts.alignment(neurons, teacher, 11.5, 0.1)[0] == pytest.approx(2 / 3)


def test_data_teacher_and_projection() -> None:
    c = ts.PRESETS["fig6"].config
    p = ts.problem(c)
    np.testing.assert_allclose(np.linalg.norm(p["x"], axis=1), 1.0, rtol=1e-6)       # unit rows in float32
    assert p["x"].shape == (50, 5) and p["x_test"].shape == (1000, 5) and p["fresh"].shape == (181, 5)
    basis = ts.projection_basis(p["directions"], ts.layouts(c)[1].layers(p["student"])[0][0])
    np.testing.assert_allclose(basis.T @ basis, np.eye(2), atol=1e-12)
    # the teacher's two directions lie in the projection plane
    np.testing.assert_allclose(np.linalg.norm(p["directions"] @ basis, axis=1), np.linalg.norm(p["directions"], axis=1))
    two = ts.problem(ts.PRESETS["fig5"].config)
    np.testing.assert_allclose(np.linalg.norm(two["directions"], axis=1), 1.0, rtol=1e-6)
    assert set(np.abs(ts.layouts(ts.PRESETS["fig5"].config)[0].layers(two["teacher"])[1][0].ravel())) == {1.0}


def test_data_and_labels_are_the_authors_draws() -> None:
    """With the authors' seeds the labels are the ones their notebooks print (fig5 seed 0, fig6 seed 5)."""
    fig5 = ts.problem(ts.PRESETS["fig5"].config)
    np.testing.assert_allclose(fig5["y"], [0.9664, -0.5862, 0.4440, 0.9520, 0.8456, 0.6576, -1.0138, 0.7839,
                                           -0.2553, -0.2928, -1.5520, 0.8203, 0.8531, -0.1936, -1.1354], atol=6e-5)
    fig6 = ts.problem(ts.PRESETS["fig6"].config)
    np.testing.assert_allclose(fig6["y"][:10], [-0.6163, 0.9799, 0.3886, 0.1911, 0.3208, -0.6920, -0.3344, -0.1105,
                                                1.2851, -0.3311], atol=6e-5)
    # the student: nn.Linear's constructors after torch.manual_seed(seed), then 0.5 N(0,1) rows, output layer 0
    torch.manual_seed(0)
    w1 = torch.nn.Linear(2, 20, bias=False).weight
    torch.nn.Linear(20, 1, bias=False)
    np.testing.assert_allclose(fig5["student"][:40], (0.5 * torch.randn_like(w1)).double().numpy().ravel(),
                               rtol=1e-5, atol=1e-5)
    assert not fig5["student"][40:].any()
    # phi is evaluated on the first p test inputs, as the authors do
    np.testing.assert_array_equal(fig6["fresh"], fig6["x_test"][:181])


def test_data_are_the_authors_draws_computed_without_blas() -> None:
    """The sphere points are rs.multivariate_normal(0, I_d) draws, and the teacher's labels its float32 outputs
    to the last bit of float32 (exactly rounded sums instead of a BLAS kernel's)."""
    for preset in ("fig5", "fig6"):
        c = ts.PRESETS[preset].config
        rs = np.random.RandomState(c.seed + 1)
        drawn = rs.multivariate_normal(np.zeros(c.d), np.eye(c.d), c.n)
        unit = (drawn.astype(np.float32) / np.linalg.norm(drawn.astype(np.float32), axis=1, keepdims=True))
        p = ts.problem(c)
        np.testing.assert_allclose(p["x"], unit, rtol=2e-7)
        t_layout = ts.layouts(c)[0]
        blas = rn.predict(t_layout, p["teacher"].astype(np.float32), p["x"].astype(np.float32))
        np.testing.assert_allclose(p["y"], blas, rtol=0, atol=8 * np.spacing(np.float32(np.abs(blas).max())))


def test_bad_values_are_rejected_with_the_field_name() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        ts.Config(n=5, runs=(ts.RunSpec(batch_size=6),))
    with pytest.raises(ValueError, match="depth"):
        ts.Config(depth=4)


def test_result_carries_neurons_and_per_layer_sparsity() -> None:
    view = run_preset("fig6", steps=300, checkpoints=10, snapshots=3)
    json.dumps(view)
    run = view["runs"][0]
    assert {"train_loss", "test_loss", "ntk_rank", "feature_sparsity_l1", "feature_sparsity_l2", "alignment",
            "lr"} <= set(run["history"])
    snaps = run["snapshots"]["neurons"]
    assert len(snaps) == 3 and np.array(snaps[-1]["value"]["projection"]).shape == (10, 2)
    assert np.array(view["extras"]["teacher"]["projection"]).shape == (2, 2)
    assert 0 < run["final"]["ntk_rank"] <= 181


def test_each_seed_has_its_own_data_and_a_multi_seed_job_repeats_the_single_seed_jobs() -> None:
    """seeds=2 trains seeds 0 and 1 (each its own data, teacher and init) as rows of one loop: each (run, seed)
    records exactly what the job with that seed alone records; the job's teacher and neurons are the first seed's."""
    short = dict(steps=300, checkpoints=10, snapshots=2)
    multi = run_preset("fig5", seeds=2, **short)
    assert [r["name"] for r in multi["runs"][:2]] == ["small step [seed 0]", "small step [seed 1]"]
    for s in (0, 1):
        alone = run_preset("fig5", seed=s, **short)
        mine = [r for r in multi["runs"] if r["seed"] == s]
        for a, b in zip(alone["runs"], mine, strict=True):
            assert (a["name"], a["status"], a["message"], a["history"]) == (b["label"], b["status"], b["message"],
                                                                               b["history"])
            assert b["snapshots"] == (a["snapshots"] if s == 0 else {})
        if s == 0:
            assert alone["extras"] == multi["extras"]
    assert not np.array_equal(ts.problem(ts.PRESETS["fig5"].config)["x"],
                              ts.problem(ts.PRESETS["fig5"].config.replace(seed=1))["x"])


# ----------------------------------------------------------------------------- fidelity (Fig. 5, Fig. 6)
def _fig(preset: str) -> list[list[dict]]:
    """The preset at its seed and the three after it (one job, seeds=4): per seed, its runs in config order."""
    view = run_preset(preset, seeds=4, checkpoints=40, snapshots=2)
    return [[r for r in view["runs"] if r["seed"] == s] for s in sorted({r["seed"] for r in view["runs"]})]


def _holds(seeds: list[list[dict]], claim) -> list[bool]:
    """Whether the claim holds at the preset seed and at least 2 of the 3 other seeds."""
    ok = [bool(claim(runs)) for runs in seeds]
    return [ok[0], sum(ok[1:]) >= 2]


@pytest.fixture(scope="module")
def fig5() -> list[dict]:
    return _fig("fig5")


def test_fig5_every_run_trains_at_the_preset_seed_and_a_blow_up_ends_diverged(fig5) -> None:
    # measured: from the authors' seed-0 draws all four runs train (train loss ~1e-5 as in their notebook);
    # from seed 1's init the three runs with step 0.455 blow up within 15 steps (so do they in the authors' code)
    assert all(r["status"] == "done" and r["final"]["train_loss"] < 1e-3 for r in fig5[0])
    small, *large = fig5[1]
    assert small["status"] == "done" and small["final"]["train_loss"] < 1e-3
    for run in large:
        assert run["status"] == "diverged" and run["history"]["step"] and "diverged at step" in run["message"]


def _fig5_claim(runs: list[dict]) -> bool:
    small, *large = runs
    return all(r["status"] == "done" and r["final"]["test_loss"] < small["final"]["test_loss"]
               and r["final"]["alignment"] > small["final"]["alignment"] for r in large)


@pytest.mark.slow
def test_fig5_at_the_preset_seed_large_steps_generalize_better_and_align(fig5) -> None:
    # measured: test loss 2.2e-4 / 3.0e-4 / 1.5e-4 vs 6.0e-4, alignment 0.87 / 0.94 / 1.00 vs 0.40
    assert _holds(fig5, _fig5_claim)[0]


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="measured: step 0.455 diverges from the inits of seeds 1, 2, 3 (as it does "
                   "in the authors' code, from the same draws); over seeds 0-19 the three 0.455 runs survive at 5 of "
                   "20 (0, 5, 7, 11, 18) and the claim holds at 2 (0, 11); over seeds 0-23 at 3 of 24 (and 23)")
def test_fig5_large_steps_generalize_better_and_align_at_2_of_3_other_seeds(fig5) -> None:
    assert _holds(fig5, _fig5_claim)[1]


@pytest.fixture(scope="module")
def fig6() -> list[dict]:
    return _fig("fig6")


@pytest.mark.slow
def test_fig6_long_large_step_phase_generalizes_better_with_sparser_layers(fig6) -> None:
    def claim(runs):
        constant, long = runs[0]["final"], runs[-1]["final"]   # measured: holds at 15 of seeds 5-24
        return (long["test_loss"] < constant["test_loss"]
                and long["feature_sparsity_l1"] < constant["feature_sparsity_l1"]
                and long["feature_sparsity_l2"] < constant["feature_sparsity_l2"])
    assert _holds(fig6, claim) == [True, True]


@pytest.mark.slow
def test_fig6_test_losses_match_the_authors_printed_ones(fig6) -> None:
    # their notebook, seed 5 (at step 9,934): 0.0614, 0.0322, 0.0248, 0.0206; measured here: 0.0588, 0.0315,
    # 0.0241, 0.0218 (float32 SGD paths part ways slowly, so a few percent apart)
    finals = [r["final"]["test_loss"] for r in fig6[0]]
    np.testing.assert_allclose(finals, [0.0614, 0.0322, 0.0248, 0.0206], rtol=0.1)


def test_a_job_is_bounded_in_runs_work_and_stored_neurons():
    """Every preset runs at 20 seeds and the sweep preset's points fit; more runs, steps x runs x seeds or neuron
    snapshots than a job may hold are refused with the limit in the message."""
    from engine.relu.runs import MAX_WORK
    from engine.sweeps import grid as sweep

    for preset in ts.PRESETS.values():
        preset.config.replace(seeds=20)
    sweep.build("teacher_student", "map-fig5", seeds=20)  # raises if a point is over a bound
    c = ts.PRESETS["fig5"].config
    many = tuple(c.runs[0].replace(name=f"r{k}") for k in range(9))
    with pytest.raises(ValueError, match=r"^runs: 9 runs, above the limit of 8 per job: use fewer runs$"):
        c.replace(runs=many, steps=10)
    with pytest.raises(ValueError, match=rf"^steps x runs x seeds = 1,000,000 x 4 x 1 = 4,000,000 is above the limit "
                                         rf"of {MAX_WORK:,} per job"):
        c.replace(steps=1_000_000)
    with pytest.raises(ValueError, match=r"^snapshots x runs x student_width x d = 1,000 x 4 x 200 x 50 = 40,000,000 "
                                         r"is above the limit of 2,000,000 per job"):
        c.replace(snapshots=1000, student_width=200, d=50)
