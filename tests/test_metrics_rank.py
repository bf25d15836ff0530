"""rank(phi) of diagonal nets: the fast path (d x d factor, certain-rank shortcut, dropped tiny columns)
against a brute-force SVD of the full 2d x 2d phi, on hand-built states and on checkpoints of a real run.
Runtime here: ~3 s."""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from engine.core import schedules
from engine.core.metrics import DiagonalRank, diagonal_phi, l0_norm, ntk_rank_bruteforce, rank_from_singular_values
from engine.diagonal import data as diagonal_data
from engine.diagonal import experiment as diagonal
from engine.diagonal import sim as diagonal_sim

D = 60


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """Two shared cores: multi-threaded BLAS on small SVDs is many times slower than one thread."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def fresh():
    return np.random.RandomState(7).standard_normal((2 * D, D))


def test_singular_values_of_phi_are_those_of_r_times_d(fresh):
    rng = np.random.default_rng(0)
    u, v = rng.standard_normal(D), rng.standard_normal(D)
    s_phi = np.linalg.svd(diagonal_phi(fresh, u, v), compute_uv=False)
    r = np.linalg.qr(fresh, mode="r")
    s_fast = np.linalg.svd(r * np.sqrt(u * u + v * v), compute_uv=False)
    np.testing.assert_allclose(s_phi[:D], s_fast, rtol=1e-10)
    assert s_phi[D:].max() < 1e-12 * s_phi[0]  # the other d singular values of phi are zero


def test_hand_built_states(fresh):
    rank = DiagonalRank(fresh, 1e-15)
    u0, v0 = np.full(D, 0.1), np.zeros(D)
    assert rank(u0, v0) == D == ntk_rank_bruteforce(fresh, u0, v0)       # the init of every figure
    assert rank(np.zeros(D), np.zeros(D)) == 0
    u, v = u0.copy(), v0.copy()
    u[[3, 10, 41]] = 0.0                                                 # three dead coordinates
    assert rank(u, v) == D - 3 == ntk_rank_bruteforce(fresh, u, v)
    u[20:30] = 1e-40                                                     # far below the threshold
    assert rank(u, v) == D - 13 == ntk_rank_bruteforce(fresh, u, v)
    u[20:30] = 1e-12                                                     # far above it
    assert rank(u, v) == D - 3 == ntk_rank_bruteforce(fresh, u, v)
    assert rank.svd_calls == 0                                           # all of these were certain
    assert rank(np.full(D, np.nan), v0) == -1


def test_graded_states_across_the_threshold_match_brute_force(fresh):
    """Coordinates spread over 1e0 .. 1e-40, many near the 1e-15 threshold: the SVD path runs and agrees
    with the full SVD (within 1 where a singular value sits at float64 noise level, s ~ 1e-15 s_max)."""
    rng = np.random.default_rng(1)
    rank = DiagonalRank(fresh, 1e-15)
    diffs = []
    for _ in range(40):
        scale = 10.0 ** rng.uniform(-40, 0, D)
        u, v = scale * rng.standard_normal(D), scale * rng.standard_normal(D)
        diffs.append(int(rank(u, v)) - ntk_rank_bruteforce(fresh, u, v))
    assert rank.svd_calls > 0
    assert max(abs(d) for d in diffs) <= 1 and sum(d != 0 for d in diffs) <= 4


def test_batched_call_equals_one_by_one(fresh):
    rng = np.random.default_rng(2)
    scale = 10.0 ** rng.uniform(-30, 0, (5, 3, D))
    u, v = scale * rng.standard_normal((5, 3, D)), scale * rng.standard_normal((5, 3, D))
    rank = DiagonalRank(fresh)
    batched = rank(u, v)
    assert batched.shape == (5, 3)
    assert all(batched[i, j] == rank(u[i, j], v[i, j]) for i in range(5) for j in range(3))


def test_real_run_checkpoints_match_brute_force():
    """Checkpoints of the fig2 large-step run (authors' data, seed 1) over its first 30k steps, where
    rank(phi) falls from 200 to ~110 while coordinates cross the threshold."""
    c = diagonal.PRESETS["fig2"].config
    c = c.replace(steps=30_001, runs=c.runs[2:3])
    data = diagonal_data.make_data(c)
    rows, lr, _ = diagonal_sim.plan(c)
    sim = diagonal_sim.Simulator(data, rows, lr, c.init_scale)
    steps = schedules.checkpoint_steps(c.steps, 0, 40)
    u, v = sim.advance(steps)
    rank = DiagonalRank(data.x_fresh, c.rank_tau)
    fast = rank(u[:, 0], v[:, 0])
    brute = np.array([ntk_rank_bruteforce(data.x_fresh, u[k, 0], v[k, 0]) for k in range(len(steps))])
    assert fast[0] == 200 and fast[-1] < 130                      # the run did sparsify its features
    assert rank.svd_calls >= 10                                   # and the SVD path was exercised
    assert np.abs(fast - brute).max() <= 1
    assert (fast == brute).mean() >= 0.9


def test_l0_and_rank_from_singular_values():
    beta = np.array([[1.0, 1e-49, 1e-51, 0.0, -2.0], [0.0] * 5])
    assert l0_norm(beta).tolist() == [3, 0]
    s = np.array([[10.0, 1e-13, 1e-16, 0.0], [0.0, 0.0, 0.0, 0.0]])
    assert rank_from_singular_values(s, 1e-15).tolist() == [2, 0]
