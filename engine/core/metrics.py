"""Metrics shared by the experiments: rank of the NTK feature matrix phi and ||u * v||_0 (docs/experiments.md
"Shared metrics"), batched over checkpoints. numpy only (no torch, no scipy).

Diagonal nets: phi = [X_f * v, X_f * u] on p = 2d fresh inputs X_f (p x d). With X_f = Q R (R is d x d),
phi^T phi = [D_v; D_u] R^T R [D_v, D_u], whose nonzero eigenvalues are those of R diag(u^2 + v^2) R^T; so
the singular values of phi are those of A = R diag(sqrt(u^2 + v^2)) plus d zeros: a d x d SVD instead of
a 2d x 2d one. `DiagonalRank` also skips the SVD where the rank is already certain (see its docstring).
"""

from __future__ import annotations

import numpy as np


def rank_from_singular_values(s: np.ndarray, tau: float) -> np.ndarray:
    """Number of singular values with s_i / s_max > tau, along the last axis (0 for an all-zero matrix)."""
    s = np.asarray(s, dtype=float)
    top = s.max(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(top[..., 0] > 0, (s > tau * top).sum(axis=-1), 0)


def l0_norm(beta: np.ndarray, threshold: float = 1e-50) -> np.ndarray:
    """||beta||_0 along the last axis: entries with |beta_i| > threshold (float64 runs shrink exponentially,
    so exact zeros never occur)."""
    return (np.abs(beta) > threshold).sum(axis=-1)


def diagonal_phi(x_fresh: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The NTK feature matrix of h(x) = <u * v, x> on the rows of x_fresh: [x * v, x * u] (p x 2d)."""
    return np.hstack([x_fresh * v, x_fresh * u])


def ntk_rank_bruteforce(x_fresh: np.ndarray, u: np.ndarray, v: np.ndarray, tau: float = 1e-15) -> int:
    """rank(phi) by a full SVD of the p x 2d matrix phi (the reference the fast path is tested against)."""
    return int(rank_from_singular_values(np.linalg.svd(diagonal_phi(x_fresh, u, v), compute_uv=False), tau))


class DiagonalRank:
    """rank(phi_{u,v}(X_f)) for many (u, v) at once, with X_f fixed (QR factored once).

    For A = R D (D = diag(s), s = sqrt(u^2 + v^2)) and s_(k) the k-th largest s_j:
        sigma_min(R) s_(k) <= sigma_k(A) <= sigma_max(R) s_(k)           (Ostrowski-type bounds),
        max_j |R e_j| s_j <= sigma_1(A) <= min(sigma_max(R) s_(1), ||A||_F).
    Coordinates with sigma_min(R) s_j > tau * (upper bound of sigma_1) certainly give a singular value above
    the threshold; those with sigma_max(R) s_j < tau * (lower bound of sigma_1) certainly do not. If every
    coordinate is certain, the rank is the count of the first kind and no SVD is needed.
    Otherwise the columns T whose joint size ||A_T||_F is below 1e-6 * tau * sigma_1 are dropped before the
    SVD: by Weyl's inequality this moves each singular value by at most ||A_T||_2 (the dropped ones are all
    below that), a relative change of 1e-6 of the threshold, far below the float64 SVD's own error there.
    """

    def __init__(self, x_fresh: np.ndarray, tau: float = 1e-15, drop: float = 1e-6):
        self.tau, self.drop = float(tau), float(drop)
        self.r = np.linalg.qr(np.asarray(x_fresh, dtype=float), mode="r")
        sv = np.linalg.svd(self.r, compute_uv=False)
        self.smax, self.smin = float(sv[0]), float(sv[-1])
        self.col = np.linalg.norm(self.r, axis=0)
        self.svd_calls = 0  # how many checkpoints needed an SVD (for tests and benchmarks)

    def __call__(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Ranks for u, v of shape (..., d); -1 where the state is not finite."""
        u = np.asarray(u, dtype=float)
        v = np.asarray(v, dtype=float)
        shape = u.shape[:-1]
        s = np.sqrt(u * u + v * v).reshape(-1, u.shape[-1])
        out = np.full(s.shape[0], -1, dtype=np.int64)
        finite = np.isfinite(s).all(axis=1)
        cs = s * self.col
        with np.errstate(over="ignore", invalid="ignore"):
            lower1 = cs.max(axis=1)
            upper1 = np.minimum(self.smax * s.max(axis=1), np.sqrt((cs * cs).sum(axis=1)))
            above = self.smin * s > self.tau * upper1[:, None]
            below = self.smax * s < self.tau * lower1[:, None]
        certain = (above | below).all(axis=1) & finite
        out[certain] = above[certain].sum(axis=1)
        out[finite & (lower1 == 0)] = 0
        done: dict[bytes, int] = {}  # runs that share a prefix (same step size until a decay) share states
        for m in np.flatnonzero(finite & ~certain & (lower1 > 0)):
            key = s[m].tobytes()
            if key not in done:
                done[key] = self._svd_rank(s[m], cs[m], lower1[m])
            out[m] = done[key]
        return out.reshape(shape)

    def _svd_rank(self, s: np.ndarray, cs: np.ndarray, lower1: float) -> int:
        self.svd_calls += 1
        order = np.argsort(cs)
        # drop the smallest columns while their joint Frobenius norm stays below drop * tau * sigma_1
        tail = np.sqrt(np.cumsum(cs[order] ** 2))
        ndrop = int(np.searchsorted(tail, self.drop * self.tau * lower1, side="left"))
        keep = np.sort(order[ndrop:])
        a = self.r[: keep.max() + 1, keep] * s[keep]  # R is upper triangular: rows below max(keep) are zero
        return int(rank_from_singular_values(np.linalg.svd(a, compute_uv=False), self.tau))
