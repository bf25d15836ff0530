"""Diagonal linear networks (paper Sec. 3.1, Fig. 2, 3, 8): large steps + SGD noise sparsify u ⊙ v."""

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from engine.experiments import diagonal
from ui.charts import decay_rules, metric_chart, run_order
from ui.edge_finder import edge_finder
from ui.jobs import downloads, live, run_controls
from ui.links import sweep_button
from ui.shell import ensure_shell
from ui.tables import finals_frame, histories_frame
from ui.widgets import settings

ensure_shell()  # a deep link on a fresh server runs this file alone: app.py's shell first

EXPERIMENT, PREFIX = "diagonal", "diag_"
FIELDS = ["n", "d", "r", "init_scale", "steps", "data_seed", "seeds", "first_seed"]
RUNS_HELP = ("Edit the table to change step sizes and schedules, add or delete runs. SDE = Euler–Maruyama of the "
             "paper's Eq. 8 at the loss level `noise_level`. `decay_at` = 1 means no decay.")

st.title("Diagonal linear networks")
st.caption("h(x) = ⟨u ⊙ v, x⟩ trained by SGD from u = init_scale·1, v = 0 on sparse regression data "
           "(n samples, d dimensions, r-sparse β*). Large steps make the loss stabilize; meanwhile the noise "
           "shrinks coordinates of u ⊙ v, so the rank of the NTK feature matrix and ‖u ⊙ v‖₀ fall.")


# ---- settings (sidebar widgets and the runs table), bound to the URL so a link reproduces them
preset, config = settings(diagonal.PRESETS, diagonal.Config, PREFIX, FIELDS, runs_help=RUNS_HELP)

edge_finder(config, f"{PREFIX}runs")
job = run_controls(EXPERIMENT, config, preset,
                   extra=lambda: sweep_button(EXPERIMENT, preset, diagonal.PRESETS[preset].config, config))


def beta_chart(view: dict) -> alt.Chart | None:
    """Final β = u ⊙ v of every run (first seed) against β*, coordinate by coordinate."""
    star = view["extras"].get("beta_star")
    if star is None:
        return None
    rows = [pd.DataFrame(dict(coordinate=np.arange(len(star)), beta=star, label="β*"))]
    for r in view["runs"]:
        beta = r["snapshots"].get("beta")
        if beta is not None and r["seed"] == config.first_seed:
            rows.append(pd.DataFrame(dict(coordinate=np.arange(len(beta)), beta=beta, label=r["label"])))
    frame = pd.concat(rows)
    labels = ["β*", *run_order(view)]
    return alt.Chart(frame).mark_circle(size=22, opacity=0.75).encode(
        x=alt.X("coordinate:Q", title="coordinate i"), y=alt.Y("beta:Q", title="final β_i"),
        color=alt.Color("label:N", title=None, sort=labels, scale=alt.Scale(
            domain=labels, range=["black", *["#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b",
                                             "#b279a2", "#ff9da6", "#9d755d"][: len(labels) - 1]])),
        tooltip=["label", "coordinate", alt.Tooltip("beta:Q", format=".3g")],
    ).properties(title="Final β = u ⊙ v against β* (first seed)", height=260)


def plane_chart(view: dict) -> alt.Chart | None:
    """Fig. 3: train loss on the plane through the init spanned by the gradient-flow end point and w*,
    with the projected paths of every run."""
    plane = view["extras"].get("plane")
    if not plane:
        if view["extras"].get("plane_note"):
            st.info(f"Fig. 3 plane: {view['extras']['plane_note']}")
        return None
    a, b = np.asarray(plane["a"]), np.asarray(plane["b"])
    loss = np.asarray(plane["loss"], dtype=float)
    A, B = np.meshgrid(a, b, indexing="ij")
    grid = pd.DataFrame(dict(a=A.ravel(), b=B.ravel(), log_loss=np.log10(np.maximum(loss.ravel(), 1e-12))))
    da, db = (a[1] - a[0]) / 2, (b[1] - b[0]) / 2
    grid["a2"], grid["b2"], grid["a"], grid["b"] = grid.a + da, grid.b + db, grid.a - da, grid.b - db
    heat = alt.Chart(grid).mark_rect().encode(
        x=alt.X("a:Q", title=plane["axes"][0]), x2="a2", y=alt.Y("b:Q", title=plane["axes"][1]), y2="b2",
        color=alt.Color("log_loss:Q", title="log₁₀ train loss", scale=alt.Scale(scheme="viridis")))
    paths = []
    for r in view["runs"]:
        path = r["snapshots"].get("path")
        if path:
            p = np.asarray(path, dtype=float)
            paths.append(pd.DataFrame(dict(a=p[:, 0], b=p[:, 1], order=np.arange(len(p)), label=r["label"])))
    layers = [heat]
    if paths:
        labels = run_order(view)
        layers.append(alt.Chart(pd.concat(paths)).mark_line(strokeWidth=2).encode(
            x="a:Q", y="b:Q", order="order:Q", color=alt.Color("label:N", title="run", sort=labels,
                                                              scale=alt.Scale(scheme="set1"))))
    marks = pd.DataFrame(dict(a=[0.0, plane["star"][0]], b=[0.0, plane["star"][1]], point=["init", "w*"]))
    layers.append(alt.Chart(marks).mark_point(shape="diamond", size=90, filled=True, color="white").encode(
        x="a:Q", y="b:Q", tooltip=["point"]))
    return alt.layer(*layers).resolve_scale(color="independent").properties(
        title="Train loss on the plane of Fig. 3 with the projected trajectories", height=380)


def draw(view: dict) -> None:
    long = histories_frame(view)
    if long.empty:
        return
    labels = run_order(view)
    rules = decay_rules([r.to_dict() for r in config.runs], config.steps)
    diverged = [r for r in view["runs"] if r["status"] == "diverged"]
    if diverged:
        total = {lab: sum(r["label"] == lab for r in view["runs"]) for lab in labels}
        counts = {}
        for r in diverged:
            counts[r["label"]] = counts.get(r["label"], 0) + 1
        st.warning("Diverged (beyond the edge of stability for this data): " + "; ".join(
            f"{lab}: {k} of {total[lab]} seeds" + (f" ({next(r['message'] for r in diverged if r['label'] == lab)})"
                                                   if k == 1 else "") for lab, k in counts.items()))
    charts = [("train_loss", "Train loss", True), ("test_loss", "Test loss", True),
              ("ntk_rank", f"rank φ(X) (τ = {config.rank_tau:g}, {2 * config.d} fresh inputs)", False),
              ("l0_norm", "‖u ⊙ v‖₀", False)]
    for row in (charts[:2], charts[2:]):
        cols = st.columns(2)
        for col, (metric, title, log) in zip(cols, row):
            col.altair_chart(metric_chart(long, metric, title, labels, log=log, rules=rules), width="stretch")
    if view["status"] != "running":
        st.subheader("Final values")
        finals = finals_frame(view, ["train_loss", "test_loss", "ntk_rank", "l0_norm"])
        st.dataframe(finals, hide_index=True, width="stretch",
                     column_config={m: st.column_config.NumberColumn(format="%.4g")
                                    for m in ("train_loss", "test_loss")})
        left, right = st.columns(2)
        chart = beta_chart(view)
        if chart is not None:
            left.altair_chart(chart, width="stretch")
        plane = plane_chart(view)
        if plane is not None:
            right.altair_chart(plane, width="stretch")
        downloads(view, f"diagonal_{preset}")


live(job, draw, "Press Run to train every run of the table in the background.")
