"""Reductions whose result does not depend on the CPU or the BLAS kernel (exactly rounded sums).

At the edge of stability one ulp decides whether a run survives, so everything that feeds a trajectory
(labels, norms, data scales) is summed here with `math.fsum` (the exactly rounded sum of its terms) instead
of BLAS, whose summation order and use of FMA differ between kernels (OpenBLAS Haswell vs SkylakeX vs
Sandybridge...). Products are formed elementwise by numpy (one IEEE rounding each, no FMA), so the result
is a pure function of the inputs. Metrics may still use BLAS/LAPACK: they do not feed training.
"""

from __future__ import annotations

import math

import numpy as np


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b (2-D or 1-D operands, float64) with every entry an exactly rounded sum of its products."""
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    vector = b64.ndim == 1
    a2 = np.atleast_2d(a64)
    b2 = b64[:, None] if vector else b64
    out = np.empty((a2.shape[0], b2.shape[1]))
    rows = max(1, 2**22 // max(b2.size, 1))                 # bound the products held at once
    for i in range(0, a2.shape[0], rows):
        products = a2[i:i + rows, None, :] * b2.T[None, :, :]  # one IEEE rounding each
        out[i:i + rows] = np.array([math.fsum(r) for r in products.reshape(-1, b2.shape[0]).tolist()]
                                   ).reshape(-1, b2.shape[1])
    if vector:
        out = out[:, 0]
    return out[0] if a64.ndim == 1 else out


def row_norms(x: np.ndarray) -> np.ndarray:
    """Euclidean norm of each row of x (or of a vector), from an exactly rounded sum of squares."""
    x64 = np.asarray(x, dtype=np.float64)
    squares = np.atleast_2d(x64 * x64)
    out = np.sqrt(np.array([math.fsum(row) for row in squares.tolist()]))
    return out[0] if x64.ndim == 1 else out


def mean(x: np.ndarray) -> float:
    """Exactly rounded sum of all entries, divided by their count."""
    x64 = np.asarray(x, dtype=np.float64).ravel()
    return math.fsum(x64.tolist()) / max(len(x64), 1)
