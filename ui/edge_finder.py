"""The diagonal page's edge finder: largest surviving SGD step on the current data, then set large steps
as a fraction of it (the sparsifying window sits just below the edge and moves with the data)."""

from __future__ import annotations

import json

import altair as alt
import pandas as pd
import streamlit as st

from engine.experiments import diagonal_edge
from engine.experiments.diagonal import DiagonalConfig
from ui.jobs import live, run_controls
from ui.widgets import build_config, config_widgets

PREFIX = "edge_"


def edge_finder(config: DiagonalConfig, runs_key: str) -> None:
    """An expander that searches the edge in the background and can rewrite the runs table's step sizes."""
    with st.expander("Edge finder: the largest step size at which SGD survives on this data"):
        st.caption("Bisection on a constant step size, separately for each sampling seed, all advanced together "
                   "in one compiled loop. A run that survives this many steps can still diverge later, so a "
                   "long run's edge lies at or below the estimate.")
        sgd_runs = [r for r in config.runs if r.algorithm == "SGD"]
        base = diagonal_edge.EdgeConfig(
            n=config.n, d=config.d, r=config.r, init_scale=config.init_scale, data_seed=config.data_seed,
            first_seed=config.first_seed, batch_size=sgd_runs[0].batch_size if sgd_runs else 1)
        values = config_widgets(base, ["seeds", "steps", "batch_size"], PREFIX, columns=3)
        edge_config = build_config(diagonal_edge.Config, base, values)
        if edge_config is None:
            return
        job = run_controls("diagonal_edge", edge_config, None, label="Find the edge")
        live(job, lambda view: _show_edge(view, config, runs_key), "Press Find the edge to search.")


def _show_edge(view: dict, config: DiagonalConfig, runs_key: str) -> None:
    edge = view["extras"].get("edge")
    if not edge:
        return
    st.markdown(f"**Edge ≈ {edge['median']:.4f}** (median over {len(edge['seeds'])} seeds; "
                f"min {edge['min']:.4f}, max {edge['max']:.4f}; {edge['steps']} steps, batch {edge['batch_size']}).")
    per_seed = pd.DataFrame(dict(seed=[str(s) for s in edge["seeds"]], edge=edge["edges"]))
    st.altair_chart(alt.Chart(per_seed).mark_bar().encode(
        x=alt.X("edge:Q", title="largest surviving step size", scale=alt.Scale(zero=False)),
        y=alt.Y("seed:N", title="sampling seed"), tooltip=["seed", alt.Tooltip("edge:Q", format=".4f")],
    ).properties(height=28 * len(per_seed) + 40), width="stretch")
    sgd = [r.name for r in config.runs if r.algorithm == "SGD"]
    if not sgd:
        return
    small = min(r.lr for r in config.runs if r.algorithm == "SGD")
    default = [r.name for r in config.runs if r.algorithm == "SGD" and r.lr > small] or sgd
    left, right = st.columns([1, 2])
    fraction = left.slider("Large step = fraction of the smallest edge", 0.5, 1.0, 0.95, 0.01, key="edge_fraction")
    targets = right.multiselect("Runs to set", sgd, default=default, key="edge_targets")
    lr = round(fraction * edge["min"], 5)
    if st.button(f"Set their step size to {lr:g}", key="edge_apply", disabled=not targets):
        rows = [dict(r.to_dict(), lr=lr) if r.name in targets else r.to_dict() for r in config.runs]
        st.session_state.pop(f"{runs_key}_editor", None)
        st.query_params[runs_key] = json.dumps(rows, separators=(",", ":"))
        st.rerun()
