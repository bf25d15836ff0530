"""Feature sparsity coefficient of a hidden layer and the kinks of a 1D two-layer ReLU net.

`feature_sparsity` follows EXPERIMENTS.md ("Feature sparsity coefficient", paper Sec. 3): rows scaled
to unit norm, dead units out, greedy dedupe in index order by |Pearson correlation| > c against the
units already kept, then nonzeros in the kept columns / (n * m). One matmul gives every correlation;
only the units that have a highly correlated earlier unit need the sequential scan.
"""

from __future__ import annotations

import numpy as np
import torch


def _as_tensor(acts) -> torch.Tensor:
    return acts if isinstance(acts, torch.Tensor) else torch.as_tensor(np.asarray(acts))


def correlation_matrix(z: torch.Tensor) -> torch.Tensor:
    """Pearson correlation between the columns of z (float64); a constant column correlates 0 with
    everything (numpy's corrcoef gives NaN there, which never exceeds a threshold either)."""
    z = z.to(torch.float64)
    z = z - z.mean(0, keepdim=True)
    norms = z.norm(dim=0)
    inv = torch.where(norms > 0, 1.0 / norms, torch.zeros_like(norms))
    z = z * inv
    return z.T @ z


def greedy_keep(corr: torch.Tensor, threshold: float) -> np.ndarray:
    """Boolean mask of the units kept by the greedy scan in index order: a unit is dropped when
    |corr| > threshold with a unit already kept (so the first of each correlated group stays)."""
    m = corr.shape[0]
    high = (corr.abs() > threshold).triu(diagonal=1).cpu().numpy()
    kept = np.ones(m, dtype=bool)
    # Units with no highly correlated earlier unit are kept whatever happens; scan only the others.
    for j in np.flatnonzero(high.any(0)):
        kept[j] = not (high[:j, j] & kept[:j]).any()
    return kept


def feature_sparsity(acts, threshold: float, normalize_rows: bool = True, max_units: int | None = None,
                     generator: torch.Generator | None = None) -> float:
    """Feature sparsity coefficient of post-ReLU activations `acts` (n samples x m units), in [0, 1].

    With `max_units` and m > max_units, `max_units` units are first chosen at random (`generator`)
    and the denominator counts those units. Rows are scaled to unit norm over all m units first.
    """
    z = _as_tensor(acts)
    if z.ndim != 2:
        raise ValueError(f"acts must be a matrix (samples x units), got shape {tuple(z.shape)}")
    n, m = z.shape
    if n == 0 or m == 0:
        return 0.0
    if not z.is_floating_point():
        z = z.to(torch.float64)
    if normalize_rows:
        norms = z.norm(dim=1, keepdim=True)
        z = torch.where(norms > 0, z / torch.where(norms > 0, norms, torch.ones_like(norms)), torch.zeros_like(z))
    if max_units is not None and m > max_units:
        pick = torch.randperm(m, generator=generator)[:max_units].sort().values
        z = z[:, pick.to(z.device)]
        m = max_units
    nonzero = z != 0
    alive = nonzero.any(0)
    counts = nonzero[:, alive].sum(0)
    if counts.numel() == 0:
        return 0.0
    kept = greedy_keep(correlation_matrix(z[:, alive]), threshold)
    total = counts[torch.as_tensor(kept, device=counts.device)].sum()
    return float(total) / (n * m)


def kinks(w, b, a, x_min: float, x_max: float, tol: float = 1e-3, a_tol: float = 1e-3) -> np.ndarray:
    """Sorted kink positions of h(x) = sum_j a_j relu(w_j x + b_j) inside [x_min, x_max].

    A neuron counts when w_j != 0 and |a_j| > a_tol; its breakpoint is -b_j / w_j. Breakpoints
    closer than `tol` to their neighbour are merged (chains merge) into their mean.
    """
    w, b, a = (np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v, dtype=float).ravel()
               for v in (w, b, a))
    live = (w != 0) & (np.abs(a) > a_tol)
    t = -b[live] / w[live]
    t = np.sort(t[(t >= x_min) & (t <= x_max)])
    if t.size == 0:
        return t
    group = np.concatenate([[0], np.cumsum(np.diff(t) >= tol)])
    return np.bincount(group, weights=t) / np.bincount(group)
