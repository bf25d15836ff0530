"""Altair charts shared by the pages: one colour per run, metric curves (median and band over seeds), decay marks,
and what stands in for the charts before a job's first point."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from ui.labels import metric as metric_name

alt.data_transformers.disable_max_rows()

Y_FORMAT = ".3~g"   # 0.01 stays "0.01" (not "0.0100000") even on a flat or one-point chart
X_FORMAT = "~s"     # iterations: 10k, 20k, 31.6k


def run_order(view: dict) -> list[str]:
    """Run labels in the order of the config (for stable colors)."""
    labels = []
    for r in view["runs"]:
        if r["label"] not in labels:
            labels.append(r["label"])
    return labels


def color(labels: list[str], field: str = "label", legend: bool = True, points: bool = False) -> alt.Color:
    """One color per run label, in the order of the runs: every chart of a page that passes the same `labels`
    gives a run the same color (`field`: the column holding the label; `points`: legend symbols for dots)."""
    # below the plot, two columns: long run names no longer squeeze a half-width chart
    place = dict(orient="bottom", columns=2, labelLimit=260)
    symbols = (alt.Legend(symbolType="circle", symbolOpacity=1, **place) if points
               else alt.Legend(symbolType="stroke", symbolStrokeWidth=3, symbolOpacity=1, **place))
    return alt.Color(f"{field}:N", title=None, sort=labels, scale=alt.Scale(domain=labels, scheme="tableau10"),
                     legend=symbols if legend else None)


def palette(labels: list[str]) -> dict[str, str]:
    """The hex color `color(labels)` gives each label (for marks drawn with a fixed color, one run per chart)."""
    tableau10 = ["#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6",
                 "#9d755d", "#bab0ac"]
    return {label: tableau10[k % len(tableau10)] for k, label in enumerate(labels)}


def waiting(view: dict, text: str) -> None:
    """In place of the charts before a job's first point: what it is doing (its own message when it reports one,
    else `text`, e.g. "loading the data, building the model")."""
    if view["status"] == "running" and view.get("progress", 0) == 0:
        st.info(f"Starting: {view.get('message') or text}…", icon="⏳")


def seed_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Median and 10-90% band over seeds of one metric, per run label and step."""
    grouped = frame.groupby(["label", "step"])["value"]
    out = grouped.median().rename("median").to_frame()
    out["low"], out["high"], out["seeds"] = grouped.quantile(0.1), grouped.quantile(0.9), grouped.count()
    return out.reset_index()


def metric_chart(long: pd.DataFrame, metric: str, title: str, labels: list[str], log: bool = False,
                 rules: pd.DataFrame | None = None, height: int = 300, x_title: str = "iteration",
                 y_title: str | None = None, legend: bool = True) -> alt.Chart:
    """One metric over steps, one line per run label (median over seeds with a band when several).
    `rules`: DataFrame(label, step) of vertical marks (e.g. step-size decays); `legend`: False for a small panel
    whose colours a neighbouring chart's legend names."""
    frame = long[long["metric"] == metric]
    if log:
        frame = frame[frame["value"] > 0]
    summary = seed_summary(frame)
    y_scale = alt.Scale(type="log") if log else alt.Scale(zero=False)
    healthy = frame[frame["status"] != "diverged"]["value"]
    if log and len(healthy) and len(healthy) < len(frame):
        # keep the surviving runs readable: a diverged run's last values would flatten them
        y_scale = alt.Scale(type="log", clamp=True, domain=[healthy.min(), healthy.max() * 100])
    name = metric_name(metric)
    base = alt.Chart(summary).encode(x=alt.X("step:Q", title=x_title, axis=alt.Axis(format=X_FORMAT)),
                                     color=color(labels, legend=legend))
    line = base.mark_line(strokeWidth=1.6).encode(
        y=alt.Y("median:Q", title=y_title or name, scale=y_scale,
                axis=alt.Undefined if log else alt.Axis(format=Y_FORMAT)),
        tooltip=["label", alt.Tooltip("step:Q", title=x_title, format=","),
                 alt.Tooltip("median:Q", format=".4g", title=name), "seeds"])
    layers = [line]
    if not summary.empty and summary["seeds"].max() > 1:
        # after the line, so that the legend shows line symbols
        layers.append(base.mark_area(opacity=0.18).encode(y="low:Q", y2="high:Q"))
    if rules is not None and not rules.empty:
        layers.append(alt.Chart(rules).mark_rule(strokeDash=[4, 3], opacity=0.7).encode(
            x="step:Q", color=color(labels, legend=legend), tooltip=["label", alt.Tooltip("step:Q", title="decay at")]))
    return alt.layer(*layers).properties(title=title, height=height, width="container")


def decay_rules(runs: list[dict], steps: int, at_key: str = "decay_at", label_key: str = "name") -> pd.DataFrame:
    """Decay steps of the runs whose schedule decays (at < 1)."""
    rows = [dict(label=r[label_key], step=int(r[at_key] * steps)) for r in runs if r.get(at_key, 1) < 1]
    return pd.DataFrame(rows, columns=["label", "step"])
