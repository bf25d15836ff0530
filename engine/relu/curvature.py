"""Sharpness of the ReLU nets' training loss: exact Hessian-vector products (Pearlmutter's R-operator, numpy,
batched over param sets), the top eigenvalue lambda_max by batched Lanczos (engine.core.lanczos), and the trace.

Loss L = mean_i (f(x_i) - y_i)^2 (MSE without 1/2, as the nets are trained), on the whole training set (it is
small: 12 to 50 points). Layer k: Z_k = A_k W_k^T + b_k, A_{k+1} = relu(Z_k); delta_k = dL/dZ_k. Forward and
backward passes are differentiated along a direction (V_k, c_k): ReLU's second derivative is zero away from the
kinks, so within an activation pattern this is the exact Hessian (the Hessian the loss has almost everywhere).
tr H = (2/N) sum_i ||grad f(x_i)||^2: f is affine in each single parameter (every path through the net uses
one weight of each layer), so the diagonal of each grad^2 f(x_i) is zero and only the Gauss-Newton part remains.
"""

from __future__ import annotations

import numpy as np

from engine.core.lanczos import TopEigen, top_eigen
from engine.relu import nets as rn

TOL = 1e-10        # relative accuracy of lambda_max (Lanczos residual bound)
START_SEED = 0x5A4


def _passes(layout: rn.Layout, params: np.ndarray, x: np.ndarray, y: np.ndarray):
    """Forward and backward pass on the training set: layers, pre-activations, layer inputs, masks, deltas."""
    layers = layout.layers(params)
    pres, acts = rn.forward(layout, params, x)
    masks = [z > 0 for z in pres[:-1]]
    deltas = [None] * layout.depth
    deltas[-1] = 2 * (pres[-1] - y[:, None]) / len(y)
    for k in range(layout.depth - 1, 0, -1):
        deltas[k - 1] = (deltas[k] @ layers[k][0]) * masks[k - 1]
    return layers, acts, masks, deltas


def _flat(layout: rn.Layout, grads_w: list, grads_b: list) -> np.ndarray:
    parts = []
    for k in range(layout.depth):
        parts.append(grads_w[k].reshape(*grads_w[k].shape[:-2], -1))
        if layout.biases[k]:
            parts.append(grads_b[k])
    return np.concatenate(parts, axis=-1)


def loss_grad(layout: rn.Layout, params: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Gradient of the training loss for each param set (C, p) on inputs x (N, d), labels y (N,)."""
    _, acts, _, deltas = _passes(layout, params, x, y)
    return _flat(layout, [d.swapaxes(-1, -2) @ a for d, a in zip(deltas, acts, strict=True)],
                 [d.sum(-2) for d in deltas])


def hessian_matvec(layout: rn.Layout, params: np.ndarray, x: np.ndarray, y: np.ndarray):
    """q (C, p) -> H(params_c) q_c: the R-operator of `loss_grad` (module doc)."""
    params = np.asarray(params, dtype=np.float64)
    layers, acts, masks, deltas = _passes(layout, params, x, y)
    n, depth = len(y), layout.depth

    def matvec(q: np.ndarray) -> np.ndarray:
        dirs = layout.layers(q)
        r_acts = [np.zeros_like(acts[0] * params[:, None, :1])]
        r_pre = []
        for k, ((w, _), (v, c)) in enumerate(zip(layers, dirs, strict=True)):
            z = r_acts[k] @ w.swapaxes(-1, -2) + acts[k] @ v.swapaxes(-1, -2)
            if c is not None:
                z = z + c[..., None, :]
            r_pre.append(z)
            if k < depth - 1:
                r_acts.append(z * masks[k])
        r_delta = 2 * r_pre[-1] / n
        grads_w, grads_b = [None] * depth, [None] * depth
        for k in range(depth - 1, -1, -1):
            grads_w[k] = r_delta.swapaxes(-1, -2) @ acts[k] + deltas[k].swapaxes(-1, -2) @ r_acts[k]
            grads_b[k] = r_delta.sum(-2)
            if k > 0:
                r_delta = (r_delta @ layers[k][0] + deltas[k] @ dirs[k][0]) * masks[k - 1]
        return _flat(layout, grads_w, grads_b)

    return matvec


def top_hessian_eigen(layout: rn.Layout, params: np.ndarray, x: np.ndarray, y: np.ndarray,
                      start: np.ndarray | None = None, tol: float = TOL) -> TopEigen:
    """lambda_max of the training loss's Hessian at each param set (C, p), with its eigenvector; `start` (C, p):
    e.g. the previous checkpoint's eigenvectors (a warm start), default a fixed random vector."""
    params = np.asarray(params, dtype=np.float64)
    if start is None:
        start = np.broadcast_to(np.random.default_rng(START_SEED).standard_normal(params.shape[1]), params.shape)
    return top_eigen(hessian_matvec(layout, params, x, y), start, tol=tol)


def hessian_trace(layout: rn.Layout, params: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """tr H = (2/N) sum_i ||grad f(x_i)||^2 for each param set (module doc)."""
    gram = rn.ntk_gram(layout, np.asarray(params, dtype=np.float64), x)
    return 2 * np.trace(gram, axis1=-2, axis2=-1) / len(y)
