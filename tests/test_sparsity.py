"""feature_sparsity and kinks against direct transcriptions of their definitions (docs/experiments.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.core.sparsity import feature_sparsity, kinks


def _pearson(u: np.ndarray, v: np.ndarray) -> float:
    u, v = u - u.mean(), v - v.mean()
    nu, nv = np.sqrt(u @ u), np.sqrt(v @ v)
    return 0.0 if nu == 0 or nv == 0 else float(u @ v / (nu * nv))


def reference_sparsity(acts: np.ndarray, c: float, normalize_rows: bool = True) -> float:
    """The definition, one unit at a time."""
    phi = np.array(acts, dtype=float)
    n, m = phi.shape
    if normalize_rows:
        for i in range(n):
            norm = np.sqrt(phi[i] @ phi[i])
            if norm > 0:
                phi[i] /= norm
    kept: list[int] = []
    for j in range(m):
        if not np.any(phi[:, j] != 0):
            continue
        if any(abs(_pearson(phi[:, k], phi[:, j])) > c for k in kept):
            continue
        kept.append(j)
    return sum(int(np.count_nonzero(phi[:, j])) for j in kept) / (n * m)


def _relu_acts(rng: np.random.Generator, n: int, m: int) -> np.ndarray:
    acts = np.maximum(rng.normal(size=(n, m)), 0)
    acts[:, rng.random(m) < 0.2] = 0                      # dead units
    acts[rng.random(n) < 0.1] = 0                         # all-zero rows
    for j in rng.choice(m, m // 4, replace=False):         # duplicates, rescaled copies, negated copies
        src = rng.integers(m)
        acts[:, j] = rng.choice([1.0, 2.5, -1.0]) * acts[:, src]
    near = rng.choice(m, 3, replace=False)                 # a near-duplicate just past the threshold
    acts[:, near[1]] = acts[:, near[0]] + 1e-4 * rng.normal(size=n)
    acts[:, near[2]] = 3.0                                 # a constant column: correlation undefined
    return acts


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("c", [0.5, 0.99, 0.999])
def test_matches_the_definition_on_random_matrices(seed: int, c: float) -> None:
    acts = _relu_acts(np.random.default_rng(seed), 23, 40)
    for normalize in (True, False):
        want = reference_sparsity(acts, c, normalize)
        assert feature_sparsity(acts, c, normalize_rows=normalize) == pytest.approx(want, abs=1e-12)
        got32 = feature_sparsity(torch.tensor(acts, dtype=torch.float32), c, normalize_rows=normalize)
        assert got32 == pytest.approx(want, abs=1e-12)


def test_hand_built_cases() -> None:
    x = np.array([[1.0, 2.0, 0.0, 0.0], [2.0, 4.0, 0.0, 1.0], [0.0, 0.0, 0.0, 3.0]])
    # Columns 0 and 1 are proportional (corr 1): keep column 0 only; column 2 is dead; m = 4 in the denominator.
    assert feature_sparsity(x, 0.99, normalize_rows=False) == pytest.approx((2 + 2) / 12)
    assert feature_sparsity(np.zeros((5, 3)), 0.99) == 0.0
    assert feature_sparsity(np.ones((4, 3)), 0.99) == pytest.approx(1.0)   # constant columns never merge
    # A chain a~b, b~c with a !~ c: greedy keeps a, drops b, and keeps c (b is not kept, so it drops nothing).
    # (The authors' notebook instead drops every unit correlated with any remaining one, keeping only c: 1/3.)
    u, v = np.random.default_rng(0).normal(size=(2, 200))
    chain = np.stack([u, u + v, v], 1) + 10.0
    corr = np.corrcoef(chain.T)
    assert min(corr[0, 1], corr[1, 2]) > 0.6 > abs(corr[0, 2])
    assert feature_sparsity(chain, 0.6, normalize_rows=False) == pytest.approx(2 / 3)


def test_max_units_counts_the_chosen_units() -> None:
    acts = _relu_acts(np.random.default_rng(7), 30, 200)
    g = torch.Generator().manual_seed(3)
    pick = torch.randperm(200, generator=g)[:50].sort().values.numpy()
    norms = np.linalg.norm(acts, axis=1, keepdims=True)
    normalized = np.divide(acts, norms, out=np.zeros_like(acts), where=norms > 0)
    want = reference_sparsity(normalized[:, pick], 0.95, normalize_rows=False)
    got = feature_sparsity(acts, 0.95, max_units=50, generator=torch.Generator().manual_seed(3))
    assert got == pytest.approx(want, abs=1e-12)


def reference_kinks(w, b, a, lo, hi, tol, a_tol):
    points = sorted(-bj / wj for wj, bj, aj in zip(w, b, a, strict=True)
                    if wj != 0 and abs(aj) > a_tol and lo <= -bj / wj <= hi)
    groups: list[list[float]] = []
    for p in points:
        if groups and p - groups[-1][-1] < tol:
            groups[-1].append(p)
        else:
            groups.append([p])
    return [sum(g) / len(g) for g in groups]


def test_kinks_on_a_hand_built_net() -> None:
    # Breakpoints: 0.5, 0.5 (merged), -1.0, 2.0 (outside [-1.5, 1.5]), 0.2 with a = 0 (does not count),
    # w = 0 (no breakpoint), and 0.5004 (merged with 0.5 at tol 1e-3).
    w = np.array([2.0, -1.0, 1.0, 1.0, 1.0, 0.0, 1.0])
    b = np.array([-1.0, 0.5, 1.0, -2.0, -0.2, 1.0, -0.5004])
    a = np.array([1.0, -0.5, 2.0, 1.0, 0.0, 1.0, 0.3])
    got = kinks(w, b, a, -1.5, 1.5, tol=1e-3)
    np.testing.assert_allclose(got, [-1.0, (0.5 + 0.5 + 0.5004) / 3])
    assert len(kinks(torch.tensor(w), torch.tensor(b), torch.tensor(a), -1.5, 1.5, tol=1e-6)) == 3


@pytest.mark.parametrize("seed", range(4))
def test_kinks_match_the_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    w = rng.choice([-2.5, 2.5, 0.0], 100)
    b = np.round(rng.normal(size=100) * 2.5, 2)          # rounding makes ties
    a = rng.normal(size=100) * (rng.random(100) < 0.7)
    got = kinks(w, b, a, -1.3, 1.4, tol=5e-3, a_tol=1e-3)
    np.testing.assert_allclose(got, reference_kinks(w, b, a, -1.3, 1.4, 5e-3, 1e-3))
