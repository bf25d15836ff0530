"""Feature sparsity coefficient of a hidden layer and the kinks of a 1D two-layer ReLU net.

`feature_sparsity` follows docs/experiments.md ("Feature sparsity coefficient", paper Sec. 3): rows scaled
to unit norm, dead units out, greedy dedupe in index order by |Pearson correlation| > c against the
units already kept, then nonzeros in the kept columns / (n * m). One matmul gives every correlation;
only the units that have a highly correlated earlier unit need the sequential scan.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def correlation_matrix(z):
    """Pearson correlation between the columns of z (float64, numpy or torch); a constant column
    correlates 0 with everything (numpy's corrcoef gives NaN there, which never exceeds a threshold either)."""
    if _is_torch(z):
        import torch

        z = z.to(torch.float64)
        z = z - z.mean(0, keepdim=True)
        norms = z.norm(dim=0)
        z = z * torch.where(norms > 0, 1.0 / torch.where(norms > 0, norms, 1.0), 0.0)
        return z.T @ z
    z = np.asarray(z, dtype=np.float64)
    z = z - z.mean(0, keepdims=True)
    norms = np.linalg.norm(z, axis=0)
    z = z * np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return z.T @ z


def greedy_keep(corr, threshold: float) -> np.ndarray:
    """Boolean mask of the units kept by the greedy scan in index order: a unit is dropped when
    |corr| > threshold with a unit already kept (so the first of each correlated group stays)."""
    high = abs(corr) > threshold
    high = np.triu(high.cpu().numpy() if _is_torch(high) else high, 1)
    kept = np.ones(high.shape[0], dtype=bool)
    # Units with no highly correlated earlier unit are kept whatever happens; scan only the others.
    for j in np.flatnonzero(high.any(0)):
        kept[j] = not (high[:j, j] & kept[:j]).any()
    return kept


def _pick_units(m: int, max_units: int, generator) -> np.ndarray:
    if generator is None or isinstance(generator, np.random.Generator):
        return np.sort(np.random.default_rng(generator).permutation(m)[:max_units])
    import torch

    return torch.randperm(m, generator=generator)[:max_units].sort().values.numpy()


def feature_sparsity(acts, threshold: float, normalize_rows: bool = True, max_units: int | None = None,
                     generator: torch.Generator | np.random.Generator | None = None) -> float:
    """Feature sparsity coefficient of post-ReLU activations `acts` (n samples x m units), in [0, 1].

    `acts` is a numpy array or a torch tensor on any device (computed there; numpy never imports torch).
    With `max_units` and m > max_units, `max_units` units are first chosen at random (`generator`, torch
    or numpy) and the denominator counts those units. Rows are scaled to unit norm over all m units first.
    """
    torch_in = _is_torch(acts)
    z = acts if torch_in else np.asarray(acts)
    if z.ndim != 2:
        raise ValueError(f"acts must be a matrix (samples x units), got shape {tuple(z.shape)}")
    n, m = z.shape
    if n == 0 or m == 0:
        return 0.0
    if normalize_rows:
        if torch_in:
            z = z if z.is_floating_point() else z.double()
            norms = z.norm(dim=1, keepdim=True)
            z = z / norms.where(norms > 0, 1.0)
        else:
            z = z.astype(np.float64) if z.dtype.kind not in "f" else z
            norms = np.linalg.norm(z, axis=1, keepdims=True)
            z = np.divide(z, norms, out=np.zeros_like(z), where=norms > 0)
    if max_units is not None and m > max_units:
        pick = _pick_units(m, max_units, generator)
        z = z[:, pick.tolist()] if torch_in else z[:, pick]
        m = max_units
    nonzero = z != 0
    alive = nonzero.any(0)
    counts = nonzero[:, alive].sum(0)
    counts = counts.cpu().numpy() if torch_in else counts
    if counts.size == 0:
        return 0.0
    kept = greedy_keep(correlation_matrix(z[:, alive]), threshold)
    return float(counts[kept].sum()) / (n * m)


def kinks(w, b, a, x_min: float, x_max: float, tol: float = 1e-3, a_tol: float = 1e-3) -> np.ndarray:
    """Sorted kink positions of h(x) = sum_j a_j relu(w_j x + b_j) inside [x_min, x_max].

    A neuron counts when w_j != 0 and |a_j| > a_tol; its breakpoint is -b_j / w_j. Breakpoints
    closer than `tol` to their neighbour are merged (chains merge) into their mean.
    """
    w, b, a = (np.asarray(v.detach().cpu() if _is_torch(v) else v, dtype=float).ravel() for v in (w, b, a))
    live = (w != 0) & (np.abs(a) > a_tol)
    t = -b[live] / w[live]
    t = np.sort(t[(t >= x_min) & (t <= x_max)])
    if t.size == 0:
        return t
    group = np.concatenate([[0], np.cumsum(np.diff(t) >= tol)])
    return np.bincount(group, weights=t) / np.bincount(group)
