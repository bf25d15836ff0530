"""Compiled training loop of diagonal linear networks: many runs advance together in one call.

State is a (rows, d) pair U, V (beta = U * V); each row is one trajectory (a run of the figure for
one sampling seed) with its own algorithm, step-size schedule, sample stream and noise stream.
Rows are independent and each is summed sequentially (fastmath off), so a row's result does not
depend on which other rows share the call or on how the steps are split into calls.
"""

from __future__ import annotations

import numpy as np
from numba import njit

SGD, GD, SDE = 0, 1, 2
BLOWUP = 1e6  # a residual this large means the run has left every basin: stop it (it would overflow)


@njit(cache=True, nogil=True, fastmath=False)
def _residual(x, u, v, yi):  # pragma: no cover - compiled
    """<x, u * v> - y_i, summed in index order."""
    e = 0.0
    for j in range(u.shape[0]):
        e += x[j] * (u[j] * v[j])
    return e - yi


@njit(cache=True, nogil=True, fastmath=False)
def _update(u, v, c, g):  # pragma: no cover - compiled
    """u -= c g * v and v -= c g * u, both with the old u."""
    for j in range(u.shape[0]):
        uj = u[j]
        cg = c * g[j]
        u[j] = uj - cg * v[j]
        v[j] = v[j] - cg * uj


@njit(cache=True, nogil=True, fastmath=False)
def _sgd1(u, v, X, y, lr, idx, t_from, t_to, t0):  # pragma: no cover - compiled
    """Batch-1 SGD from step t_from to t_to (sample idx[t - t0]); returns the step it blew up at, or -1."""
    for t in range(t_from, t_to):
        i = idx[t - t0]
        e = _residual(X[i], u, v, y[i])
        if not abs(e) <= BLOWUP:
            return t
        _update(u, v, lr[t] * e, X[i])
    return -1


@njit(cache=True, nogil=True, fastmath=False)
def _sgd_batch(u, v, X, y, lr, idx, t_from, t_to, t0, b_size, g):  # pragma: no cover - compiled
    """Mini-batch SGD (mean gradient over b_size samples idx[(t - t0) * b_size + b]); as _sgd1."""
    d = u.shape[0]
    for t in range(t_from, t_to):
        g[:] = 0.0
        base = (t - t0) * b_size
        for b in range(b_size):
            i = idx[base + b]
            e = _residual(X[i], u, v, y[i])
            if not abs(e) <= BLOWUP:
                return t
            for j in range(d):
                g[j] += e * X[i, j]
        _update(u, v, lr[t] / b_size, g)
    return -1


@njit(cache=True, nogil=True, fastmath=False)
def _full_batch(u, v, X, y, lr, noise, sqrt_delta, t_from, t_to, t0, res, g):  # pragma: no cover - compiled
    """GD (sqrt_delta = 0) or Euler-Maruyama of Eq. 8 with dt = lr (noise[(t - t0) * n + i] standard
    normal): u -= lr * v * X^T (r / n - sqrt_delta z), v likewise with the old u. As _sgd1."""
    n, d = X.shape
    for t in range(t_from, t_to):
        for i in range(n):
            e = _residual(X[i], u, v, y[i])
            if not abs(e) <= BLOWUP:
                return t
            res[i] = e / n
        if sqrt_delta != 0.0:
            base = (t - t0) * n
            for i in range(n):
                res[i] -= sqrt_delta * noise[base + i]
        g[:] = 0.0
        for i in range(n):
            ri = res[i]
            for j in range(d):
                g[j] += X[i, j] * ri
        _update(u, v, lr[t], g)
    return -1


@njit(cache=True, nogil=True, fastmath=False)
def _add_grad(u, v, x, yi, gu, gv, w):  # pragma: no cover - compiled
    """gu += w e x * v, gv += w e x * u for the sample loss (<x, u * v> - y_i)^2 / 2, e its residual; returns e."""
    e = _residual(x, u, v, yi)
    for j in range(u.shape[0]):
        c = w * e * x[j]
        gu[j] += c * v[j]
        gv[j] += c * u[j]
    return e


@njit(cache=True, nogil=True, fastmath=False)
def _norm2(gu, gv):  # pragma: no cover - compiled
    total = 0.0
    for j in range(gu.shape[0]):
        total += gu[j] * gu[j] + gv[j] * gv[j]
    return np.sqrt(total)


@njit(cache=True, nogil=True, fastmath=False)
def _variant(u, v, X, y, lr, idx, full, b_size, rho, one_sam, normalized, wd, t_from, t_to, t0,
             gu, gv, au, av, pu, pv):  # pragma: no cover - compiled
    """SGD (mini-batch idx[(t - t0) * b_size + b]) or GD (full = True: all n samples) with the options of the
    runs table, one step from w = (u, v) on the batch loss L_B = mean_i (<x_i, u * v> - y_i)^2 / 2:
      n-SAM (rho > 0, one_sam False): g = grad L_B(w + rho a / ||a||), a = grad L_B(w);
      1-SAM (rho > 0, one_sam True):  g = mean_i grad l_i(w + rho a_i / ||a_i||), a_i = grad l_i(w);
      weight decay wd: g += wd w;  normalized: g /= ||g||;  then w -= lr[t] g.
    A zero ascent direction perturbs nothing. Returns the step it blew up at, or -1."""
    n, d = X.shape
    count = n if full else b_size
    for t in range(t_from, t_to):
        gu[:] = 0.0
        gv[:] = 0.0
        base = (t - t0) * b_size
        if rho > 0.0 and not one_sam:
            au[:] = 0.0
            av[:] = 0.0
            for b in range(count):
                i = b if full else idx[base + b]
                _add_grad(u, v, X[i], y[i], au, av, 1.0 / count)
            size = _norm2(au, av)
            scale = rho / size if size > 0.0 else 0.0
            for j in range(d):
                pu[j] = u[j] + scale * au[j]
                pv[j] = v[j] + scale * av[j]
        else:
            pu[:] = u
            pv[:] = v
        for b in range(count):
            i = b if full else idx[base + b]
            if rho > 0.0 and one_sam:
                au[:] = 0.0
                av[:] = 0.0
                e = _add_grad(u, v, X[i], y[i], au, av, 1.0)
                if not abs(e) <= BLOWUP:
                    return t
                size = _norm2(au, av)
                scale = rho / size if size > 0.0 else 0.0
                for j in range(d):
                    pu[j] = u[j] + scale * au[j]
                    pv[j] = v[j] + scale * av[j]
            e = _add_grad(pu, pv, X[i], y[i], gu, gv, 1.0 / count)
            if not abs(e) <= BLOWUP:
                return t
        if wd != 0.0:
            for j in range(d):
                gu[j] += wd * u[j]
                gv[j] += wd * v[j]
        if normalized:
            size = _norm2(gu, gv)
            if size > 0.0:
                for j in range(d):
                    gu[j] /= size
                    gv[j] /= size
        step = lr[t]
        for j in range(d):
            u[j] -= step * gu[j]
            v[j] -= step * gv[j]
    return -1


@njit(cache=True, nogil=True, fastmath=False)
def advance(U, V, X, y, algo, batch, lr, sched, stream, idx, noise_of, noise, sqrt_delta, t0, stops,
            out_u, out_v, alive, died, variant, rho, one_sam, normalized, wd):  # pragma: no cover - compiled
    """Advance every live row from step t0, copying the state into out_u[k], out_v[k] when it reaches
    stops[k] (ascending, >= t0; the state *before* step stops[k]).

    algo[r]: SGD (mini-batch of batch[r] samples idx[stream[r], (t - t0) * batch[r] + b]), GD (full
    batch) or SDE (Euler-Maruyama of Eq. 8, one step = lr time, standard normals
    noise[noise_of[r], (t - t0) * n + j], noise scale sqrt_delta[r]). Step size lr[sched[r], t].
    variant[r]: SGD or GD with SAM (radius rho[r], per sample when one_sam[r]), weight decay wd[r] or a
    normalized step (`_variant`); the plain rows keep their own loops, untouched by these options.
    A row whose residual is non-finite or above BLOWUP at step t is not updated any further:
    alive[r] = False, died[r] = t (its state stays the last finite one).
    """
    rows, d = U.shape
    n = X.shape[0]
    res = np.empty(n)
    g = np.empty(d)
    gv, au, av, pu, pv = np.empty(d), np.empty(d), np.empty(d), np.empty(d), np.empty(d)
    for r in range(rows):
        u = U[r]
        v = V[r]
        t = t0
        for k in range(stops.shape[0]):
            stop = stops[k]
            if alive[r] and t < stop:
                if variant[r]:
                    bad = _variant(u, v, X, y, lr[sched[r]], idx[stream[r]], algo[r] == GD, batch[r], rho[r],
                                   one_sam[r], normalized[r], wd[r], t, stop, t0, g, gv, au, av, pu, pv)
                elif algo[r] == SGD and batch[r] == 1:
                    bad = _sgd1(u, v, X, y, lr[sched[r]], idx[stream[r]], t, stop, t0)
                elif algo[r] == SGD:
                    bad = _sgd_batch(u, v, X, y, lr[sched[r]], idx[stream[r]], t, stop, t0, batch[r], g)
                else:
                    scale = sqrt_delta[r] if algo[r] == SDE else 0.0
                    bad = _full_batch(u, v, X, y, lr[sched[r]], noise[noise_of[r]], scale, t, stop, t0, res, g)
                if bad >= 0:
                    alive[r] = False
                    died[r] = bad
            t = stop
            out_u[k, r, :] = u
            out_v[k, r, :] = v
    return 0


@njit(cache=True, nogil=True, fastmath=False)
def residual_losses(beta, X, y):  # pragma: no cover - compiled
    """||X beta_m - y||^2 / (2 n) for each row beta_m of beta (m, d), summed sequentially so that a run's
    losses do not depend on how many other states are evaluated with it."""
    m, d = beta.shape
    n = X.shape[0]
    out = np.empty(m)
    for k in range(m):
        b = beta[k]
        total = 0.0
        for i in range(n):
            x = X[i]
            e = 0.0
            for j in range(d):
                e += x[j] * b[j]
            e -= y[i]
            total += e * e
        out[k] = total / (2 * n)
    return out


@njit(cache=True, nogil=True, fastmath=False)
def quadratic_forms(e, G):  # pragma: no cover - compiled
    """e_m^T G e_m for each row e_m of e (m, d), summed sequentially."""
    m, d = e.shape
    out = np.empty(m)
    for k in range(m):
        a = e[k]
        total = 0.0
        for i in range(d):
            s = 0.0
            for j in range(d):
                s += G[i, j] * a[j]
            total += a[i] * s
        out[k] = total
    return out


def warm_up() -> None:
    """Load (or, on a fresh machine, compile: ~4 s) every kernel with the argument types training uses, so
    a page can call this in the background before the first Run."""
    d, n = 2, 3
    X, y = np.ones((n, d)), np.ones(n)
    rows = 3
    ints = np.zeros(rows, dtype=np.int64)
    advance(np.zeros((rows, d)), np.zeros((rows, d)), X, y, np.array([SGD, GD, SDE], dtype=np.int64),
            np.array([1, 2, 1], dtype=np.int64), np.zeros((1, 2)), ints, ints, np.zeros((1, 4), dtype=np.int64),
            ints, np.zeros((1, 2 * n)), np.zeros(rows), 0, np.array([2], dtype=np.int64),
            np.empty((1, rows, d)), np.empty((1, rows, d)), np.ones(rows, dtype=np.bool_), np.full(rows, -1),
            np.zeros(rows, dtype=np.bool_), np.zeros(rows), np.zeros(rows, dtype=np.bool_),
            np.zeros(rows, dtype=np.bool_), np.zeros(rows))
    residual_losses(np.zeros((1, d)), X, y)
    quadratic_forms(np.zeros((1, d)), np.eye(d))
