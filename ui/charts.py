"""Altair charts shared by the pages: metric curves (median and band over seeds), decay marks."""

from __future__ import annotations

import altair as alt
import pandas as pd

alt.data_transformers.disable_max_rows()


def run_order(view: dict) -> list[str]:
    """Run labels in the order of the config (for stable colors)."""
    labels = []
    for r in view["runs"]:
        if r["label"] not in labels:
            labels.append(r["label"])
    return labels


def color(labels: list[str]) -> alt.Color:
    """One color per run label, in the order of the runs."""
    return alt.Color("label:N", title=None, sort=labels, scale=alt.Scale(domain=labels, scheme="tableau10"),
                     legend=alt.Legend(symbolType="stroke", symbolStrokeWidth=3, symbolOpacity=1))


def seed_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Median and 10-90% band over seeds of one metric, per run label and step."""
    grouped = frame.groupby(["label", "step"])["value"]
    out = grouped.median().rename("median").to_frame()
    out["low"], out["high"], out["seeds"] = grouped.quantile(0.1), grouped.quantile(0.9), grouped.count()
    return out.reset_index()


def metric_chart(long: pd.DataFrame, metric: str, title: str, labels: list[str], log: bool = False,
                 rules: pd.DataFrame | None = None, height: int = 260, x_title: str = "iteration",
                 y_title: str | None = None) -> alt.Chart:
    """One metric over steps, one line per run label (median over seeds with a band when several).
    `rules`: DataFrame(label, step) of vertical marks (e.g. step-size decays)."""
    frame = long[long["metric"] == metric]
    if log:
        frame = frame[frame["value"] > 0]
    summary = seed_summary(frame)
    y_scale = alt.Scale(type="log") if log else alt.Scale(zero=False)
    healthy = frame[frame["status"] != "diverged"]["value"]
    if log and len(healthy) and len(healthy) < len(frame):
        # keep the surviving runs readable: a diverged run's last values would flatten them
        y_scale = alt.Scale(type="log", clamp=True, domain=[healthy.min(), healthy.max() * 100])
    base = alt.Chart(summary).encode(x=alt.X("step:Q", title=x_title), color=color(labels))
    line = base.mark_line(strokeWidth=1.6).encode(
        y=alt.Y("median:Q", title=y_title or metric, scale=y_scale),
        tooltip=["label", "step", alt.Tooltip("median:Q", format=".4g", title=metric), "seeds"])
    layers = [line]
    if not summary.empty and summary["seeds"].max() > 1:
        # after the line, so that the legend shows line symbols
        layers.append(base.mark_area(opacity=0.18).encode(y="low:Q", y2="high:Q"))
    if rules is not None and not rules.empty:
        layers.append(alt.Chart(rules).mark_rule(strokeDash=[4, 3], opacity=0.7).encode(
            x="step:Q", color=color(labels), tooltip=["label", alt.Tooltip("step:Q", title="decay at")]))
    return alt.layer(*layers).properties(title=title, height=height, width="container")


def decay_rules(runs: list[dict], steps: int, at_key: str = "decay_at", label_key: str = "name") -> pd.DataFrame:
    """Decay steps of the runs whose schedule decays (at < 1)."""
    rows = [dict(label=r[label_key], step=int(r[at_key] * steps)) for r in runs if r.get(at_key, 1) < 1]
    return pd.DataFrame(rows, columns=["label", "step"])
