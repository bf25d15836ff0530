"""Toy 1D model (Prop. 3, Prop. 1, Lemma 2): what the paper proves, checked on runs of the engine."""

import numpy as np
import pytest

from engine.core.recording import Recorder
from engine.toy import bouncing


def train(config):
    rec = Recorder("bouncing", config.to_dict())
    bouncing.run(config, rec)
    rec.close("done")
    return rec.view()


def history(view, name):
    run = next(r for r in view["runs"] if r["name"] == name)
    return run, {k: np.array(v, dtype=float) for k, v in run["history"].items()}


@pytest.mark.parametrize("seed", range(8))
def test_inside_the_interval_sgd_bounces_and_the_loss_stays_in_the_band(seed):
    config = bouncing.Config(seed=seed, steps=3000, algorithms="SGD")
    lo, hi = bouncing.prop3_interval(config)
    assert lo < config.eta < hi
    run, h = history(train(config), "SGD")
    assert run["status"] == "done"
    theta, loss = h["theta"][500:], h["train_loss"][500:]
    low, high = bouncing.loss_bounds(config)
    assert np.all((loss > low) & (loss < high))
    side = np.sign(theta - config.theta_star)
    assert np.all(side[1:] == -side[:-1]), "iterates alternate sides of theta_star"
    # and the rescaled iterates sit in Prop. 7's intervals (0.65, 1 - eps0) / (1 + eps0, 1.162)
    t = theta / config.theta_star
    assert t.min() > 0.65 and t.max() < 1.162


def test_below_the_interval_sgd_converges():
    run, h = history(train(bouncing.PRESETS["below"].config.replace(algorithms="SGD", steps=2000)), "SGD")
    assert h["train_loss"][-1] < 1e-20
    assert h["theta"][-1] == pytest.approx(1.0, abs=1e-10)


def test_far_above_the_interval_the_run_diverges_and_says_where():
    view = train(bouncing.PRESETS["above"].config)
    for run in view["runs"]:
        assert run["status"] == "diverged" and "diverged at step" in run["message"]


def test_gd_settles_on_a_period_two_oscillation():
    _, h = history(train(bouncing.Config(algorithms="GD", steps=2000)), "GD")
    theta = h["theta"][-100:]
    assert np.allclose(theta[2:], theta[:-2], atol=1e-9)
    assert np.all(np.abs(theta[1:] - theta[:-1]) > 0.1)


def test_bifurcation_diagram_shows_period_doubling_for_gd():
    config = bouncing.Config()
    bif = bouncing.bifurcation(config, count=200)
    etas, gd = np.asarray(bif["eta"]), np.asarray(bif["gd"])

    def period(k):
        values = gd[k][np.isfinite(gd[k])]
        return len(np.unique(values.round(6))) if len(values) else 0

    gamma = etas * np.mean(bouncing.training_inputs(config)[0] ** 2) * config.theta_star**2
    k1, k2 = np.argmin(abs(gamma - 0.9)), np.argmin(abs(gamma - 1.12))
    assert period(k1) == 1 and period(k2) == 2
    periods = [period(k) for k in range(len(etas)) if gamma[k] > 1.12]
    assert 4 in periods, "a period-4 window further up"
    assert 0 in periods, "GD blows up at the far end"


def test_prop1_one_sgd_step_is_one_gd_step_on_noisy_labels():
    run, h = history(train(bouncing.Config(steps=2000, algorithms="SGD")), "SGD")
    errors = h["prop1_error"][np.isfinite(h["prop1_error"])]
    assert len(errors) == 2000 and errors.max() < 1e-12


def test_lemma2_label_noise_variance_equals_twice_the_loss():
    config = bouncing.Config(n=15)
    x, y = bouncing.training_inputs(config)
    n = config.n
    for theta in (0.3, 0.9, 1.1):
        r = x * theta**2 - y
        # exact expectation over the sampled index i_t
        noise = np.mean([np.sum((r * (1 - n * (np.arange(n) == i))) ** 2) for i in range(n)]) / (n * (n - 1))
        assert noise == pytest.approx(2 * np.sum(r**2) / (2 * n), rel=1e-12)
    # along a long run the running means agree
    _, h = history(train(bouncing.Config(steps=20000, algorithms="SGD")), "SGD")
    assert h["label_noise_mean"][-2] / h["two_loss_mean"][-2] == pytest.approx(1.0, abs=0.05)
