"""Largest eigenvalue of many symmetric matrices at once, given only their matrix-vector products (a Hessian's
Hessian-vector products): batched Lanczos with full reorthogonalization. numpy only.

Stopping rule: for a Ritz pair (theta, x = Q s) of the Krylov space, ||H x - theta x|| = beta_k |s_k| (the last
entry of s times the next off-diagonal). For a symmetric H some eigenvalue lies within that residual of theta,
so each matrix stops once beta_k |s_k| <= tol * |theta|: its top Ritz value is then an eigenvalue to a relative
`tol` (the top one unless the start vector is orthogonal to its eigenvector; Lanczos finds the extreme
eigenvalues first). A Krylov space of the matrix's full size is exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class TopEigen:
    """Largest eigenvalue per matrix, its Ritz vector (unit norm), the residual bound, the Krylov dimension used."""

    value: np.ndarray      # (m,)
    vector: np.ndarray     # (m, p)
    residual: np.ndarray   # (m,) ||H x - value x||
    iterations: int


def top_eigen(matvec: Callable[[np.ndarray], np.ndarray], start: np.ndarray, tol: float = 1e-10,
              max_iter: int = 200, check_every: int = 5) -> TopEigen:
    """Top eigenpair of m symmetric p x p matrices given `matvec(Q (m, p)) -> (m, p)` (row i times matrix i) and
    start vectors (m, p) (e.g. the previous checkpoint's eigenvectors: a warm start); stops when every matrix
    meets the residual rule of the module doc, or at min(max_iter, p) iterations (then exact)."""
    q = np.array(start, dtype=np.float64, ndmin=2)
    m, p = q.shape
    q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-300)
    k_max = max(1, min(max_iter, p))
    basis = np.zeros((m, k_max, p))
    alpha, beta = np.zeros((m, k_max)), np.zeros((m, k_max))
    value, coef, res = np.zeros(m), np.zeros((m, 1)), np.full(m, np.inf)
    k = 0
    for k in range(1, k_max + 1):
        basis[:, k - 1] = q
        w = matvec(q)
        alpha[:, k - 1] = np.einsum("mp,mp->m", w, q)
        for _ in range(2):  # classical Gram-Schmidt twice: orthogonal to working precision
            done = basis[:, :k]
            w -= (np.matmul(done, w[:, :, None]).swapaxes(1, 2) @ done)[:, 0]
        norm = np.linalg.norm(w, axis=1)
        beta[:, k - 1] = norm
        if k % check_every and k < k_max:
            q = w / np.maximum(norm, 1e-300)[:, None]
            continue
        tri = np.zeros((m, k, k))
        idx = np.arange(k)
        tri[:, idx, idx] = alpha[:, :k]
        tri[:, idx[1:], idx[:-1]] = tri[:, idx[:-1], idx[1:]] = beta[:, :k - 1]
        vals, vecs = np.linalg.eigh(tri)
        value, coef = vals[:, -1], vecs[:, :, -1]
        res = norm * np.abs(coef[:, -1])
        if np.all(res <= tol * np.abs(value)) or k == k_max:
            break
        # an exhausted Krylov space (norm ~ 0) restarts from zero: its Ritz values then only gain zeros, which
        # never top an eigenvalue already found that is >= 0 (true of the loss Hessians here: trace >= 0)
        q = np.where(norm[:, None] > 1e-300, w / np.maximum(norm, 1e-300)[:, None], 0.0)
    vector = np.einsum("mk,mkp->mp", coef, basis[:, :coef.shape[1]])
    return TopEigen(value, vector, res, k)
