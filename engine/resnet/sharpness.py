"""Sharpness of a ResNet's training loss: the top eigenvalue λ_max of its Hessian on a fixed batch, by Lanczos on
Hessian-vector products (torch.func: forward-over-reverse), warm-started from the previous checkpoint's
eigenvector. Batch norm runs in eval mode (its running statistics), so the loss is a function of the weights alone.

At the edge of stability λ_max hovers at 2/η for plain SGD, (2 + 2β)/η with momentum β: `stability_limit`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, jvp


def stability_limit(lr: float, momentum: float) -> float:
    """The sharpness above which gradient descent (heavy ball with momentum β) is unstable on a quadratic:
    (2 + 2β) / η."""
    return (2.0 + 2.0 * momentum) / lr


def hessian_vector_product(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor):
    """`hvp(v)`: the Hessian of the mean cross-entropy of `model` on (x, y) times v, v a flat vector of all
    parameters (in `named_parameters` order)."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def loss(p: dict) -> torch.Tensor:
        return F.cross_entropy(functional_call(model, (p, buffers), (x,)).float(), y)

    gradient = grad(loss)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        tangent = {n: t.view(s) for n, t, s in zip(names, torch.split(v, sizes), shapes, strict=True)}
        _, out = jvp(gradient, (params,), (tangent,))
        return torch.cat([out[n].reshape(-1) for n in names])

    return hvp


@torch.no_grad()
def _orthonormal_step(w: torch.Tensor, basis: list[torch.Tensor]) -> torch.Tensor:
    for _ in range(2):  # classical Gram-Schmidt twice: orthogonal to working precision
        for q in basis:
            w -= torch.dot(w, q) * q
    return w


def top_eigenvalue(hvp, size: int, start: torch.Tensor | None = None, iters: int = 20, tol: float = 1e-4,
                   generator: torch.Generator | None = None, device: torch.device | str = "cpu",
                   dtype: torch.dtype = torch.float32) -> tuple[float, torch.Tensor]:
    """(λ_max, its unit Ritz vector) of the symmetric operator `hvp` on vectors of `size` entries, by Lanczos with
    full reorthogonalization from `start` (random when None); stops once the residual ||H x - θ x|| is below
    tol |θ| or after `iters` steps (a Krylov space of the full size is exact). Vectors are of `dtype`, the
    parameters' dtype."""
    q = start.clone() if start is not None else torch.randn(size, generator=generator, dtype=dtype, device=device)
    q = q / q.norm()
    basis, alphas, betas = [], [], []
    value, vector = 0.0, q
    for k in range(1, min(iters, size) + 1):
        basis.append(q)
        w = hvp(q).detach()
        alphas.append(torch.dot(w, q).item())
        w = _orthonormal_step(w, basis)
        beta = w.norm().item()
        tri = torch.diag(torch.tensor(alphas, dtype=torch.float64))
        if k > 1:
            off = torch.tensor(betas, dtype=torch.float64)
            tri += torch.diag(off, 1) + torch.diag(off, -1)
        vals, vecs = torch.linalg.eigh(tri)
        value = float(vals[-1])
        coef = vecs[:, -1].to(q.dtype).to(q.device)
        vector = torch.stack(basis, 1) @ coef
        if beta * abs(float(vecs[-1, -1])) <= tol * abs(value) or beta == 0.0:
            break
        betas.append(beta)
        q = w / beta
    return value, vector / vector.norm()
