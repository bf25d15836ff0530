"""The base of the paper's claims: a `Check` (claim, what the result shows, verdict) and the helpers every
family's criteria use. The criteria themselves live in each family's `claims` module.

Each check takes the runs of one seed (run dicts of a Result, in config order) and returns a list of
`Check(claim, obtained, ok)`; `by_seed` splits a multi-seed result. Thresholds come from the paper's text
(docs/experiments.md "Expected"), not from a measured run.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    """One claim of the paper, what the result shows, and whether it holds."""

    claim: str
    obtained: str
    ok: bool


def by_seed(runs: list[dict]) -> dict[int | None, list[dict]]:
    """Runs grouped by sampling seed, each group in config order."""
    out: dict[int | None, list[dict]] = {}
    for r in runs:
        out.setdefault(r.get("seed"), []).append(r)
    return out


def final(run: dict, metric: str) -> float:
    value = run["final"].get(metric)
    return float("nan") if value is None else float(value)


def survive(runs: list[dict]) -> Check:
    bad = [r["label"] for r in runs if r["status"] != "done"]
    return Check("every run survives (no divergence)", "all done" if not bad else "diverged: " + ", ".join(bad),
                 not bad)


def fewer(long: dict, short: dict, metric: str, name: str) -> Check:
    a, b = final(long, metric), final(short, metric)
    return Check(f"{name}: the long large-step phase ends lower", f"{a:.3g} vs {b:.3g}", a < b)


def holds(checks: list[Check]) -> bool:
    """Whether every check holds (and there is at least one)."""
    return bool(checks) and all(c.ok for c in checks)
