"""Sharpness of a diagonal network's training loss: the top eigenvalue of its Hessian (and the trace), for many
states (u, v) at once, and the edge-of-stability claim built on it.

L(u, v) = ||X (u * v) - y||^2 / (2n). With G = X^T X / n and g = X^T r / n (r = X (u * v) - y), the 2d x 2d
Hessian is  [[D_v G D_v, D_v G D_u + D_g], [D_u G D_v + D_g, D_u G D_u]]  (D_a = diag(a)), so a Hessian-vector
product costs two products with X (no 2d x 2d matrix), and tr H = sum_i G_ii (u_i^2 + v_i^2) (D_g is
off-diagonal). lambda_max comes from batched Lanczos (engine.core.lanczos), to a relative 1e-10 by its residual
bound. Gradient descent on L is stable only while lambda_max <= 2 / eta (edge of stability).
"""

from __future__ import annotations

import numpy as np

from engine.core.claims import Check
from engine.core.lanczos import top_eigen

TOL = 1e-10      # relative accuracy of lambda_max (Lanczos residual bound)
START_SEED = 0x5A4  # the fixed start vector: a state's value does not depend on which states share its batch


def hessian_matvec(x: np.ndarray, y: np.ndarray, u: np.ndarray, v: np.ndarray):
    """q (m, 2d) -> H(u_i, v_i) q_i for states u, v (m, d) on data x (n, d), y (n,)."""
    n = len(y)
    g = ((u * v) @ x.T - y) @ x / n

    def matvec(q: np.ndarray) -> np.ndarray:
        qu, qv = np.split(q, 2, axis=1)
        t = ((v * qu + u * qv) @ x.T) @ x / n
        return np.concatenate([v * t + g * qv, u * t + g * qu], axis=1)

    return matvec


def sharpness(x: np.ndarray, y: np.ndarray, u: np.ndarray, v: np.ndarray, tol: float = TOL) -> np.ndarray:
    """lambda_max of the training loss's Hessian at each state (rows of u, v (m, d))."""
    u = np.ascontiguousarray(u, dtype=np.float64)
    v = np.ascontiguousarray(v, dtype=np.float64)
    if len(u) == 0:
        return np.zeros(0)
    start = np.random.default_rng(START_SEED).standard_normal(2 * u.shape[1])
    result = top_eigen(hessian_matvec(x, y, u, v), np.broadcast_to(start, (len(u), len(start))), tol=tol)
    return result.value


def hessian_trace(x: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """tr H = sum_i G_ii (u_i^2 + v_i^2) along the last axis."""
    return (u * u + v * v) @ ((x * x).sum(0) / len(x))


# ----------------------------------------------------------------------------- claim
def _series(run: dict, metric: str) -> tuple[np.ndarray, np.ndarray]:
    hist = run["history"]
    step = np.asarray(hist.get("step", []), dtype=float)
    values = np.asarray([np.nan if a is None else a for a in hist.get(metric, [np.nan] * len(step))], dtype=float)
    return step, values


def edge_of_stability(runs: list[dict], steps: int) -> list[Check]:
    """Full-batch runs (GD, SDE) with a decay: over the second half of the large-step phase (after the initial
    transient) the median of lambda_max * eta / 2 is >= 1, i.e. lambda_max sits at or above 2 / eta, where GD
    cannot converge (on a quadratic with that curvature it would diverge) and the loss stabilizes instead; over
    the last 10% of training, after the decay, it is < 1: the smaller step is stable and the run converges.
    The thresholds are the stability bound's own. SGD is not judged: its steps follow one sample's Hessian, not
    the full-batch one (its full-batch lambda_max stays far below 2 / eta; see the notes). Runs without a
    `sharpness` history give no check."""
    checks = []
    for run in runs:
        at = run["config"].get("decay_at", 1.0)
        step, lam = _series(run, "sharpness")
        _, lr = _series(run, "lr")
        if (at >= 1 or run["config"].get("algorithm") == "SGD" or not np.isfinite(lam).any()
                or run["status"] != "done"):
            continue
        decay = at * steps
        phase = (step >= 0.5 * decay) & (step < decay) & np.isfinite(lam)
        late = (step >= 0.9 * steps) & np.isfinite(lam)
        if not phase.any() or not late.any():
            continue
        during = float(np.median(lam[phase] * lr[phase] / 2))
        after = float(np.median(lam[late] * lr[late] / 2))
        shown = (f"λ_max {np.median(lam[phase]):.3g} → {np.median(lam[late]):.3g}; λ_max·η/2 {during:.2f} → "
                 f"{after:.2f}")
        checks.append(Check(f"{run['label']}: λ_max ≥ 2/η in the large-step phase, < 2/η after the decay", shown,
                            during >= 1 > after))
    return checks
