"""A claim's rate over seeds: holds / seeds with a 95% Wilson score interval, and the spread of a measured value."""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def wilson(holds: int, seeds: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion holds / seeds ((0, 1) when there are no seeds). Unlike the normal
    approximation it stays inside [0, 1] and is not zero-width at 0 or `seeds` successes."""
    if seeds <= 0:
        return 0.0, 1.0
    p = holds / seeds
    denom = 1 + z * z / seeds
    centre = (p + z * z / (2 * seeds)) / denom
    half = z * math.sqrt(p * (1 - p) / seeds + z * z / (4 * seeds * seeds)) / denom
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    return (0.0 if holds == 0 else lo), (1.0 if holds == seeds else hi)  # exact ends, not 0.9999999999999999


def spread(values: list[float]) -> dict | None:
    """Median and 10-90% range of the finite values (None when there are none)."""
    finite = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if not len(finite):
        return None
    return dict(median=float(np.median(finite)), p10=float(np.percentile(finite, 10)),
                p90=float(np.percentile(finite, 90)), n=len(finite))
