"""Fig. 3 of the paper: the diagonal nets' paths projected on the plane through the init spanned by gradient
flow's end point and w*, with the train loss drawn on a grid over that plane."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from engine.diagonal.data import Data

if TYPE_CHECKING:
    from engine.diagonal.config import DiagonalConfig


def snapshot_plane(c: DiagonalConfig, data: Data, recorded, ids, path_rows, steps, paths, died, rec,
                   grid: int = 60) -> None:
    """Project the first seed's paths on the plane through w_init spanned by e1 = (w_flow - w_init) and
    e2 = the part of w* - w_init orthogonal to it (w = (u, v), w* = (sqrt(beta*), sqrt(beta*)),
    w_flow = end point of the smallest-step GD run), and the train loss on a grid over that plane."""
    gd = [k for k, run in enumerate(c.runs) if run.algorithm == "GD"]
    if not gd:
        rec.snapshot(None, "plane_note", "no GD run: the plane needs gradient flow's end point")
        return
    flow = min(gd, key=lambda k: c.runs[k].lr)
    u = np.concatenate([p[0] for p in paths])  # (K, rows, d)
    v = np.concatenate([p[1] for p in paths])
    w = np.concatenate([u, v], axis=-1)
    w_init = np.concatenate([np.full(c.d, c.init_scale), np.zeros(c.d)])
    w_star = np.concatenate([np.sqrt(data.beta_star)] * 2)
    flow_row = path_rows.index(next(row for k, s, row in recorded if k == flow and s == c.first_seed))
    if died[path_rows[flow_row]] >= 0:
        rec.snapshot(None, "plane_note", "gradient flow diverged: no plane")
        return
    w_flow = w[-1, flow_row]
    e1 = w_flow - w_init
    e1 /= np.linalg.norm(e1)
    e2 = (w_star - w_init) - ((w_star - w_init) @ e1) * e1
    e2 /= np.linalg.norm(e2)
    with np.errstate(all="ignore"):
        coords = np.stack([(w - w_init) @ e1, (w - w_init) @ e2], axis=-1)  # (K, rows, 2)
    star = np.array([(w_star - w_init) @ e1, (w_star - w_init) @ e2])
    drawn = [star[None], np.zeros((1, 2))]
    for i, (_, s, row) in enumerate(recorded):
        if s == c.first_seed:
            path = coords[:, path_rows.index(row)]
            ok = np.isfinite(path).all(axis=1) & ((died[row] < 0) | (steps[: len(path)] <= died[row]))
            rec.snapshot(ids[i], "path", path[ok])
            rec.snapshot(ids[i], "path_steps", steps[: len(path)][ok])
            drawn.append(path[ok])
    pts = np.concatenate(drawn)
    lo, hi = pts.min(0), pts.max(0)
    pad = 0.1 * (hi - lo) + 1e-3
    a = np.linspace(lo[0] - pad[0], hi[0] + pad[0], grid)
    b = np.linspace(lo[1] - pad[1], hi[1] + pad[1], grid)
    wa = w_init + a[:, None, None] * e1 + b[None, :, None] * e2  # (grid, grid, 2d)
    beta = wa[..., : c.d] * wa[..., c.d:]
    loss = ((beta @ data.x.T - data.y) ** 2).sum(-1) / (2 * c.n)
    rec.snapshot(None, "plane", dict(a=a, b=b, loss=loss, star=star, flow_end=coords[-1, flow_row],
                                     axes=["w_flow - w_init", "orthogonal part of w* - w_init"]))
