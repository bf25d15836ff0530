"""Sharpness (the top eigenvalue of the training loss's Hessian) along training (issue 18): diagonal networks and
ReLU nets, against Hessians built here independently (closed form, finite differences) and numpy's eigvalsh."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.core.lanczos import top_eigen
from engine.core.recording import Recorder
from engine.diagonal import experiment as diagonal
from engine.diagonal.data import make_data
from engine.diagonal.sharpness import edge_of_stability, hessian_trace, sharpness


# ----------------------------------------------------------------------------- diagonal networks
def diagonal_loss_grad(x, y, u, v):
    """Gradient of ||X (u * v) - y||^2 / (2n) in (u, v), written out."""
    r = x @ (u * v) - y
    g = x.T @ r / len(y)
    return np.concatenate([v * g, u * g])


def diagonal_hessian(x, y, u, v):
    """The explicit 2d x 2d Hessian, entry by entry: d^2 L / d u_i d u_j = v_i G_ij v_j, d^2 L / d u_i d v_j =
    v_i G_ij u_j + [i = j] g_i, d^2 L / d v_i d v_j = u_i G_ij u_j (G = X^T X / n, g = X^T r / n)."""
    n, d = x.shape
    G, g = x.T @ x / n, x.T @ (x @ (u * v) - y) / n
    h = np.empty((2 * d, 2 * d))
    for i in range(d):
        for j in range(d):
            h[i, j] = v[i] * G[i, j] * v[j]
            h[i, d + j] = h[d + j, i] = v[i] * G[i, j] * u[j] + (g[i] if i == j else 0.0)
            h[d + i, d + j] = u[i] * G[i, j] * u[j]
    return h


def test_the_written_out_hessian_is_the_derivative_of_the_gradient():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((7, 5)), rng.standard_normal(7)
    u, v = rng.standard_normal(5), rng.standard_normal(5)
    w, eps = np.concatenate([u, v]), 1e-6
    grad = lambda w: diagonal_loss_grad(x, y, *np.split(w, 2))  # noqa: E731
    fd = np.stack([(grad(w + eps * e) - grad(w - eps * e)) / (2 * eps) for e in np.eye(10)], axis=1)
    np.testing.assert_allclose(fd, diagonal_hessian(x, y, u, v), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("shape", [(80, 200), (20, 30), (40, 8)])
def test_diagonal_sharpness_equals_eigvalsh_of_the_explicit_hessian(shape):
    """lambda_max from the batched Lanczos equals numpy's eigvalsh of the explicit Hessian to 1e-8 relative, at
    states of an actual large-step run (fig2's data) and at random ones, several states in one batch."""
    n, d = shape
    c = diagonal.PRESETS["fig2"].config.replace(n=n, d=d, r=min(5, d))
    data = make_data(c)
    rng = np.random.default_rng(1)
    u = 0.1 + 0.5 * rng.standard_normal((5, d))
    v = 0.5 * rng.standard_normal((5, d))
    u[0], v[0] = c.init_scale, 0.0  # the init: the Hessian has a zero block
    got = sharpness(data.x, data.y, u, v)
    for k in range(len(u)):
        want = np.linalg.eigvalsh(diagonal_hessian(data.x, data.y, u[k], v[k]))[-1]
        assert got[k] == pytest.approx(want, rel=1e-8)
        trace = np.trace(diagonal_hessian(data.x, data.y, u[k], v[k]))
        assert hessian_trace(data.x, u[k], v[k]) == pytest.approx(trace, rel=1e-12)


def test_lanczos_finds_the_largest_not_the_largest_magnitude_eigenvalue():
    """A matrix whose most negative eigenvalue is the largest in size: lambda_max is the top algebraic one."""
    rng = np.random.default_rng(2)
    q = np.linalg.qr(rng.standard_normal((30, 30)))[0]
    mats = np.stack([q @ np.diag(np.linspace(-5, s, 30)) @ q.T for s in (1.0, 3.0)])
    got = top_eigen(lambda z: np.einsum("mij,mj->mi", mats, z), rng.standard_normal((2, 30)))
    np.testing.assert_allclose(got.value, [1.0, 3.0], rtol=1e-10)
    assert np.all(got.residual <= 1e-10 * np.abs(got.value))


def run_recorded(config):
    rec = Recorder("diagonal", config.to_dict())
    diagonal.run(config, rec, None)
    return rec.view()["runs"]


def test_sharpness_is_logged_only_when_asked_and_leaves_training_unchanged():
    c = diagonal.PRESETS["fig3"].config.replace(steps=2001, checkpoints=20, plane=False)
    plain = run_recorded(c)
    assert "sharpness" not in plain[0]["history"]
    tracked = run_recorded(c.replace(sharpness=True))
    for a, b in zip(plain, tracked, strict=True):
        assert a["history"]["train_loss"] == b["history"]["train_loss"]
        assert len(b["history"]["sharpness"]) == len(b["history"]["step"])
        assert np.all(np.isfinite(b["history"]["sharpness"])) and np.all(np.isfinite(b["history"]["hessian_trace"]))
        assert np.all(np.asarray(b["history"]["sharpness"]) > 0)


def test_the_sharpness_preset_shows_gd_at_the_edge_of_stability():
    """Fig. 8's large GD steps, shortened to 20,001 steps with the decay at 30%: lambda_max >= 2/eta during the
    large-step phase and < 2/eta after the decay (the stability bound's own thresholds)."""
    c = diagonal.PRESETS["sharpness"].config
    c = c.replace(steps=20_001, checkpoints=100, runs=(c.runs[2],))
    runs = run_recorded(c)
    checks = edge_of_stability(runs, c.steps)
    assert len(checks) == 1 and checks[0].ok, checks


def test_the_diagonal_page_draws_sharpness_against_two_over_eta_for_the_sharpness_preset():
    from tests.page_helpers import charts, open_page, run_until_done

    at = open_page("diagonal", diag_preset="sharpness", diag_steps="3001")
    assert at.sidebar.selectbox(key="diag_preset").value == "sharpness"
    at.button(key="run_diagonal").click()
    at = run_until_done(at)
    assert any(s.value == "Sharpness against 2/η" for s in at.subheader)
    specs = [json.dumps(json.loads(c.proto.spec), ensure_ascii=False) for c in at.get("vega_lite_chart")]
    assert any("λ_max" in s and "2/η" in s for s in specs)
    assert charts(at) >= 7  # the four metric charts, sharpness, trace, final beta


# ----------------------------------------------------------------------------- ReLU nets
def relu_problem(preset: str, spread: float = 0.3):
    """Teacher-student data of a preset and three student param sets around its init (float64)."""
    from engine.relu import teacher_student as ts

    c = ts.PRESETS[preset].config
    p = ts.problem(c)
    layout = ts.layouts(c)[1]
    rng = np.random.default_rng(3)
    params = np.stack([p["student"] + spread * rng.standard_normal(layout.size) for _ in range(3)])
    return layout, params, p["x"], p["y"]


def dense_relu_hessian(layout, params, x, y, h=1e-6):
    """The Hessian column by column by central differences of the gradient. Why h = 1e-6: the loss is a polynomial
    in the params while no pre-activation changes sign, so the error is O(h^2 |grad^3 L|) ~ 1e-12 plus rounding
    eps |grad L| / h ~ 1e-10; the caller checks that no pre-activation lies within reach of a sign change."""
    from engine.relu import nets as rn
    from engine.relu.curvature import loss_grad

    for z in rn.forward(layout, params, x)[0][:-1]:
        assert np.abs(z).min() > 1e-4  # h * |x| * (1 + |w|) stays far below: one activation pattern
    cols = []
    for e in np.eye(layout.size):
        cols.append((loss_grad(layout, params + h * e, x, y) - loss_grad(layout, params - h * e, x, y)) / (2 * h))
    return np.stack(cols, axis=-1)


def test_the_relu_loss_gradient_is_the_training_step_of_the_compiled_nets():
    from engine.relu import nets as rn
    from engine.relu.curvature import loss_grad

    for preset in ("fig5", "fig6"):
        layout, params, x, y = relu_problem(preset)
        new, _ = rn.sgd_step(layout, params, np.broadcast_to(x, (3, *x.shape)), np.broadcast_to(y, (3, *y.shape)),
                             np.ones(3))
        np.testing.assert_allclose(loss_grad(layout, params, x, y), params - new, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("preset", ["fig5", "fig6"])  # two-layer without biases; three-layer with biases
def test_relu_lanczos_equals_the_dense_hessians_top_eigenvalue(preset):
    from engine.relu.curvature import hessian_matvec, hessian_trace, top_hessian_eigen

    layout, params, x, y = relu_problem(preset)
    dense = dense_relu_hessian(layout, params, x, y)
    want = np.linalg.eigvalsh((dense + dense.swapaxes(1, 2)) / 2)[:, -1]
    got = top_hessian_eigen(layout, params, x, y)
    np.testing.assert_allclose(got.value, want, rtol=1e-4)
    # the R-operator's products are the dense Hessian's columns
    hvp = hessian_matvec(layout, params, x, y)
    cols = np.stack([hvp(np.broadcast_to(e, params.shape)) for e in np.eye(layout.size)], axis=-1)
    np.testing.assert_allclose(cols, dense, atol=1e-6 * np.abs(dense).max())
    np.testing.assert_allclose(hessian_trace(layout, params, x, y), np.trace(dense, axis1=1, axis2=2), rtol=1e-6)


def test_relu_sharpness_is_logged_when_asked_and_leaves_training_unchanged():
    from engine.relu import relu1d

    c = relu1d.PRESETS["fig4"].config.replace(steps=2000, checkpoints=10, snapshots=2)
    runs = []
    for on in (False, True):
        rec = Recorder("relu1d", c.to_dict())
        relu1d.run(c.replace(sharpness=on), rec, None)
        runs.append(rec.view()["runs"])
    for a, b in zip(*runs, strict=True):
        assert "sharpness" not in a["history"]
        assert a["history"]["train_loss"] == b["history"]["train_loss"]
        lam, trace = np.asarray(b["history"]["sharpness"]), np.asarray(b["history"]["hessian_trace"])
        assert len(lam) == len(b["history"]["step"]) and np.all(lam > 0) and np.all(np.isfinite(trace))


def test_the_edge_of_stability_check_fails_below_the_edge_and_skips_sgd():
    steps = 1000
    step = np.arange(0, steps + 1, 10)
    lr = np.where(step < 500, 2.0, 0.5)

    def run(algorithm, lam):
        return dict(label=algorithm, status="done", config=dict(algorithm=algorithm, decay_at=0.5),
                    history=dict(step=list(step), lr=list(lr), sharpness=list(lam)))

    at_edge = np.where(step < 500, 1.2, 1.0)    # lambda eta / 2 = 1.2 before, 0.25 after
    below = np.where(step < 500, 0.6, 0.6)      # 0.6 before: a stable step, not the edge
    assert [c.ok for c in edge_of_stability([run("GD", at_edge), run("GD", below)], steps)] == [True, False]
    assert edge_of_stability([run("SGD", at_edge)], steps) == []
