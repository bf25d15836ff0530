"""Teacher-student ReLU nets (paper Sec. 3.2, Fig. 5, 6, 11): large steps pull the neurons onto the teacher."""

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from engine.experiments import teacher_student as ts
from ui.charts import decay_rules, metric_chart, run_order
from ui.jobs import downloads, live, run_controls
from ui.links import sweep_button
from ui.shell import ensure_shell
from ui.tables import finals_frame, histories_frame
from ui.widgets import checkpoint_scrubber, settings

ensure_shell()  # a deep link on a fresh server runs this file alone: app.py's shell first

EXPERIMENT, PREFIX = "teacher_student", "ts_"
FIELDS = ["depth", "d", "n", "teacher_width", "student_width", "init_scale", "output_init", "teacher_scale",
          "steps", "seed", "seeds", "dtype", "device", "checkpoints", "align_degrees"]
RUNS_HELP = ("lr_i = lr (1 + (W − 1)(i/N)^e) for i ≤ at·N, then divided by `decay` and held. `at` = 1: no "
             "decay. A step size beyond the edge of stability of the init blows up: the run ends 'diverged'.")

st.title("Teacher-student ReLU nets: neurons")
st.caption("A student ReLU net learns labels from a small teacher net on n points of the unit sphere (SGD, batch 1, "
           "MSE). Small steps stay lazy: the neurons (first-layer rows) barely move. Large steps bounce, and the "
           "neurons gather along the teacher's directions; the test loss, the rank of φ and the feature "
           "sparsity fall. Fig. 5: two layers in 2D; Fig. 6: three layers in 5D.")


# ---- settings (sidebar widgets and the runs table), bound to the URL so a link reproduces them
preset, config = settings(ts.PRESETS, ts.Config, PREFIX, FIELDS, runs_help=RUNS_HELP)
job = run_controls(EXPERIMENT, config, preset,
                   extra=lambda: sweep_button(EXPERIMENT, preset, ts.PRESETS[preset].config, config))


def neuron_chart(view: dict, run: dict, step: int, title: str) -> alt.Chart:
    """Teacher directions as arrows from the origin; each student neuron at init (hollow), at `step` (filled) and
    the segment between (2D inputs as they are, else projected on the plane of two teacher directions)."""
    flat = view["extras"]["teacher"]["d"] == 2
    key = "w" if flat else "projection"
    teacher = np.asarray(view["extras"]["teacher"]["directions" if flat else "projection"], dtype=float)
    init = np.asarray(view["extras"]["neurons_init"][key], dtype=float)
    snaps = [s for s in run["snapshots"].get("neurons", []) if s["step"] <= step]
    now = np.asarray(snaps[-1]["value"][key], dtype=float) if snaps else init
    moves = pd.DataFrame(dict(x=init[:, 0], y=init[:, 1], x2=now[:, 0], y2=now[:, 1]))
    arrows = pd.DataFrame(dict(x=0.0, y=0.0, x2=teacher[:, 0], y2=teacher[:, 1]))
    layers = [
        alt.Chart(arrows).mark_rule(color="black", strokeWidth=2).encode(x="x:Q", y="y:Q", x2="x2:Q", y2="y2:Q"),
        alt.Chart(arrows).mark_point(shape="triangle", color="black", filled=True, size=50).encode(
            x="x2:Q", y="y2:Q"),
        alt.Chart(moves).mark_rule(color="#9ecae9", strokeWidth=1).encode(x="x:Q", y="y:Q", x2="x2:Q", y2="y2:Q"),
        alt.Chart(moves).mark_point(color="gray", size=25).encode(x=alt.X("x:Q", title=None),
                                                                  y=alt.Y("y:Q", title=None)),
        alt.Chart(moves).mark_circle(color="#4c78a8", size=40, opacity=0.9).encode(x="x2:Q", y="y2:Q"),
    ]
    return alt.layer(*layers).properties(title=title, height=260, width="container")


def diverged_counts(view: dict, labels: list[str]) -> None:
    """Per run, in how many seeds it diverged (a step beyond the edge of stability of that seed's init)."""
    diverged = [r for r in view["runs"] if r["status"] == "diverged"]
    parts = []
    for lab in labels:
        mine, total = [r for r in diverged if r["label"] == lab], sum(r["label"] == lab for r in view["runs"])
        if mine:
            note = f" ({mine[0]['message']})" if len(mine) == 1 and mine[0]["message"] else ""
            parts.append(f"{lab}: {len(mine)} of {total} seed{'s' * (total > 1)}{note}")
    if parts:
        st.warning("Diverged (beyond the edge of stability of the init): " + "; ".join(parts))


def draw(view: dict) -> None:
    long = histories_frame(view)
    if long.empty or "teacher" not in view["extras"]:
        return
    labels = run_order(view)
    rules = decay_rules([r.to_dict() for r in config.runs], config.steps, at_key="at")
    diverged_counts(view, labels)
    first = [r for r in view["runs"] if r["seed"] == config.seed]   # only the first seed stores neurons
    step = checkpoint_scrubber(dict(view, runs=first), "neurons", "ts")
    if step is not None:
        plane = "" if config.d == 2 else " (projected on the plane of two teacher directions)"
        st.caption(f"Drawn checkpoint: iteration {step:,}. Black arrows: teacher directions; gray: neurons at "
                   f"init; blue: neurons now{plane}. Seed {config.seed}.")
        cols = st.columns(min(len(first), 4))
        for i, run in enumerate(first):
            title = f"{run['label']} (seed {config.seed}" + (", diverged)" if run["status"] == "diverged" else ")")
            cols[i % len(cols)].altair_chart(neuron_chart(view, run, step, title), width="stretch")
    sparsity = (["feature_sparsity"] if config.depth == 2
                else [f"feature_sparsity_l{k}" for k in range(1, config.depth)])
    charts = [("train_loss", "Train loss", True), ("test_loss", "Test loss", True),
              ("ntk_rank", "rank φ (τ = 1e-4, p fresh inputs)", False),
              ("alignment", f"Share of neurons within {config.align_degrees:g}° of a teacher direction", False),
              *[(m, f"Feature sparsity, hidden layer {m[-1] if m[-1].isdigit() else 1} (c = "
                    f"{config.corr_threshold:g})", False) for m in sparsity],
              ("lr", "Step size", False)]
    if config.seeds > 1:
        st.caption(f"Curves: median over seeds {config.seed}–{config.seed + config.seeds - 1}, band: 10–90%.")
    for i in range(0, len(charts), 2):
        cols = st.columns(2)
        for col, (metric, title, log) in zip(cols, charts[i:i + 2]):
            col.altair_chart(metric_chart(long, metric, title, labels, log=log, rules=rules), width="stretch")
    if view["status"] != "running":
        st.subheader("Final values")
        finals = finals_frame(view, ["train_loss", "test_loss", "ntk_rank", "alignment", *sparsity])
        st.dataframe(finals, hide_index=True, width="stretch",
                     column_config={m: st.column_config.NumberColumn(format="%.4g")
                                    for m in ("train_loss", "test_loss")})
        downloads(view, f"teacher_student_{preset}")


live(job, draw, "Press Run to train every run of the table in the background.")
