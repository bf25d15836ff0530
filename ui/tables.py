"""Job records as pandas frames: the shape Altair charts and CSV exports want."""

from __future__ import annotations

import pandas as pd


def histories_frame(view: dict) -> pd.DataFrame:
    """Every run's history in long form: run, label, seed, status, step, metric, value."""
    parts = []
    for r in view["runs"]:
        hist = pd.DataFrame(r["history"])
        if hist.empty:
            continue
        long = hist.melt(id_vars="step", var_name="metric", value_name="value").dropna(subset=["value"])
        long["value"] = pd.to_numeric(long["value"])  # a column that was all None melts as object
        long.insert(0, "run", r["name"])
        long.insert(1, "label", r["label"])
        long.insert(2, "seed", r["seed"])
        long.insert(3, "status", r["status"])
        parts.append(long)
    if not parts:
        return pd.DataFrame(columns=["run", "label", "seed", "status", "step", "metric", "value"])
    return pd.concat(parts, ignore_index=True)


def finals_frame(view: dict, metrics: list[str] | None = None) -> pd.DataFrame:
    """One row per run: name, status, message and its final metric values."""
    rows = []
    for r in view["runs"]:
        final = {k: v for k, v in r["final"].items() if metrics is None or k in metrics}
        rows.append(dict(run=r["name"], status=r["status"], **final, note=r["message"]))
    return pd.DataFrame(rows)


def seed_counts(view: dict, labels: list[str], chosen: list[dict]) -> str:
    """'large, 50%: 3 of 10 seeds; ...' for the runs in `chosen` (e.g. those that diverged), per run label, with
    the run's message when a single seed is concerned ('' when none)."""
    parts = []
    for lab in labels:
        total = sum(r["label"] == lab for r in view["runs"])
        mine = [r for r in chosen if r["label"] == lab]
        if mine:
            note = f" ({mine[0]['message']})" if len(mine) == 1 and mine[0]["message"] else ""
            parts.append(f"{lab}: {len(mine)} of {total} seed{'s' * (total > 1)}{note}")
    return "; ".join(parts)
