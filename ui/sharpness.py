"""The sharpness charts of a page: the top eigenvalue λ_max of the training loss's Hessian against 2/η(t) (the
gradient-descent stability bound, which moves when η is decayed), and the Hessian's trace; drawn only when the
job logged them (the `sharpness` setting)."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from ui.charts import X_FORMAT, color, seed_summary
from ui.paper import look_at


def bound_frame(long: pd.DataFrame) -> pd.DataFrame:
    """2/η at every logged step of each run label (median over seeds: the schedule is the same for all)."""
    lr = long[(long["metric"] == "lr") & (long["value"] > 0)]
    out = lr.groupby(["label", "step"])["value"].median().reset_index()
    out["bound"] = 2.0 / out["value"]
    return out[["label", "step", "bound"]]


def sharpness_chart(long: pd.DataFrame, labels: list[str], height: int = 380) -> alt.Chart | None:
    """λ_max per run (median over seeds, 10-90% band when several) as solid lines and 2/η(t) of the same run
    as a dashed line in its colour, log y axis (η spans decades across a decay)."""
    frame = long[(long["metric"] == "sharpness") & (long["value"] > 0)]
    if frame.empty:
        return None
    summary = seed_summary(frame)
    bound = bound_frame(long)
    x = alt.X("step:Q", title="iteration", axis=alt.Axis(format=X_FORMAT))
    y_scale = alt.Scale(type="log")
    lines = alt.Chart(summary).mark_line(strokeWidth=1.8).encode(
        x=x, y=alt.Y("median:Q", title="λ_max, 2/η", scale=y_scale), color=color(labels),
        tooltip=["label", alt.Tooltip("step:Q", format=","), alt.Tooltip("median:Q", title="λ_max", format=".4g")])
    layers = [lines]
    if summary["seeds"].max() > 1:
        layers.append(alt.Chart(summary).mark_area(opacity=0.18).encode(x=x, y="low:Q", y2="high:Q",
                                                                          color=color(labels)))
    if not bound.empty:
        layers.append(alt.Chart(bound).mark_line(strokeDash=[5, 3], strokeWidth=1.4, opacity=0.8).encode(
            x=x, y=alt.Y("bound:Q", scale=y_scale), color=color(labels),
            tooltip=["label", alt.Tooltip("step:Q", format=","), alt.Tooltip("bound:Q", title="2/η", format=".4g")]))
    title = alt.Title("λ_max of the loss's Hessian against 2/η", subtitle="solid: λ_max; dashed: 2/η of the same run")
    return alt.layer(*layers).properties(title=title, height=height, width="container")


def trace_chart(long: pd.DataFrame, labels: list[str], height: int = 380) -> alt.Chart | None:
    """tr H per run (median over seeds), log y axis."""
    frame = long[(long["metric"] == "hessian_trace") & (long["value"] > 0)]
    if frame.empty:
        return None
    summary = seed_summary(frame)
    return alt.Chart(summary).mark_line(strokeWidth=1.8).encode(
        x=alt.X("step:Q", title="iteration", axis=alt.Axis(format=X_FORMAT)),
        y=alt.Y("median:Q", title="tr H", scale=alt.Scale(type="log")), color=color(labels),
        tooltip=["label", alt.Tooltip("step:Q", format=","), alt.Tooltip("median:Q", title="tr H", format=".4g")],
    ).properties(title="Trace of the loss's Hessian", height=height, width="container")


def sharpness_section(long: pd.DataFrame, labels: list[str]) -> None:
    """Both charts side by side with what to look at; nothing when the job did not track the sharpness."""
    chart = sharpness_chart(long, labels)
    if chart is None:
        return
    st.subheader("Sharpness against 2/η")
    look_at("gradient descent converges only where λ_max < 2/η (dashed, the run's colour; it jumps up at the "
            "decay). The large full-batch steps stabilize with λ_max above 2/η: the loss hovers instead of "
            "falling; after the decay λ_max lies below the new 2/η and the loss converges. SGD's full-batch λ_max "
            "stays far below 2/η: its steps follow one sample's curvature, whose mean is the trace (right).")
    left, right = st.columns(2)
    left.altair_chart(chart, width="stretch")
    trace = trace_chart(long, labels)
    if trace is not None:
        right.altair_chart(trace, width="stretch")
