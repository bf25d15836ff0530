"""The diagonal page's edge finder: the largest surviving SGD step on the current data, per seed, and the window
below it where the table's own schedules survive *and* sparsify, measured; then set the large steps there."""

from __future__ import annotations

import json

import altair as alt
import pandas as pd
import streamlit as st

from engine.diagonal import edge as diagonal_edge
from engine.diagonal.config import DiagonalConfig
from ui.charts import color
from ui.jobs import live, run_controls
from ui.widgets import build_config, config_widgets

PREFIX = "edge_"


def large_runs(config: DiagonalConfig) -> list:
    """The table's large-step runs: SGD runs above the smallest SGD step (all SGD runs when they share one)."""
    sgd = [r for r in config.runs if r.algorithm == "SGD"]
    if not sgd:
        return []
    small = min(r.lr for r in sgd)
    return [r for r in sgd if r.lr > small] or sgd


def edge_finder(config: DiagonalConfig, runs_key: str) -> None:
    """An expander that searches the edge and the window in the background and can set the large steps."""
    with st.expander("Edge finder: where the sparsifying steps are on this data"):
        st.caption("First the edge of stability: for each sampling seed, the largest constant step that survives "
                   "this many steps (a multi-section search, all seeds advancing together in one compiled loop). "
                   "The steps that sparsify sit in a narrow band just below it, and a few percent lower nothing "
                   "sparsifies; so the finder then trains the table's large-step schedules at 95-103% of the "
                   "edge for the full run, every seed, and proposes the step where most survive *and* sparsify "
                   "(‖u ⊙ v‖₀ ≤ 90% of d).")
        targets = large_runs(config)
        base = diagonal_edge.EdgeConfig(
            n=config.n, d=config.d, r=config.r, init_scale=config.init_scale, data_seed=config.data_seed,
            first_seed=config.first_seed, batch_size=targets[0].batch_size if targets else 1,
            window_runs=json.dumps([r.to_dict() for r in targets]) if targets else "", window_steps=config.steps)
        values = config_widgets(base, ["seeds", "steps", "batch_size"], PREFIX, columns=3)
        edge_config = build_config(diagonal_edge.Config, base, values)
        if edge_config is None:
            return
        job = run_controls("diagonal_edge", edge_config, None, label="Find the edge")
        live(job, lambda view: _show(view, config, runs_key), "Press Find the edge to search.")


def _show(view: dict, config: DiagonalConfig, runs_key: str) -> None:
    edge, window = view["extras"].get("edge"), view["extras"].get("window")
    if not edge:
        return
    st.markdown(f"**Edge ≈ {edge['median']:.4f}** (median over {len(edge['seeds'])} seeds; min {edge['min']:.4f}, "
                f"max {edge['max']:.4f}; constant step, {edge['steps']:,} steps, batch {edge['batch_size']}).")
    st.altair_chart(edge_chart(edge, window, config), width="stretch")
    if not window:
        return
    st.altair_chart(window_chart(window), width="stretch")
    lr = window["proposal"]
    st.markdown(f"**Proposal: {lr:.5g}** ({window['proposal_fraction']:.0%} of the median edge): "
                f"{window['proposal_sparsified']} of {window['total']} (run, seed) pairs survive and sparsify "
                f"there ({', '.join(window['runs'])}; seeds {window['seeds'][0]}–{window['seeds'][-1]}; "
                f"{window['steps']:,} steps).")
    lowest = window["lowest_sparsifying"]
    for run in large_runs(config):
        if lowest is None or run.lr < lowest:
            below = (1 - run.lr / window["edge"]) * 100
            st.warning(f"**{run.name}** at {run.lr:g} sits {below:.1f}% below the edge: too far below to sparsify "
                       f"(measured: no seed sparsifies below {lowest:.5g})." if lowest else
                       f"**{run.name}** at {run.lr:g}: no step measured here sparsifies.")
    names = [r.name for r in large_runs(config)]
    if window["proposal_sparsified"] == 0 or not names:
        st.info("No measured step sparsifies on this data: more steps, more seeds or another data seed may help.")
        return
    if st.button(f"Set {', '.join(names)} to {lr:.5g}", key="edge_apply"):
        rows = [dict(r.to_dict(), lr=lr) if r.name in names else r.to_dict() for r in config.runs]
        st.session_state.pop(f"{runs_key}_editor", None)
        st.session_state[f"{runs_key}_rows"] = rows
        st.query_params[runs_key] = json.dumps(rows, separators=(",", ":"))
        st.rerun()


def edge_chart(edge: dict, window: dict | None, config: DiagonalConfig) -> alt.Chart:
    """Each seed's bracket [largest survivor, smallest divergence] on a scale zoomed to where they are, with the
    table's SGD steps and the proposal as vertical marks: 0.2787 and 0.2853 read apart."""
    seeds = pd.DataFrame(dict(seed=[f"seed {s}" for s in edge["seeds"]], edge=edge["edges"], upper=edge["upper"]))
    runs = [r for r in config.runs if r.algorithm == "SGD"]
    marks = pd.DataFrame(dict(label=[r.name for r in runs], lr=[r.lr for r in runs]))
    values = [*edge["edges"], *edge["upper"], *marks["lr"]] + ([window["proposal"]] if window else [])
    lo, hi = min(values), max(values)
    pad = max((hi - lo) * 0.08, 1e-4)
    x = alt.X("edge:Q", title="step size η", scale=alt.Scale(domain=[lo - pad, hi + pad], zero=False, nice=False),
              axis=alt.Axis(format=".4f"))
    bracket = alt.Chart(seeds).mark_rule(strokeWidth=6, opacity=0.5).encode(
        x=x, x2="upper:Q", y=alt.Y("seed:N", title=None),
        tooltip=["seed", alt.Tooltip("edge:Q", format=".5f", title="survives"),
                 alt.Tooltip("upper:Q", format=".5f", title="diverges")])
    dots = alt.Chart(seeds).mark_point(filled=True, size=80, color="black").encode(x=x, y="seed:N")
    layers = [bracket, dots]
    if len(marks):
        labels = [r.name for r in config.runs]
        layers.append(alt.Chart(marks).mark_rule(strokeDash=[5, 3], strokeWidth=2).encode(
            x=alt.X("lr:Q"), color=color(labels), tooltip=["label", alt.Tooltip("lr:Q", format=".5g")]))
    if window:
        proposal = pd.DataFrame(dict(lr=[window["proposal"]], text=["proposal"]))
        layers.append(alt.Chart(proposal).mark_rule(strokeWidth=3, color="#2ca02c").encode(x="lr:Q"))
        layers.append(alt.Chart(proposal).mark_text(dy=-8, color="#2ca02c", fontWeight="bold", baseline="bottom")
                      .encode(x="lr:Q", y=alt.value(0), text="text:N"))
    return alt.layer(*layers).properties(
        title="Edge per seed (bar: last step seen to survive → first seen to diverge), the table's SGD steps "
              "(dashed) and the proposal", height=40 * len(seeds) + 60)


def window_chart(window: dict) -> alt.Chart:
    """Per candidate step: how many (run, seed) pairs survived, and how many of those sparsified."""
    rows = []
    for p in window["candidates"]:
        rows.append(dict(lr=p["lr"], outcome="survived", count=p["survived"]))
        rows.append(dict(lr=p["lr"], outcome="survived and sparsified", count=p["sparsified"]))
    frame = pd.DataFrame(rows)
    return alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("lr:Q", title="step size η (the table's schedules, full length)", scale=alt.Scale(zero=False),
                axis=alt.Axis(format=".4f")),
        y=alt.Y("count:Q", title=f"of {window['total']} (run, seed) pairs", scale=alt.Scale(domain=[0,
                                                                                               window["total"]])),
        color=alt.Color("outcome:N", title=None, scale=alt.Scale(range=["#9e9e9e", "#2ca02c"])),
        tooltip=[alt.Tooltip("lr:Q", format=".5g"), "outcome", "count"],
    ).properties(title="The window below the edge, measured", height=220)
