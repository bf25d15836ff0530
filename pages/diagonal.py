"""Diagonal linear networks (paper Sec. 3.1, Fig. 2, 3, 8): large steps + SGD noise sparsify u ⊙ v."""

import streamlit as st

from engine.diagonal import experiment as diagonal
from ui.charts import decay_rules, metric_chart, run_order
from ui.diagonal_charts import beta_chart, plane_chart
from ui.edge_finder import edge_finder
from ui.jobs import downloads, live, run_controls
from ui.labels import metric as metric_label
from ui.links import sweep_button
from ui.paper import definitions, expected_vs_obtained, header, look_at
from ui.sharpness import sharpness_section
from ui.shell import ensure_shell
from ui.tables import finals_frame, histories_frame, seed_counts
from ui.widgets import settings

ensure_shell()  # a deep link on a fresh server runs this file alone: app.py's shell first

EXPERIMENT, PREFIX = "diagonal", "diag_"
FIELDS = ["n", "d", "r", "init_scale", "steps", "data_seed", "seeds", "first_seed"]
RUNS_HELP = ("Edit the table to change step sizes and schedules, add or delete runs. SDE = Euler–Maruyama of the "
             "paper's Eq. 8 at the loss level `noise_level`. `decay_at` = 1 means no decay.")

header("Diagonal linear networks", "Sec. 3.1, Fig. 2, 3, 8",
       "h(x) = ⟨u ⊙ v, x⟩ trained by SGD from u = init_scale·1, v = 0 on sparse regression data (n samples, d "
       "dimensions, r-sparse β*). Large steps make the loss stabilize; meanwhile the noise shrinks coordinates of "
       "u ⊙ v, so the rank of the NTK feature matrix φ(X) and ‖u ⊙ v‖₀ fall")
definitions("train loss", "rank φ(X)", "τ", "‖u ⊙ v‖₀", "edge of stability")


# ---- settings (sidebar widgets and the runs table), bound to the URL so a link reproduces them
preset, config = settings(diagonal.PRESETS, diagonal.Config, PREFIX, FIELDS, runs_help=RUNS_HELP)

edge_finder(config, f"{PREFIX}runs")
job = run_controls(EXPERIMENT, config, preset,
                   extra=lambda: sweep_button(EXPERIMENT, preset, diagonal.PRESETS[preset].config, config))


def draw(view: dict) -> None:
    long = histories_frame(view)
    if long.empty:
        return
    labels = run_order(view)
    rules = decay_rules([r.to_dict() for r in config.runs], config.steps)
    diverged = seed_counts(view, labels, [r for r in view["runs"] if r["status"] == "diverged"])
    if diverged:
        st.warning(f"Diverged (beyond the edge of stability for this data): {diverged}")
    charts = [("train_loss", "Train loss", True), ("test_loss", "Test loss", True),
              ("ntk_rank", f"rank φ(X) (τ = {config.rank_tau:g}, {2 * config.d} fresh inputs)", False),
              ("l0_norm", "‖u ⊙ v‖₀", False)]
    look_at("the large steps' train loss stops falling and hovers (near 10^-1.5 on Fig. 2's data) until their "
            "decay (dashed marks); meanwhile rank φ(X) and ‖u ⊙ v‖₀ fall, further for a longer large-step phase, "
            "while the small step stays dense. Several seeds: median with a 10–90% band.")
    for row in (charts[:2], charts[2:]):
        cols = st.columns(2)
        for col, (metric, title, log) in zip(cols, row):
            col.altair_chart(metric_chart(long, metric, title, labels, log=log, rules=rules,
                                          y_title=metric_label(metric)), width="stretch")
    sharpness_section(long, labels)
    if view["status"] != "running":
        expected_vs_obtained(EXPERIMENT, preset, view)
        st.subheader("Final values")
        metrics = ["train_loss", "test_loss", "ntk_rank", "l0_norm"]
        finals = finals_frame(view, metrics).rename(columns={m: metric_label(m) for m in metrics})
        st.dataframe(finals, hide_index=True, width="stretch",
                     column_config={metric_label(m): st.column_config.NumberColumn(format="%.4g")
                                    for m in ("train_loss", "test_loss")})
        look_at("a sparse solution keeps about r coordinates of β and drops the rest to zero, like β* (dashed); a "
                "dense one keeps all d. Fig. 3: GD and SGD leave the init on different paths.")
        left, right = st.columns(2)
        chart = beta_chart(view, config.first_seed)
        if chart is not None:
            left.altair_chart(chart, width="stretch")
        plane = plane_chart(view)
        if plane is not None:
            right.altair_chart(plane, width="stretch")
        elif view["extras"].get("plane_note"):
            right.info(f"Fig. 3 plane: {view['extras']['plane_note']}")
        downloads(view, f"diagonal_{preset}")


live(job, draw, "Press Run to train every run of the table in the background.")
