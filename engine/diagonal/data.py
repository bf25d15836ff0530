"""Data of the diagonal-network experiments: the authors' recipe (Gaussian inputs, a sparse nonnegative unit
beta*, noiseless labels) and the train/test losses of many beta at once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from engine.core import exact
from engine.diagonal.kernels import quadratic_forms, residual_losses

if TYPE_CHECKING:
    from engine.diagonal.config import DiagonalConfig


@dataclass
class Data:
    """One data set: train/test inputs and labels, beta*, and the fresh inputs of rank(phi)."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    beta_star: np.ndarray
    x_fresh: np.ndarray
    _test_gram: np.ndarray | None = None

    def test_loss(self, beta: np.ndarray) -> np.ndarray:
        """||X_test beta - y_test||^2 / (2 n_test) along the last axis. The test labels are noiseless
        (y_test = X_test beta*), so with more test points than dimensions the d x d form
        (beta - beta*)^T (X_test^T X_test) (beta - beta*) / (2 n_test) is cheaper and equal."""
        n_test, d = self.x_test.shape
        flat = np.ascontiguousarray(beta.reshape(-1, d))
        if n_test <= d:
            return residual_losses(flat, self.x_test, self.y_test).reshape(beta.shape[:-1])
        if self._test_gram is None:
            self._test_gram = self.x_test.T @ self.x_test / (2 * n_test)
        return quadratic_forms(flat - self.beta_star, self._test_gram).reshape(beta.shape[:-1])

    def train_loss(self, beta: np.ndarray) -> np.ndarray:
        """||X beta - y||^2 / (2 n) along the last axis."""
        flat = np.ascontiguousarray(beta.reshape(-1, beta.shape[-1]))
        return residual_losses(flat, self.x, self.y).reshape(beta.shape[:-1])


def make_data(c: DiagonalConfig) -> Data:
    """The authors' recipe with np.random.RandomState(data_seed): X ~ N(0, I_d) (n rows), X_test (n_test
    rows), beta = randn(d) with all but the first r zeroed, absolute values, unit norm; y = X beta (no noise).
    Then p = 2d fresh inputs for rank(phi). (Their rs.multivariate_normal(0, I_d, n) draws exactly
    rs.standard_normal((n, d)) for an identity covariance: tests check that; standard_normal skips an SVD.)
    The norm and the labels are exactly rounded sums (engine.core.exact), not BLAS: the large steps sit at the edge
    of stability, where the last bit of a label, which differs between BLAS kernels, decides survival."""
    rs = np.random.RandomState(c.data_seed)
    x = rs.standard_normal((c.n, c.d))
    x_test = rs.standard_normal((c.n_test, c.d))
    beta = rs.randn(c.d)
    beta[c.r:] = 0
    beta = np.abs(beta)
    beta /= exact.row_norms(beta)
    x_fresh = rs.standard_normal((2 * c.d, c.d))
    return Data(x, exact.matmul(x, beta), x_test, exact.matmul(x_test, beta), beta, x_fresh)
