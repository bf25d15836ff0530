"""1D two-layer ReLU net (docs/experiments.md §3): the net's maths against autograd, runs over several seeds, and
Fig. 4 / Fig. 9.

Fidelity checks run each preset at its seed and the three seeds after it ("preset seed and at least 2 of
3 other seeds", one job with seeds=4), with fewer checkpoints than the preset (final values do not depend on them).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.core.recording import Cancelled, Recorder
from engine.core.torch_draws import TorchRandom
from engine.relu import nets as rn
from engine.relu import relu1d
from engine.relu.claims import STUCK_LOSS


def run_preset(preset: str, **changes) -> dict:
    config = relu1d.PRESETS[preset].config.replace(**changes)
    rec = Recorder("relu1d", config.to_dict(), preset)
    relu1d.run(config, rec)
    return rec.view()


# ----------------------------------------------------------------------------- the net's maths
def _torch_output(layout: rn.Layout, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The net written with torch.nn.functional, independent of relu_nets.forward."""
    out = x
    for k, (w, b) in enumerate(layout.layers(flat)):
        out = torch.nn.functional.linear(out, w, b)
        if k < layout.depth - 1:
            out = torch.relu(out)
    return out[..., 0]


def test_ntk_features_and_ranks_match_autograd_and_a_full_svd() -> None:
    rng = np.random.default_rng(0)
    layout = rn.layout_1d(40)
    params = np.stack([relu1d.init_params(relu1d.Config(width=40, seed=s)) for s in range(3)])
    params[1, 80:] = 0.0                                                    # output weights all zero
    params[2, 80::2] = 0.0                                                  # half the neurons mute
    x = rng.uniform(-1.3, 1.45, layout.size)
    phi = rn.ntk_features(layout, params, x[:, None])
    jac = torch.func.vmap(torch.func.jacrev(_torch_output, argnums=1), in_dims=(None, None, 0))
    for i, p in enumerate(params):
        want = jac(layout, torch.tensor(p), torch.tensor(x[:, None, None]))[:, 0]
        np.testing.assert_allclose(phi[i], want.numpy(), atol=1e-12)
        s = np.linalg.svd(phi[i], compute_uv=False)
        compressed = np.sort(np.linalg.eigvalsh(rn.gram_1d(p, x)))[::-1]
        k = len(compressed)
        # the compressed matrix carries every nonzero singular value of phi, and nothing else
        np.testing.assert_allclose(compressed, s[:k] ** 2, atol=1e-12 * s[0] ** 2)
        assert np.all(s[k:] < 1e-9 * s[0])
        assert rn.ntk_rank([rn.gram_1d(p, x)])[0] == (s / s[0] > 1e-4).sum()
    # with a = 0 only the relu(w x + b) columns of phi are nonzero: at most one per neuron
    assert 0 < rn.ntk_rank([rn.gram_1d(params[1], x)])[0] <= 40


def test_compiled_sgd_matches_torch_autograd_step_by_step() -> None:
    """Batch SGD on the MSE from the same init and samples: the compiled loop, the batched numpy/torch
    step and plain autograd (one run at a time) agree in float64, with mixed batch sizes."""
    x, y = relu1d.data()
    layout = rn.layout_1d(30)
    p0 = np.stack([relu1d.init_params(relu1d.Config(width=30, seed=s)) for s in (1, 2)]) * 0.3
    steps = 300
    idx = rn.batch_indices(12, steps, [1, 3], seed=0)
    lrs = np.stack([np.full(steps, 2e-3), np.linspace(1e-3, 3e-3, steps)])
    compiled = p0.copy()
    rn.sgd(layout, compiled, x[:, None], y, idx, lrs, 0, steps, np.ones(2, bool), np.full(2, -1))
    via_torch = list(rn._train_torch(layout, p0, x[:, None], y, idx, lrs, np.array([steps]), "cpu"))[-1][1]
    for r in range(2):
        flat = torch.tensor(p0[r], requires_grad=True)
        opt = torch.optim.SGD([flat], lr=1.0)
        for t in range(steps):
            batch = idx[r, t][idx[r, t] >= 0]
            for group in opt.param_groups:
                group["lr"] = lrs[r, t]
            loss = ((_torch_output(layout, flat, torch.tensor(x[batch, None])) - torch.tensor(y[batch])) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        np.testing.assert_allclose(compiled[r], flat.detach().numpy(), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(via_torch[r], flat.detach().numpy(), rtol=1e-9, atol=1e-9)


def test_the_presets_schedules_by_hand() -> None:
    fig4 = relu1d.PRESETS["fig4"].config
    short, long = (r.schedule(fig4.steps) for r in fig4.runs)
    n = fig4.steps                                                            # 31623
    assert short[0] == long[0] == pytest.approx(2e-4)
    # warmup to 1 + (W - 1)(i / N): at the 2% decay step int(0.02 N) = 632 the factor is 1 + 7 * 632 / N
    assert short[631] == pytest.approx(2e-4 * (1 + 7 * 631 / n))
    assert short[632] == short[-1] == pytest.approx(2e-4 * (1 + 7 * 632 / n) / 2.5)
    assert long[15811] == long[-1] == pytest.approx(2e-4 * (1 + 199 * 15811 / n) / 3.0)
    assert [r.warmup_factor for r in relu1d.PRESETS["fig9"].config.runs] == [10.0, 250.0]


def test_torch_random_replays_torchs_cpu_draws() -> None:
    """After torch.manual_seed: nn.Linear's init, rand and randn below 16 values match torch bit for bit; randn of
    16 values or more (torch's float32 Box-Muller, whose log/cos/sin torch computes differently by CPU) to ~1e-5."""
    rng = np.random.default_rng(1)
    for seed in (0, 3, 5, 2**31 - 1):
        torch.manual_seed(seed)
        ours = TorchRandom(seed)
        for _ in range(8):
            fan_in, fan_out, bias = int(rng.integers(1, 30)), int(rng.integers(1, 30)), bool(rng.integers(0, 2))
            lin = torch.nn.Linear(fan_in, fan_out, bias=bias)
            w, b = ours.linear(fan_in, fan_out, bias)
            np.testing.assert_array_equal(w, lin.weight.detach().numpy())
            assert (b is None) == (lin.bias is None) and (b is None or np.array_equal(b, lin.bias.detach().numpy()))
            shape = (int(rng.integers(1, 12)), int(rng.integers(1, 12)))
            np.testing.assert_array_equal(ours.rand(shape), torch.rand(shape).numpy())
            small = int(rng.integers(1, 16))
            np.testing.assert_array_equal(ours.randn(small), torch.randn(small).numpy())
            big = int(rng.integers(16, 120))
            np.testing.assert_allclose(ours.randn(big), torch.randn(big).numpy(), rtol=1e-5, atol=1e-5)


def test_sgd_samples_and_init_are_the_authors_draws() -> None:
    """Samples: np.random.seed(seed), then np.random.choice(n, batch, replace=False) per step, the same stream
    for every run; init: nn.Linear's constructors after torch.manual_seed(seed), then +-2.5, 2.5 N(0,1), 4 N(0,1)."""
    idx = rn.batch_indices(12, 500, [1, 3], seed=3)
    np.random.seed(3)
    want = np.array([np.random.choice(12, size=3, replace=False) for _ in range(500)])
    np.testing.assert_array_equal(idx[1], want)
    np.testing.assert_array_equal(idx[0, :, 0], want[:, 0])
    assert (idx[0, :, 1:] == -1).all()
    c = relu1d.PRESETS["fig4"].config
    torch.manual_seed(c.seed)
    hidden, out = torch.nn.Linear(1, 100), torch.nn.Linear(100, 1, bias=False)
    w = 2.5 * (2 * torch.round(torch.rand_like(hidden.weight)) - 1)
    b, a = 2.5 * torch.randn_like(hidden.bias), 4.0 * torch.randn_like(out.weight)
    np.testing.assert_allclose(relu1d.init_params(c), torch.cat([w.ravel(), b, a.ravel()]).double().numpy(),
                               rtol=1e-5, atol=1e-5)


def test_fig4_short_run_retraces_the_authors_printed_loss() -> None:
    """The authors' notebook prints the 2% run's train loss at its last evaluation, step 31,412: 2.0859e-4."""
    c = relu1d.PRESETS["fig4"].config
    x, y = relu1d.data()
    layout = rn.layout_1d(c.width)
    steps = 31412
    lrs = c.runs[0].schedule(c.steps)[None, :steps]
    idx = rn.batch_indices(12, steps, [1], c.seed)
    params = list(rn.train(layout, relu1d.init_params(c)[None], x[:, None], y, idx, lrs, np.array([steps])))[-1][1]
    loss = ((rn.predict(layout, params, x[:, None]) - y) ** 2).mean()
    assert loss == pytest.approx(2.0859e-4, rel=2e-3)


def test_bad_values_are_rejected_with_the_field_name() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        relu1d.RunSpec(batch_size=13)
    with pytest.raises(ValueError, match="names must differ"):
        relu1d.Config(runs=(relu1d.RunSpec(name="a"), relu1d.RunSpec(name="a")))


def test_a_blow_up_ends_the_run_diverged_and_keeps_its_history() -> None:
    view = run_preset("fig4", steps=400, runs=(relu1d.RunSpec(name="huge", lr=0.05), relu1d.RunSpec(name="ok")))
    huge, ok = view["runs"]
    assert huge["status"] == "diverged" and "diverged at step" in huge["message"]
    step = int(huge["message"].split("step ")[1].split(":")[0])
    assert 0 < len(huge["history"]["step"]) and max(huge["history"]["step"]) <= step
    assert ok["status"] == "done" and ok["history"]["step"][-1] == 400
    json.dumps(view)                                                           # the result is plain JSON
    snaps = ok["snapshots"]["predictor"]
    assert len(snaps[0]["value"]["y"]) == len(view["extras"]["data"]["grid"])


# ----------------------------------------------------------------------------- seeds
def test_each_seed_of_a_multi_seed_job_is_that_seeds_own_job() -> None:
    """seeds=3 trains seed, seed+1, seed+2 as rows of one loop: each (run, seed) records exactly what the job with
    that seed alone records (names apart), and only the first seed stores predictor snapshots."""
    multi = run_preset("fig9", steps=1500, checkpoints=10, snapshots=3, seed=3, seeds=3)
    assert [(r["name"], r["label"], r["seed"]) for r in multi["runs"]] == [
        (f"{name} [seed {s}]", name, s) for name in ("warmup 2%", "warmup 50%") for s in (3, 4, 5)]
    for s in (3, 4, 5):
        alone = run_preset("fig9", steps=1500, checkpoints=10, snapshots=3, seed=s)
        mine = [r for r in multi["runs"] if r["seed"] == s]
        for a, b in zip(alone["runs"], mine, strict=True):
            assert (a["name"], a["status"], a["history"], a["final"]) == (b["label"], b["status"], b["history"],
                                                                            b["final"])
            assert b["snapshots"] == (a["snapshots"] if s == 3 else {})


def test_a_multi_seed_job_reports_progress_over_all_seeds_and_can_be_cancelled() -> None:
    config = relu1d.PRESETS["fig4"].config.replace(steps=600, checkpoints=10, seeds=3,
                                                   runs=(relu1d.RunSpec(name="huge", lr=0.05), relu1d.RunSpec()))
    seen = []

    class Watch(Recorder):
        def progress(self, fraction, message=None):
            seen.append(fraction)
            super().progress(fraction, message)

    rec = Watch("relu1d", config.to_dict())
    relu1d.run(config, rec)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) > 3
    runs = rec.view()["runs"]
    # the huge step blows up in every seed, each at its own step; the other run goes on in every seed
    assert [r["status"] for r in runs] == ["diverged"] * 3 + ["done"] * 3
    assert all("diverged at step" in r["message"] for r in runs[:3])
    stopping = Recorder("relu1d", config.to_dict())
    stopping.request_stop()
    with pytest.raises(Cancelled):
        relu1d.run(config, stopping)


def test_seeds_past_the_largest_seed_are_rejected() -> None:
    with pytest.raises(ValueError, match="seeds=3"):
        relu1d.Config(seed=10**6 - 1, seeds=3)


# ----------------------------------------------------------------------------- fidelity (Fig. 4, Fig. 9)
def _fig(preset: str) -> list[dict]:
    """The preset at its seed and the three after it (one job, seeds=4): per seed, its two runs."""
    view = run_preset(preset, seeds=4, checkpoints=60, snapshots=2)
    out = []
    for s in sorted({r["seed"] for r in view["runs"]}):
        runs = {r["label"]: r for r in view["runs"] if r["seed"] == s}
        out.append(dict(seed=s, short=runs["warmup 2%"], long=runs["warmup 50%"], steps=view["config"]["steps"]))
    return out


@pytest.fixture(scope="module")
def fig4() -> list[dict]:
    return _fig("fig4")


@pytest.fixture(scope="module")
def fig9() -> list[dict]:
    return _fig("fig9")


def _holds(results: list[dict], claim) -> list[bool]:
    """Whether the claim holds at the preset seed and at least 2 of the 3 other seeds."""
    ok = [bool(claim(r)) for r in results]
    return [ok[0], sum(ok[1:]) >= 2]


def _stabilizes_then_sparsifies(r: dict) -> bool:
    hist = r["long"]["history"]
    steps, loss = np.array(hist["step"]), np.array(hist["train_loss"], dtype=float)
    plateau = np.median(loss[(steps > 0.25 * r["steps"]) & (steps <= 0.5 * r["steps"])])
    short, long = r["short"]["final"], r["long"]["final"]
    return (10**-1.5 <= plateau <= 10**0.5 and long["ntk_rank"] < short["ntk_rank"]
            and long["feature_sparsity"] < short["feature_sparsity"] and long["kinks"] < short["kinks"])


@pytest.mark.slow
def test_fig4_loss_stabilizes_in_the_warmup_and_the_long_phase_ends_sparser(fig4) -> None:
    assert _holds(fig4, _stabilizes_then_sparsifies) == [True, True]


@pytest.mark.slow
def test_fig4_both_runs_fit(fig4) -> None:
    # measured: seeds 3-5 fit (2%: 1.6e-4, 2.5e-3, 1.8e-3; 50%: 6.6e-4, 2.1e-4, 1.5e-4), seed 6's 2% run ends at
    # 0.20; over seeds 3-22 both fit at 15 of 20 (3-26: 17 of 24). The 50% run's outcome is chaotic (see the
    # presets' note), so this can flip with any change to the arithmetic of the training loop.
    assert _holds(fig4, lambda r: r["short"]["final"]["train_loss"] < 1e-2
                  and r["long"]["final"]["train_loss"] < 1e-2) == [True, True]


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="measured: the preset opens on seed 13, where the 50% run sticks (> 0.1, "
                   "the 2% run fitting), but not at seeds 14, 15, 16. Over seeds 3-22 it sticks at 3 of 20 "
                   "(10, 13, 22; over 3-26 at 4 of 24, and 24); at seed 3 in 4 of 12 inits 1e-7 away: sticking is one "
                   "outcome of a bistable, chaotic run (see the presets' note)")
def test_fig9_the_long_phase_no_longer_fits(fig9) -> None:
    assert _holds(fig9, lambda r: r["long"]["final"]["train_loss"] > STUCK_LOSS
                  and r["short"]["final"]["train_loss"] < 1e-2) == [True, True]


def test_a_job_is_bounded_in_runs_and_in_steps_x_runs_x_seeds():
    """Every preset runs at 20 seeds and the sweep preset's points fit; a URL asking for more (any number of runs
    validated before) is refused with the limit in the message."""
    from engine.relu.runs import MAX_WORK
    from engine.sweeps import grid as sweep

    for preset in relu1d.PRESETS.values():
        preset.config.replace(seeds=20)
    sweep.build("relu1d", "map-warmup", seeds=20)  # raises if a point is over a bound
    c = relu1d.PRESETS["fig4"].config
    with pytest.raises(ValueError, match=r"^runs: 9 runs, above the limit of 8 per job: use fewer runs$"):
        c.replace(runs=tuple(c.runs[0].replace(name=f"r{k}") for k in range(9)), steps=10)
    with pytest.raises(ValueError, match=rf"^steps x runs x seeds = 1,000,000 x 2 x 20 = 40,000,000 is above the limit "
                                         rf"of {MAX_WORK:,} per job: use fewer steps, runs or seeds$"):
        c.replace(steps=1_000_000, seeds=20)
