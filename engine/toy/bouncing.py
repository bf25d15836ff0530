"""Toy 1D model: the loss stabilizes because SGD bounces across the valley (paper Sec. 2.2, Prop. 3).

Quadratic parametrization h(x) = x theta^2, labels y = x theta_star^2, loss
F(theta) = 1/4 mean (y - x theta^2)^2 over n training inputs drawn uniformly from [a, b].
SGD (Eq. 4): theta += eta theta x_t (y_t - x_t theta^2). GD uses the full training set.
Prop. 3/7: for eta in ((theta_star a)^-2, 1.25 (theta_star b)^-2) and theta_0 in (0, theta_star),
F stays in (eps0^2 theta_star^2, 0.17 theta_star^2) and the iterates alternate sides of theta_star.
Prop. 1 / Lemma 2: SGD is GD on labels y + xi, xi_i = (h(x_i) - y_i)(1 - n 1[i = i_t]), with
E||xi||^2 / (n (n - 1)) = 2 L(theta), L = 1/(2n) sum (h - y)^2 = 2 F.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.core.config import Config, Preset, param
from engine.toy.claims import CLAIMS  # noqa: F401 (the registry's)

TITLE = "Toy 1D model: loss stabilization by bouncing (Prop. 3) and SGD = GD + label noise"
ALGORITHMS = ("SGD + GD", "SGD", "GD")


# ----------------------------------------------------------------------------- config
@dataclass(frozen=True)
class BouncingConfig(Config):
    eta: float = param(1.12, 0.01, 5.0, step=0.005, label="step size η", help="step size eta")
    a: float = param(0.95, 0.05, 5.0, step=0.01, label="a (smallest x)", help="lower end of the support of x (a > 0)")
    b: float = param(1.05, 0.05, 5.0, step=0.01, label="b (largest x)", help="upper end of the support of x")
    theta_star: float = param(1.0, 0.1, 3.0, step=0.05, label="θ* (the valley)",
                              help="the valley: labels y = x theta_star^2")
    theta0: float = param(0.5, 0.01, 3.0, step=0.01, label="θ₀ (init)",
                          help="initial theta (Prop. 3 needs 0 < theta0 < theta_star)")
    steps: int = param(200, 10, 20000, step=10, help="number of steps")
    n: int = param(20, 2, 1000, step=1, label="n (training inputs)", help="training inputs drawn uniformly from [a, b]")
    seed: int = param(0, 0, 10**6, step=1, help="seed of the training inputs and of SGD's sampling")
    algorithms: str = param("SGD + GD", choices=ALGORITHMS, help="which algorithms to run")
    burn_in: int = param(1000, 10, 20000, step=10, label="burn-in (bifurcation diagram)",
                         help="bifurcation diagram: steps before recording")

    def check(self) -> None:
        if self.a >= self.b:
            raise ValueError(f"a={self.a} must be below b={self.b}: the support of x is [a, b]")


Config = BouncingConfig


def prop3_interval(c: BouncingConfig) -> tuple[float, float]:
    """The step sizes of Prop. 3: ((theta_star a)^-2, 1.25 (theta_star b)^-2) (may be empty)."""
    return (c.theta_star * c.a) ** -2, 1.25 * (c.theta_star * c.b) ** -2


def loss_bounds(c: BouncingConfig) -> tuple[float, float]:
    """Prop. 3's band for F: (eps0^2 theta_star^2, 0.17 theta_star^2),
    eps0 = min((eta (theta_star a)^2 - 1) / 3, 0.02)."""
    eps0 = min((c.eta * (c.theta_star * c.a) ** 2 - 1) / 3, 0.02)
    return max(eps0, 0.0) ** 2 * c.theta_star**2, 0.17 * c.theta_star**2


def h_map(gamma: np.ndarray | float, theta: np.ndarray | float) -> np.ndarray:
    """Rescaled SGD map h_gamma(theta) = theta + gamma theta (1 - theta^2), gamma = eta theta_star^2 x^2."""
    return theta + gamma * theta * (1 - theta**2)


PRESETS = {
    "prop3": Preset(BouncingConfig(), "eta = 1.12 inside the Prop. 3 interval (1.108, 1.134): SGD bounces, "
                    "loss stabilizes"),
    "below": Preset(BouncingConfig(eta=0.9), "eta = 0.9 below the interval: SGD converges to the valley"),
    "above": Preset(BouncingConfig(eta=2.5), "eta = 2.5 far above the interval: the iterates blow up"),
}


# ----------------------------------------------------------------------------- data
def training_inputs(c: BouncingConfig) -> tuple[np.ndarray, np.ndarray]:
    """n inputs uniform on [a, b] and their labels x theta_star^2."""
    x = np.random.default_rng(c.seed).uniform(c.a, c.b, c.n)
    return x, x * c.theta_star**2


def sample_indices(c: BouncingConfig, steps: int) -> np.ndarray:
    """SGD's sample index at each step (uniform, with replacement)."""
    return np.random.default_rng([c.seed, 1]).integers(0, c.n, steps)


# ----------------------------------------------------------------------------- run
def _train(c: BouncingConfig, algorithm: str, rec, run: int, x: np.ndarray, y: np.ndarray) -> None:
    idx = sample_indices(c, c.steps)
    theta = c.theta0
    n = c.n
    mean_x2 = float(np.mean(x * x))
    noise_sum = loss_sum = 0.0
    for t in range(c.steps + 1):
        r = x * theta**2 - y                      # residuals h(x_i) - y_i
        loss = float(r @ r) / (4 * n)             # F(theta)
        row = dict(theta=theta, train_loss=loss, lr=c.eta)
        if algorithm == "SGD" and t < c.steps:
            i = idx[t]
            xi = r.copy()                         # xi_j = r_j (1 - n 1[j = i_t])
            xi[i] = r[i] * (1 - n)
            noise = float(xi @ xi) / (n * (n - 1))
            noise_sum += noise
            loss_sum += 4 * loss
            sgd = theta - c.eta * r[i] * x[i] * theta
            gd_noisy = theta - c.eta * float(np.mean((r - xi) * x)) * theta   # GD on labels y + xi
            row.update(label_noise=noise, label_noise_mean=noise_sum / (t + 1), two_loss=4 * loss,
                       two_loss_mean=loss_sum / (t + 1),
                       prop1_error=abs(sgd - gd_noisy))
            theta_next = sgd
        elif t < c.steps:
            theta_next = theta - c.eta * mean_x2 * (theta**2 - c.theta_star**2) * theta
        rec.log(run, t, **row)
        if not np.isfinite(theta) or abs(theta) > 1e6:
            rec.finish_run(run, "diverged", f"diverged at step {t}: |theta| = {abs(theta):.3g}")
            return
        if t == c.steps:
            break
        theta = theta_next
        if t % 2000 == 0:
            rec.progress((t + 1) / (c.steps + 1))
    rec.finish_run(run, "done")


def bifurcation(c: BouncingConfig, count: int = 200, keep: int = 48) -> dict:
    """Long-run theta (after burn-in) for `count` step sizes across and beyond the Prop. 3 interval,
    for SGD and GD, vectorized over the step sizes."""
    lo, hi = prop3_interval(c)
    etas = np.linspace(0.5 * min(lo, hi), 1.9 * max(lo, hi), count)  # up to where GD blows up
    x, y = training_inputs(c)
    idx = sample_indices(c, c.burn_in + keep)
    mean_x2 = float(np.mean(x * x))
    out = {}
    with np.errstate(all="ignore"):
        for algorithm in ("SGD", "GD"):
            theta = np.full(count, c.theta0)
            tail = np.empty((keep, count))
            for t in range(c.burn_in + keep):
                if algorithm == "SGD":
                    i = idx[t]
                    theta = theta - etas * (x[i] * theta**2 - y[i]) * x[i] * theta
                else:
                    theta = theta - etas * mean_x2 * (theta**2 - c.theta_star**2) * theta
                theta = np.where(np.abs(theta) > 1e6, np.inf, theta)
                if t >= c.burn_in:
                    tail[t - c.burn_in] = theta
            out[algorithm] = np.where(np.isfinite(tail), tail, np.nan).T  # (count, keep)
    return dict(eta=etas, sgd=out["SGD"], gd=out["GD"], interval=[lo, hi])


def run(c: BouncingConfig, rec, workdir=None) -> None:
    """Train SGD and/or GD from theta0, logging theta, F and the label-noise check at every step."""
    x, y = training_inputs(c)
    lo, hi = prop3_interval(c)
    low, high = loss_bounds(c)
    rec.snapshot(None, "prop3", dict(interval=[lo, hi], inside=bool(lo < c.eta < hi), loss_bounds=[low, high]))
    rec.snapshot(None, "inputs", dict(x=x, y=y))
    for algorithm in ("SGD", "GD"):
        if algorithm in c.algorithms:
            _train(c, algorithm, rec, rec.add_run(algorithm, spec=dict(algorithm=algorithm, eta=c.eta)), x, y)
    rec.progress(0.95, "bifurcation diagram")
    rec.snapshot(None, "bifurcation", bifurcation(c))
