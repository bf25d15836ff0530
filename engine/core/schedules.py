"""Step-size schedules, exactly as docs/experiments.md defines them, shared by every experiment.

Step-indexed schedules return one step size per SGD step (arrays of length `steps`); the ResNet
schedules are functions of training progress t in [0, 1].
"""

from __future__ import annotations

import numpy as np


def constant(lr: float, steps: int) -> np.ndarray:
    """The same step size at every step."""
    return np.full(steps, float(lr))


def step_decay(lr: float, steps: int, at: float, factor: float) -> np.ndarray:
    """`lr`, divided once by `factor` from step int(at * steps) on (no decay when at >= 1)."""
    out = constant(lr, steps)
    if at < 1 and factor != 1:
        out[int(at * steps):] /= factor
    return out


def linear_warmup(lr: float, steps: int, factor: float, exponent: float, at: float, decay: float) -> np.ndarray:
    """Warmup `lr_i = lr + (factor - 1) lr (i / steps)**exponent` for i <= int(at * steps), then the
    value reached there divided by `decay`, held to the end (note i / steps, not i / (at * steps))."""
    i = np.arange(steps, dtype=float)
    end = int(at * steps)
    out = lr + (factor - 1) * lr * (np.minimum(i, end) / steps) ** exponent
    out[end:] = (lr + (factor - 1) * lr * (end / steps) ** exponent) / decay
    return out


def decay_step(steps: int, at: float) -> int | None:
    """The step at which a schedule decays, or None when it never does."""
    return int(at * steps) if at < 1 else None


def exp_warmup(lr: float, t: np.ndarray | float, at: float, base: float = 1.05, rate: float = 100.0,
               decay: float = 10.0, final_at: float = 0.9, final_decay: float = 100.0) -> np.ndarray:
    """ResNet 'plain, large': lr * base**(rate t) for t < at, then lr * base**(rate at) / decay until
    t = final_at, then lr * base**(rate at) / final_decay."""
    t = np.asarray(t, dtype=float)
    peak = lr * base ** (rate * at)
    return np.where(t < at, lr * base ** (rate * t), np.where(t < final_at, peak / decay, peak / final_decay))


def piecewise(lr: float, t: np.ndarray | float, at: float, decay: float = 10.0, final_at: float = 0.9,
              final_decay: float = 100.0) -> np.ndarray:
    """ResNet 'state of the art, large': lr until at, lr / decay until final_at, then lr / final_decay."""
    t = np.asarray(t, dtype=float)
    return np.where(t < at, lr, np.where(t < final_at, lr / decay, lr / final_decay)).astype(float)


def cosine(lr: float, t: np.ndarray | float) -> np.ndarray:
    """Cosine annealing from lr at t = 0 to 0 at t = 1: lr (1 + cos(pi t)) / 2."""
    return lr * 0.5 * (1.0 + np.cos(np.pi * np.asarray(t, dtype=float)))


def checkpoint_steps(steps: int, dense: int = 100, count: int = 200) -> np.ndarray:
    """Steps at which metrics are recorded: every step for the first `dense`, then about `count`
    evenly spaced up to `steps` (the state after the last step)."""
    head = np.arange(min(dense, steps + 1))
    tail = np.linspace(min(dense, steps), steps, max(count, 2)).round().astype(int)
    return np.unique(np.concatenate([head, tail]))
