"""Exactly rounded reductions (engine/core/exact.py): each entry is math.fsum of its IEEE products, whatever the
shapes, the chunking of large operands or the BLAS kernel."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from engine.core import exact

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False)


def reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The definition, one entry at a time."""
    return np.array([[math.fsum(float(a[i, k]) * float(b[k, j]) for k in range(a.shape[1]))
                      for j in range(b.shape[1])] for i in range(a.shape[0])]).reshape(a.shape[0], b.shape[1])


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5), st.integers(1, 6), st.integers(1, 4), st.data())
def test_matmul_is_the_exactly_rounded_sum_of_products(n, k, m, data):
    a = data.draw(hnp.arrays(np.float64, (n, k), elements=finite))
    b = data.draw(hnp.arrays(np.float64, (k, m), elements=finite))
    got = exact.matmul(a, b)
    assert got.shape == (n, m) and got.dtype == np.float64
    np.testing.assert_array_equal(got, reference(a, b))
    np.testing.assert_array_equal(exact.matmul(a, b[:, 0]), reference(a, b[:, :1])[:, 0])    # matrix @ vector
    np.testing.assert_array_equal(exact.matmul(a[0], b), reference(a[:1], b)[0])              # vector @ matrix
    assert exact.matmul(a[0], b[:, 0]) == reference(a[:1], b[:, :1])[0, 0]                   # vector @ vector
    assert exact.matmul(a[0], b[:, 0]).shape == ()


def test_matmul_cancels_exactly_where_blas_would_round():
    a = np.array([[1e16, 1.0, -1e16]])
    b = np.array([1.0, 1.0, 1.0])
    assert exact.matmul(a, b).tolist() == [1.0]  # a naive left-to-right sum gives 0.0
    assert exact.matmul(a.astype(np.float32).astype(np.float64), b)[0] == math.fsum([1e16, 1.0, -1e16])


def test_matmul_of_large_operands_is_computed_in_row_chunks_with_the_same_result():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(9, 2**12))
    b = rng.normal(size=(2**12, 2**8))  # 2**22 // b.size = 4 rows of a at a time: chunks of 4, 4 and 1
    got = exact.matmul(a, b)
    assert got.shape == (9, b.shape[1])
    cols = [0, 1, 2, b.shape[1] // 2, b.shape[1] - 1]
    np.testing.assert_array_equal(got[:, cols], reference(a, b[:, cols]))
    np.testing.assert_array_equal(got[8], exact.matmul(a[8:], b)[0])
    narrow = rng.normal(size=(9, 4))  # fewer columns than rows: the chunks run over the rows of a, not its columns
    b = rng.normal(size=(4, 2**18))   # 2**22 // b.size = 4 rows at a time
    np.testing.assert_array_equal(exact.matmul(narrow, b)[:, cols[:3]], reference(narrow, b[:, cols[:3]]))


def test_matmul_takes_integer_and_float32_operands_as_float64():
    a = np.array([[1, 2], [3, 4]], dtype=np.int64)
    b = np.array([[0.5, 0.25], [0.125, 1.0]], dtype=np.float32)
    np.testing.assert_array_equal(exact.matmul(a, b), [[0.75, 2.25], [2.0, 4.75]])


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 6)), elements=finite))
def test_row_norms_are_square_roots_of_exactly_rounded_sums_of_squares(x):
    want = np.array([math.sqrt(math.fsum(v * v for v in row)) for row in x.tolist()])
    got = exact.row_norms(x)
    assert got.shape == (x.shape[0],)
    np.testing.assert_array_equal(got, want)
    assert exact.row_norms(x[0]) == want[0] and np.ndim(exact.row_norms(x[0])) == 0


def test_row_norms_known_values():
    np.testing.assert_array_equal(exact.row_norms(np.array([[3.0, 4.0], [0.0, 0.0], [-5.0, 12.0]])), [5.0, 0.0, 13.0])
    x = np.float32(1 + 2**-12)  # its float32 square rounds; squared in float64 it does not
    assert exact.row_norms(np.array([x], dtype=np.float32)) == math.sqrt((1 + 2**-12) ** 2)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5), elements=finite))
def test_mean_is_the_exactly_rounded_sum_over_the_count(x):
    assert exact.mean(x) == math.fsum(x.ravel().tolist()) / x.size


def test_mean_known_values():
    assert exact.mean(np.array([1e16, 1.0, -1e16, 2.0])) == 0.75
    assert exact.mean(np.array([[1, 2], [3, 4]])) == 2.5
    assert exact.mean(np.array([])) == 0.0  # no entries: 0, not a division by zero
    assert isinstance(exact.mean([1.0, 2.0]), float)


def test_matmul_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        exact.matmul(np.ones((2, 3)), np.ones((4, 2)))
