"""Small ReLU nets of the paper's Sec. 3.2, batched over runs, with their NTK feature matrices.

Every net is a fully connected ReLU net whose parameters live in one flat vector per run (`Layout`
says where each layer's weight matrix and optional bias sit, in PyTorch's nn.Linear order). The 1D
regression net h(x) = sum_j a_j relu(w_j x + b_j) is the layout (1 -> m with bias, m -> 1 without).

- `forward` / `deltas` work on numpy arrays and torch tensors alike, batched over any leading dims;
  the per-sample gradients (one row of the NTK feature matrix phi per input) and the NTK Gram
  matrix phi phi^T follow from them in closed form, for all inputs at once.
- `sgd` advances every run of a figure by batch SGD steps in one compiled (numba) loop: a step of a
  300-parameter net costs about a microsecond instead of the ~100 us a torch step pays in overhead.
- `ntk_rank`: number of singular values of phi with s / s_max > tol, from the eigenvalues of the
  float64 Gram matrix (s^2 = eigenvalues), batched over checkpoints; `gram_1d` shrinks the 1D net's
  Gram matrix to two rows per stretch of inputs with one activation pattern (same spectrum).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numba
import numpy as np

DIVERGED = 1e8  # a residual this large (or non-finite) ends a run as diverged


# ----------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class Layout:
    """Widths dims[0] -> dims[1] -> ... -> 1 of an MLP and which layers have a bias."""

    dims: tuple[int, ...]
    biases: tuple[bool, ...]

    def __post_init__(self) -> None:
        assert len(self.biases) == len(self.dims) - 1 and self.dims[-1] == 1, (self.dims, self.biases)

    @property
    def depth(self) -> int:
        return len(self.dims) - 1

    @cached_property
    def offsets(self) -> tuple[np.ndarray, np.ndarray]:
        """Start of each layer's weight (out x in, row-major) and bias (-1 when none) in the flat vector."""
        w_off, b_off, at = [], [], 0
        for k in range(self.depth):
            w_off.append(at)
            at += self.dims[k + 1] * self.dims[k]
            b_off.append(at if self.biases[k] else -1)
            at += self.dims[k + 1] if self.biases[k] else 0
        return np.array(w_off, dtype=np.int64), np.array(b_off, dtype=np.int64)

    @property
    def size(self) -> int:
        """Number of parameters p."""
        return sum(self.dims[k + 1] * (self.dims[k] + self.biases[k]) for k in range(self.depth))

    def layers(self, params) -> list[tuple]:
        """[(W (..., out, in), b (..., out) or None)] as views of flat params (..., p)."""
        w_off, b_off = self.offsets
        out = []
        for k in range(self.depth):
            i, o = self.dims[k], self.dims[k + 1]
            w = params[..., w_off[k]:w_off[k] + o * i].reshape(*params.shape[:-1], o, i)
            b = params[..., b_off[k]:b_off[k] + o] if self.biases[k] else None
            out.append((w, b))
        return out

    def flatten(self, layers: list[tuple]) -> np.ndarray:
        """Inverse of `layers` for numpy arrays."""
        parts = []
        for (w, b), has_bias in zip(layers, self.biases, strict=True):
            parts.append(w.reshape(*w.shape[:-2], -1))
            if has_bias:
                parts.append(b)
        return np.concatenate(parts, axis=-1)


def layout_1d(width: int) -> Layout:
    """h(x) = sum_j a_j relu(w_j x + b_j): flat params are [w (m), b (m), a (m)]."""
    return Layout((1, width, 1), (True, False))


def layout_mlp(d: int, widths: tuple[int, ...], biases: bool) -> Layout:
    """d -> widths... -> 1, every layer with or without a bias."""
    dims = (d, *widths, 1)
    return Layout(dims, (biases,) * (len(dims) - 1))


# ----------------------------------------------------------------------------- forward / backward
def _cat(parts: list, axis: int):
    if type(parts[0]).__module__.startswith("torch"):
        import torch

        return torch.cat(parts, dim=axis)
    return np.concatenate(parts, axis=axis)


def _relu(z):
    return np.maximum(z, 0) if isinstance(z, np.ndarray) else z.clamp_min(0)


def forward(layout: Layout, params, x) -> tuple[list, list]:
    """Pre-activations Z_1..Z_L and layer inputs A_0..A_{L-1} (A_k = relu(Z_k), A_0 = x) for inputs
    x (..., N, d) and params (..., p) with matching leading dims; the output is Z_L[..., 0]."""
    acts, pres = [x], []
    for k, (w, b) in enumerate(layout.layers(params)):
        z = acts[-1] @ w.swapaxes(-1, -2)
        if b is not None:
            z = z + b[..., None, :]
        pres.append(z)
        if k < layout.depth - 1:
            acts.append(_relu(z))
    return pres, acts


def deltas(layout: Layout, params, pres: list) -> list:
    """d output / d Z_k for k = 1..L, per input (same shapes as `pres`)."""
    layers = layout.layers(params)
    ds = [pres[-1] * 0 + 1]
    for k in range(layout.depth - 1, 0, -1):
        ds.insert(0, (ds[0] @ layers[k][0]) * (pres[k - 1] > 0))
    return ds


def predict(layout: Layout, params, x):
    """Outputs (..., N) for inputs x (N, d) or (..., N, d)."""
    return forward(layout, params, x)[0][-1][..., 0]


def hidden(layout: Layout, params, x) -> list:
    """Post-ReLU activations of each hidden layer, (..., N, width_k)."""
    return forward(layout, params, x)[1][1:]


def ntk_features(layout: Layout, params, x):
    """phi (..., N, p): row i is the gradient of the output at x_i w.r.t. all parameters (layout order)."""
    pres, acts = forward(layout, params, x)
    parts = []
    for k, d in enumerate(deltas(layout, params, pres)):
        parts.append((d[..., :, None] * acts[k][..., None, :]).reshape(*d.shape[:-1], -1))
        if layout.biases[k]:
            parts.append(d)
    return _cat(parts, -1)


def ntk_gram(layout: Layout, params, x):
    """phi phi^T (..., N, N) without forming phi: sum over layers of (D D^T) * (A A^T + bias)."""
    pres, acts = forward(layout, params, x)
    gram = 0
    for k, d in enumerate(deltas(layout, params, pres)):
        inner = acts[k] @ acts[k].swapaxes(-1, -2)
        gram = gram + (d @ d.swapaxes(-1, -2)) * (inner + 1 if layout.biases[k] else inner)
    return gram


def _sqrt_psd2(m: np.ndarray) -> np.ndarray:
    """Square roots of symmetric PSD 2 x 2 matrices (..., 2, 2) in closed form."""
    s = np.sqrt(np.maximum(m[..., 0, 0] * m[..., 1, 1] - m[..., 0, 1] ** 2, 0))
    t = np.sqrt(np.maximum(m[..., 0, 0] + m[..., 1, 1] + 2 * s, 1e-300))
    return (m + s[..., None, None] * np.eye(2)) / t[..., None, None]


def gram_1d(params: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A (2K x 2K) matrix with the nonzero spectrum of phi^T phi for the 1D net (params (3m,), inputs x (N,)).

    Inputs between two consecutive breakpoints share an activation pattern g, so their rows of phi are
    [x, 1] R_k; the K stretches give phi^T phi = sum_k R_k^T U_k R_k, U_k = sum [x, 1]^T [x, 1].
    """
    w, b, a = np.split(params.astype(np.float64), 3)
    x = np.sort(np.asarray(x, dtype=np.float64))
    g = (np.outer(x, w) + b) > 0                              # (N, m) activation patterns
    starts = np.flatnonzero(np.concatenate([[True], (g[1:] != g[:-1]).any(1)]))
    gk = g[starts].astype(np.float64)                         # (K, m)
    u = np.stack([x * x, x, np.ones_like(x)], 1)
    sums = np.add.reduceat(u, starts, axis=0)                 # (K, 3): sum x^2, sum x, count
    uk = np.stack([sums[:, [0, 1]], sums[:, [1, 2]]], 1)      # (K, 2, 2)
    root = _sqrt_psd2(uk)
    # R_k R_l^T = sum_j g_kj g_lj C_j C_j^T, C_j = [[a_j, 0, w_j], [0, a_j, b_j]] (columns: w, b, a).
    c11, c12, c22 = a * a + w * w, w * b, a * a + b * b
    inner = np.empty((len(starts), 2, len(starts), 2))
    for (p, q), c in (((0, 0), c11), ((0, 1), c12), ((1, 0), c12), ((1, 1), c22)):
        inner[:, p, :, q] = (gk * c) @ gk.T
    out = np.einsum("kpr,kplq,lqs->krls", root, inner, root)
    return out.reshape(2 * len(starts), 2 * len(starts))


def ntk_ranks(layout: Layout, params: np.ndarray, x: np.ndarray, tol: float = 1e-4, chunk: int = 16) -> np.ndarray:
    """Rank of phi on inputs x for each param set (C, p), a few Gram matrices at a time (they are N x N)."""
    return np.concatenate([ntk_rank(ntk_gram(layout, params[i:i + chunk], x), tol)
                           for i in range(0, len(params), chunk)])


def _stack_padded(mats: list[np.ndarray]) -> np.ndarray:
    size = max(m.shape[-1] for m in mats)
    out = np.zeros((len(mats), size, size))
    for i, m in enumerate(mats):
        out[i, :m.shape[0], :m.shape[1]] = m
    return out


def ntk_rank(grams, tol: float = 1e-4) -> np.ndarray:
    """Rank of phi (s_i / s_max > tol) from Gram matrices phi phi^T or phi^T phi: a (C, N, N) stack or
    a list of square matrices of any sizes (zero-padded: zero rows add no singular value)."""
    stack = _stack_padded(grams) if isinstance(grams, list) else np.asarray(grams, dtype=np.float64)
    eig = np.linalg.eigvalsh(stack)
    top = eig[..., -1:]
    return ((eig > tol**2 * top) & (top > 0)).sum(-1)


# ----------------------------------------------------------------------------- SGD
@numba.njit(cache=True, nogil=True)  # releases the GIL: the page can redraw while it trains
def _sgd(params, w_off, b_off, dims, x, y, idx, lrs, t0, t1, alive, diverged_at, scale):  # pragma: no cover
    # idx (R, steps, B) is padded with -1 past a run's batch size; scale[r] = 2 / batch size of run r.
    runs, depth = params.shape[0], len(dims) - 1
    width = max(dims)
    zero = params[0, 0] - params[0, 0]                     # arithmetic in the params' dtype
    pre = np.zeros((depth + 1, width), params.dtype)
    act = np.zeros((depth + 1, width), params.dtype)
    delta = np.zeros((depth + 1, width), params.dtype)
    grad = np.zeros(params.shape[1], params.dtype)
    batch = idx.shape[2]
    for r in range(runs):
        if not alive[r]:
            continue
        p = params[r]
        for t in range(t0, t1):
            grad[:] = zero
            for s in range(batch):
                i = idx[r, t, s]
                if i < 0:
                    break
                for c in range(dims[0]):
                    act[0, c] = x[i, c]
                for k in range(depth):
                    n_in, n_out = dims[k], dims[k + 1]
                    for o in range(n_out):
                        z = p[b_off[k] + o] if b_off[k] >= 0 else zero
                        base = w_off[k] + o * n_in
                        for c in range(n_in):
                            z += p[base + c] * act[k, c]
                        pre[k + 1, o] = z
                        act[k + 1, o] = z if (z > 0 or k == depth - 1) else zero
                res = pre[depth, 0] - y[i]
                if not abs(res) < DIVERGED:
                    alive[r] = False
                    diverged_at[r] = t
                    break
                delta[depth, 0] = scale[r] * res                # d loss / d output = 2 res / batch
                for k in range(depth - 1, -1, -1):
                    n_in, n_out = dims[k], dims[k + 1]
                    for c in range(n_in):
                        delta[k, c] = zero
                    for o in range(n_out):
                        dz = delta[k + 1, o]
                        if dz == 0:
                            continue
                        base = w_off[k] + o * n_in
                        for c in range(n_in):
                            grad[base + c] += dz * act[k, c]
                            if k > 0:
                                delta[k, c] += dz * p[base + c]
                        if b_off[k] >= 0:
                            grad[b_off[k] + o] += dz
                    if k > 0:
                        for c in range(n_in):
                            if pre[k, c] <= 0:
                                delta[k, c] = zero
            if not alive[r]:
                break
            lr = lrs[r, t]
            for q in range(p.shape[0]):
                p[q] -= lr * grad[q]


def sgd(layout: Layout, params: np.ndarray, x: np.ndarray, y: np.ndarray, idx: np.ndarray, lrs: np.ndarray,
        t0: int, t1: int, alive: np.ndarray, diverged_at: np.ndarray) -> None:
    """Steps t0 .. t1-1 of SGD on the MSE for every run, in place: params (R, p), inputs x (n, d), labels
    y (n,), sample indices idx (R, steps, batch) padded with -1 past each run's batch size, step sizes
    lrs (R, steps). A run whose residual blows up stops: alive[r] = False and diverged_at[r] = the step."""
    dt = params.dtype
    w_off, b_off = layout.offsets
    _sgd(params, w_off, b_off, np.array(layout.dims, dtype=np.int64), x.astype(dt), y.astype(dt), idx,
         lrs.astype(dt), t0, t1, alive, diverged_at, (2.0 / (idx[:, 0] >= 0).sum(1)).astype(dt))


def sgd_step(layout: Layout, params, xb, yb, lr, weights=None):
    """One batch SGD step for every run at once on numpy arrays or torch tensors (any device): params
    (R, p), batch xb (R, B, d), yb (R, B), lr (R,), optional per-sample weights (R, B) of the squared
    residuals (default 1 / B; 0 masks a padded sample). Returns the new params and the residuals (R, B)."""
    pres, acts = forward(layout, params, xb)
    res = pres[-1][..., 0] - yb
    ds = deltas(layout, params, pres)
    coef = 2 * (res / yb.shape[-1] if weights is None else res * weights)[..., None]
    parts = []
    for k, d in enumerate(ds):
        d = d * coef
        parts.append((d.swapaxes(-1, -2) @ acts[k]).reshape(*params.shape[:-1], -1))
        if layout.biases[k]:
            parts.append(d.sum(-2))
    return params - lr[..., None] * _cat(parts, -1), res


def _train_torch(layout: Layout, params: np.ndarray, x: np.ndarray, y: np.ndarray, idx: np.ndarray,
                 lrs: np.ndarray, checkpoints: np.ndarray, device: str):
    """`train` on a torch device: one batched step for all runs per SGD step, no host sync between checkpoints."""
    import torch

    dt = torch.float64 if params.dtype == np.float64 else torch.float32
    p = torch.as_tensor(params, dtype=dt, device=device)
    xt, yt = torch.as_tensor(x, dtype=dt, device=device), torch.as_tensor(y, dtype=dt, device=device)
    it, lt = torch.as_tensor(idx, device=device), torch.as_tensor(lrs, dtype=dt, device=device)
    alive = torch.ones(len(p), dtype=torch.bool, device=device)
    died = torch.full((len(p),), -1, dtype=torch.int64, device=device)
    weights = (it >= 0).to(dt) / (it[:, :1] >= 0).sum(-1, keepdim=True)   # 1 / batch size, 0 on padding
    it = it.clamp_min(0)
    t = 0
    for stop in checkpoints:
        for s in range(t, int(stop)):
            new, res = sgd_step(layout, p, xt[it[:, s]], yt[it[:, s]], lt[:, s], weights[:, s])
            ok = alive & ((res.abs() < DIVERGED) | (weights[:, s] == 0)).all(-1)
            died = torch.where(alive & ~ok, s, died)
            alive = ok
            p = torch.where(alive[:, None], new, p)
        t = int(stop)
        yield t, p.double().cpu().numpy(), alive.cpu().numpy(), died.cpu().numpy()


def train(layout: Layout, params: np.ndarray, x: np.ndarray, y: np.ndarray, idx: np.ndarray, lrs: np.ndarray,
          checkpoints: np.ndarray, device: str = "cpu"):
    """Run SGD for all runs together and yield (step, params (R, p) float64 copy, alive (R,), diverged_at (R,))
    at each checkpoint step (the state after that many steps). 'cpu' uses the compiled loop, any other
    device the batched torch step. A diverged run keeps its last finite params."""
    if device != "cpu":
        yield from _train_torch(layout, params, x, y, idx, lrs, checkpoints, device)
        return
    params = params.copy()
    alive = np.ones(len(params), dtype=np.bool_)
    died = np.full(len(params), -1, dtype=np.int64)
    t = 0
    for stop in checkpoints:
        backup = params.copy()
        sgd(layout, params, x, y, idx, lrs, t, int(stop), alive, died)
        # The compiled loop stops a run mid-step when it blows up; keep its last finite state.
        bad = ~np.isfinite(params).all(1)
        params[bad] = backup[bad]
        t = int(stop)
        yield t, params.astype(np.float64), alive.copy(), died.copy()


def batch_indices(n: int, steps: int, batches: list[int], seed: int) -> np.ndarray:
    """SGD's samples as the authors' code draws them: after np.random.seed(seed), each step takes
    np.random.choice(n, batch, replace=False), i.e. the first `batch` entries of a fresh permutation of
    range(n) (uniform with replacement across steps, without within a step). Every run restarts the same
    stream, so runs with one batch size see the same samples. Returns (R, steps, max batch) indices, padded
    with -1 past each run's batch size."""
    rs = np.random.RandomState(seed)
    width = max(batches)
    perms = np.array([rs.permutation(n)[:width] for _ in range(steps)], dtype=np.int64).reshape(steps, width)
    out = np.full((len(batches), steps, width), -1, dtype=np.int64)
    for r, batch in enumerate(batches):
        out[r, :, :batch] = perms[:, :batch]
    return out


def resolve_device(device: str) -> str:
    """'auto' -> 'cpu': a step of these nets costs ~1 us in the compiled CPU loop, less than a single GPU
    kernel launch, and a batched torch step needs ~20 of them."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ValueError("device='cuda' but no CUDA device is available: use 'auto' or 'cpu'")
    return "cpu" if device == "auto" else device


def record(rec, ids: list[int], trainer, steps: int, log_rows, chunk: int = 32) -> None:
    """Drive `trainer` (from `train`) and log into the Recorder: checkpoints go to `log_rows(items)` in
    batches of up to `chunk` (step, run index, params) of the runs still alive there, in step order, with
    a progress report after each batch; a run that blows up ends 'diverged' at its step, the others 'done'."""
    from threadpoolctl import threadpool_limits

    # Many small eigendecompositions: one BLAS thread is far faster than two fighting over two cores.
    with threadpool_limits(1):
        done = np.zeros(len(ids), dtype=bool)
        buffer = []
        for step, params, alive, died in trainer:
            buffer += [(step, r, params[r]) for r in np.flatnonzero(alive)]
            newly = ~alive & ~done
            if newly.any() or len(buffer) >= chunk or step >= steps:
                if buffer:
                    log_rows(buffer)
                buffer = []
                for r in np.flatnonzero(newly):
                    rec.finish_run(ids[r], "diverged", f"diverged at step {died[r]}: the loss blew up")
                done |= newly
                rec.progress(step / steps, f"step {step:,} / {steps:,}")
            if done.all():
                break
        for r in np.flatnonzero(~done):
            rec.finish_run(ids[r], "done")
