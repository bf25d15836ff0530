"""Two-layer ReLU net on 1D regression (paper Sec. 3.2, Fig. 4, 9, 10): a long large-step phase leaves few kinks."""

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from engine.relu import relu1d
from engine.relu.claims import STUCK_LOSS
from ui.charts import color, decay_rules, metric_chart, run_order, waiting
from ui.jobs import downloads, live, run_controls
from ui.labels import metric
from ui.links import sweep_button
from ui.paper import definitions, expected_vs_obtained, header, look_at
from ui.shell import ensure_shell
from ui.tables import finals_frame, histories_frame, seed_counts
from ui.widgets import checkpoint_scrubber, settings

ensure_shell()  # a deep link on a fresh server runs this file alone: app.py's shell first

EXPERIMENT, PREFIX = "relu1d", "relu_"
FIELDS = ["width", "w_init", "b_init", "a_init", "steps", "seed", "seeds", "dtype", "device", "checkpoints",
          "kink_tol"]
RUNS_HELP = "lr_i = lr (1 + (W − 1)(i/N)^e) for i ≤ at·N, then divided by `decay` and held. `at` = 1: no decay."
MARGIN = 1.5  # the predictor charts show the labels' range plus this much above and below

header("ReLU net on 1D regression: kinks", "Sec. 3.2, Fig. 4, 9 and 10",
       "h(x) = Σⱼ aⱼ relu(wⱼ x + bⱼ) with 100 units fits 12 points by SGD (batch 1, MSE). The step size warms up "
       "linearly to W·lr over the first s of training, then decays. A long large-step phase keeps the loss "
       "bouncing near 10^-0.5 while the predictor simplifies: fewer kinks, a lower rank φ(X) and a lower feature "
       "sparsity; then it fits (Fig. 10). Too long or too large and it no longer fits (Fig. 9)")
definitions("kinks", "rank φ(X)", "τ", "feature sparsity", "warmup", "over-regularization")


# ---- settings (sidebar widgets and the runs table), bound to the URL so a link reproduces them
preset, config = settings(relu1d.PRESETS, relu1d.Config, PREFIX, FIELDS, runs_help=RUNS_HELP)
job = run_controls(EXPERIMENT, config, preset,
                   extra=lambda: sweep_button(EXPERIMENT, preset, relu1d.PRESETS[preset].config, config))


def first_seed(view: dict) -> dict:
    """The view with the first seed's runs only: they alone carry predictor snapshots."""
    return dict(view, runs=[r for r in view["runs"] if r["seed"] == config.seed])


def outcome_counts(view: dict, labels: list[str]) -> None:
    """Per run, in how many seeds it diverged, and in how many it ended stuck above STUCK_LOSS (Fig. 9)."""
    diverged = seed_counts(view, labels, [r for r in view["runs"] if r["status"] == "diverged"])
    stuck = seed_counts(view, labels, [r for r in view["runs"] if r["status"] == "done"
                                       and (r["final"].get("train_loss") or 0) > STUCK_LOSS])
    if diverged:
        st.warning(f"Diverged: {diverged}")
    if stuck:
        st.info(f"Stuck (final train loss > {STUCK_LOSS:g}: over-regularized as in Fig. 9, or too few steps "
                f"to fit): {stuck}")


def predictor_frame(view: dict, step: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predictor curves and kink positions of every run at checkpoint `step` (the nearest stored one before it)."""
    grid = view["extras"]["data"]["grid"]
    curves, marks = [], []
    for r in view["runs"]:
        snaps = [s for s in r["snapshots"].get("predictor", []) if s["step"] <= step]
        if not snaps:
            continue
        snap = snaps[-1]["value"]
        curves.append(pd.DataFrame(dict(x=grid, h=snap["y"], label=r["label"])))
        ys = np.interp(snap["kinks"], grid, snap["y"]) if snap["kinks"] else []
        marks.append(pd.DataFrame(dict(x=snap["kinks"], h=ys, label=r["label"])))
    empty = pd.DataFrame(columns=["x", "h", "label"])
    return (pd.concat(curves) if curves else empty), (pd.concat(marks) if marks else empty)


def off_scale(view: dict, step: int, slack: float = 0.0) -> tuple[float, float] | None:
    """The range of h at `step` when some predictor leaves the drawn range (the labels' plus the margin) by more
    than `slack`, else None."""
    y = view["extras"]["data"]["y"]
    curves, _ = predictor_frame(view, step)
    h = pd.to_numeric(curves["h"], errors="coerce").dropna()
    if h.empty or (h.min() >= min(y) - MARGIN - slack and h.max() <= max(y) + MARGIN + slack):
        return None
    return float(h.min()), float(h.max())


def predictor_chart(view: dict, step: int, labels: list[str], title: str, height: int = 320,
                    legend: bool = True, own_scale: bool = False) -> alt.Chart:
    """The 12 points, each run's predictor and its kinks (triangles) at one checkpoint; the y axis is held to
    the labels' range (plus a margin) so early, wild predictors do not squash the picture, unless `own_scale`
    and the predictors lie far outside it (then it spans them and the labels)."""
    data = view["extras"]["data"]
    points = pd.DataFrame(dict(x=data["x"], y=data["y"]))
    curves, marks = predictor_frame(view, step)
    hue = color(labels, legend=legend)
    lo, hi = min(data["y"]) - MARGIN, max(data["y"]) + MARGIN
    if own_scale and (extent := off_scale(view, step, slack=MARGIN)):
        lo, hi = min(lo, extent[0]), max(hi, extent[1])
    y_scale = alt.Scale(domain=[lo, hi], nice=False)  # exactly the range the notes about clipping refer to
    layers = [alt.Chart(curves).mark_line(strokeWidth=2, clip=True).encode(
                  x=alt.X("x:Q", title="x"), y=alt.Y("h:Q", title="h(x)", scale=y_scale,
                                                     axis=alt.Axis(format=".3~g")), color=hue),
              alt.Chart(marks).mark_point(shape="triangle-up", size=60, filled=True, clip=True).encode(
                  x="x:Q", y="h:Q", color=hue, tooltip=["label", alt.Tooltip("x:Q", format=".3f")]),
              alt.Chart(points).mark_circle(size=50, color="black").encode(x="x:Q", y="y:Q")]
    return alt.layer(*layers).properties(title=title, height=height, width="container")


def fig10_strip(first: dict, labels: list[str]) -> None:
    """Fig. 10: one run's predictor at 5 checkpoints spread over training; a panel whose predictor leaves the
    labels' range by more than the margin (at t = 0 the init lies far from them) gets its own y scale, said in
    its title and a caption."""
    st.subheader(f"Fig. 10: first it simplifies, then it fits (seed {config.seed})")
    look_at("the curve first loses kinks (triangles) while it still misses points, and only later bends through "
            "all 12 of them.")
    run = st.selectbox("Run", labels, index=len(labels) - 1, key="relu_strip_run")
    one = dict(first, runs=[r for r in first["runs"] if r["label"] == run])
    snaps = one["runs"][0]["snapshots"].get("predictor", []) if one["runs"] else []
    spread = np.unique(np.linspace(0, len(snaps) - 1, 5).round().astype(int)) if snaps else []
    picks = [snaps[i]["step"] for i in spread]
    notes = []
    for col, s in zip(st.columns(max(len(picks), 1)), picks):
        extent = off_scale(one, s, slack=MARGIN)
        title = f"t = {s:,}" + (" (own y scale)" if extent else "")
        if extent:
            notes.append(f"t = {s:,}: h from {extent[0]:.3g} to {extent[1]:.3g}")
        col.altair_chart(predictor_chart(one, s, labels, title, height=180, legend=False, own_scale=True),
                         width="stretch")
    if notes:
        st.caption("Panels share the labels' y range, except where the predictor lies far outside it (own y scale: "
                   + "; ".join(notes) + ").")


def draw(view: dict) -> None:
    waiting(view, "compiling the training loop (first run of the server only) and drawing the inits")
    long = histories_frame(view)
    if long.empty or "data" not in view["extras"]:
        return
    labels = run_order(view)
    rules = decay_rules([r.to_dict() for r in config.runs], config.steps, at_key="at")
    outcome_counts(view, labels)
    first = first_seed(view)
    look_at("the train loss stalls near 10^-0.5 during the large-step phase (dashed: decay), and meanwhile the "
            "predictor sheds kinks; after the decay the simplified predictor fits.")
    step = checkpoint_scrubber(first, "predictor", "relu")
    left, right = st.columns([3, 2])
    if step is not None:
        left.altair_chart(predictor_chart(first, step, labels, f"Predictor and its kinks at iteration {step:,} "
                                          f"(seed {config.seed})"), width="stretch")
        extent = off_scale(first, step)
        clipped = f" The predictor leaves the drawn range (h from {extent[0]:.3g} to {extent[1]:.3g})." if extent \
            else ""
        left.caption(f"Drawn checkpoint: iteration {step:,}. Triangles: kinks inside the data range.{clipped}")
    right.altair_chart(metric_chart(long, "train_loss", "Train loss", labels, log=True, rules=rules),
                       width="stretch")
    if config.seeds > 1:
        right.caption(f"Curves: median over seeds {config.seed}–{config.seed + config.seeds - 1}, band: 10–90%.")
    look_at("the long large-step phase ends lowest on all three measures of simplicity: rank φ(X), feature "
            "sparsity and kinks.")
    charts = [("ntk_rank", "rank φ(X) (τ = 1e-4, p fresh inputs)", False),
              ("feature_sparsity", f"Feature sparsity (c = {config.corr_threshold:g})", False),
              ("kinks", "Kinks in the data range", False), ("lr", "Step size η", False)]
    for row in (charts[:2], charts[2:]):
        cols = st.columns(2)
        for col, (name, title, log) in zip(cols, row):
            col.altair_chart(metric_chart(long, name, title, labels, log=log, rules=rules), width="stretch")
    if view["status"] != "running":
        fig10_strip(first, labels)
        expected_vs_obtained(EXPERIMENT, preset, view)
        st.subheader("Final values")
        finals = finals_frame(view, ["train_loss", "ntk_rank", "feature_sparsity", "kinks"]).rename(columns=metric)
        st.dataframe(finals, hide_index=True, width="stretch",
                     column_config={metric("train_loss"): st.column_config.NumberColumn(format="%.4g"),
                                    metric("feature_sparsity"): st.column_config.NumberColumn(format="%.3g")})
        downloads(view, f"relu1d_{preset}")


live(job, draw, "Press Run to train every run of the table in the background.")
