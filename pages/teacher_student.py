"""Teacher-student ReLU nets (paper Sec. 3.2, Fig. 5, 6, 11): large steps pull the neurons onto the teacher."""

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from engine.relu import teacher_student as ts
from ui.charts import decay_rules, metric_chart, palette, run_order, waiting
from ui.jobs import downloads, live, run_controls
from ui.labels import metric
from ui.links import sweep_button
from ui.paper import definitions, expected_vs_obtained, header, look_at
from ui.shell import ensure_shell
from ui.tables import finals_frame, histories_frame, seed_counts
from ui.widgets import checkpoint_scrubber, settings

ensure_shell()  # a deep link on a fresh server runs this file alone: app.py's shell first

EXPERIMENT, PREFIX = "teacher_student", "ts_"
FIELDS = ["depth", "d", "n", "teacher_width", "student_width", "init_scale", "output_init", "teacher_scale",
          "steps", "seed", "seeds", "dtype", "device", "checkpoints", "align_degrees"]
RUNS_HELP = ("lr_i = lr (1 + (W − 1)(i/N)^e) for i ≤ at·N, then divided by `decay` and held. `at` = 1: no "
             "decay. A step size beyond the edge of stability of the init blows up: the run ends 'diverged'.")
SCATTER = 180  # px: square plot areas on one shared range, so the angles and lengths of neurons read true

header("Teacher-student ReLU nets: neurons", "Sec. 3.2, Fig. 5, 6 and 11",
       "A student ReLU net learns labels from a small teacher net on n points of the unit sphere (SGD, batch 1, "
       "MSE). Small steps stay lazy: the neurons (first-layer rows) barely move. Large steps bounce, and the "
       "neurons gather along the teacher's directions; the test loss, rank φ(X) and the feature sparsity fall. "
       "Fig. 5: two layers in 2D; Fig. 6: three layers in 5D")
definitions("teacher directions", "alignment", "test loss", "rank φ(X)", "τ", "feature sparsity")


# ---- settings (sidebar widgets and the runs table), bound to the URL so a link reproduces them
preset, config = settings(ts.PRESETS, ts.Config, PREFIX, FIELDS, runs_help=RUNS_HELP)
job = run_controls(EXPERIMENT, config, preset,
                   extra=lambda: sweep_button(EXPERIMENT, preset, ts.PRESETS[preset].config, config))


def neuron_key(view: dict) -> str:
    """Where the neurons' drawn coordinates are: 2D inputs as they are, else projected on a plane."""
    return "w" if view["extras"]["teacher"]["d"] == 2 else "projection"


def teacher_arrows(view: dict) -> np.ndarray:
    flat = view["extras"]["teacher"]["d"] == 2
    return np.asarray(view["extras"]["teacher"]["directions" if flat else "projection"], dtype=float)


def shared_range(view: dict, runs: list[dict]) -> float:
    """Half-width of the one square range every scatter uses: the teacher arrows and every neuron of the runs that
    did not diverge, at init and at every stored checkpoint."""
    key = neuron_key(view)
    points = [teacher_arrows(view), np.asarray(view["extras"]["neurons_init"][key], dtype=float)]
    for r in runs:
        if r["status"] != "diverged":
            points += [np.asarray(s["value"][key], dtype=float) for s in r["snapshots"].get("neurons", [])]
    values = np.abs(np.concatenate([p.reshape(-1) for p in points]))
    values = values[np.isfinite(values)]
    return 1.05 * float(values.max()) if values.size else 1.0


def neuron_chart(view: dict, run: dict, step: int, title: str, half: float, hue: str) -> alt.Chart:
    """Teacher directions as arrows from the origin; each student neuron at init (hollow), at `step` (filled, in the
    run's colour) and the segment between, on the square [-half, half]² (equal aspect)."""
    flat = view["extras"]["teacher"]["d"] == 2
    key = neuron_key(view)
    teacher = teacher_arrows(view)
    init = np.asarray(view["extras"]["neurons_init"][key], dtype=float)
    snaps = [s for s in run["snapshots"].get("neurons", []) if s["step"] <= step]
    now = np.asarray(snaps[-1]["value"][key], dtype=float) if snaps else init
    moves = pd.DataFrame(dict(x=init[:, 0], y=init[:, 1], x2=now[:, 0], y2=now[:, 1]))
    arrows = pd.DataFrame(dict(x=0.0, y=0.0, x2=teacher[:, 0], y2=teacher[:, 1]))
    scale = alt.Scale(domain=[-half, half], nice=False)
    x_title, y_title = ("w₁", "w₂") if flat else ("along w*₁", "across, in the plane of w*₁, w*₂")
    layers = [
        alt.Chart(arrows).mark_rule(color="black", strokeWidth=2, clip=True).encode(
            x=alt.X("x:Q", title=x_title, scale=scale, axis=alt.Axis(format=".2~g")),
            y=alt.Y("y:Q", title=y_title, scale=scale, axis=alt.Axis(format=".2~g")), x2="x2:Q", y2="y2:Q"),
        alt.Chart(arrows).mark_point(shape="triangle", color="black", filled=True, size=50, clip=True).encode(
            x="x2:Q", y="y2:Q"),
        alt.Chart(moves).mark_rule(color=hue, strokeWidth=1, opacity=0.35, clip=True).encode(
            x="x:Q", y="y:Q", x2="x2:Q", y2="y2:Q"),
        alt.Chart(moves).mark_point(color="gray", size=25, clip=True).encode(x="x:Q", y="y:Q"),
        alt.Chart(moves).mark_circle(color=hue, size=40, opacity=0.9, clip=True).encode(x="x2:Q", y="y2:Q"),
    ]
    # autosize "pad": width and height are the plot area itself (Streamlit's default "fit" squeezes it unevenly)
    return alt.layer(*layers).properties(title=title, width=SCATTER, height=SCATTER,
                                         autosize=alt.AutoSizeParams(type="pad"))


def diverged_counts(view: dict, labels: list[str]) -> None:
    """Per run, in how many seeds it diverged (a step beyond the edge of stability of that seed's init)."""
    diverged = seed_counts(view, labels, [r for r in view["runs"] if r["status"] == "diverged"])
    if diverged:
        st.warning(f"Diverged (beyond the edge of stability of the init): {diverged}")


def metric_panels(depth: int) -> list[tuple[str, str, bool]]:
    """(metric, title, log scale) of the charts below the scatters. The alignment share is left out for three
    layers: there it is 0 for every run (see the caption), so it would say nothing."""
    sparsity = ["feature_sparsity"] if depth == 2 else [f"feature_sparsity_l{k}" for k in range(1, depth)]
    return [("train_loss", "Train loss", True), ("test_loss", "Test loss", True),
            ("ntk_rank", "rank φ(X) (τ = 1e-4, p fresh inputs)", False),
            *([("alignment", f"Share of neurons within {config.align_degrees:g}° of a teacher direction", False)]
              if depth == 2 else []),
            *[(m, f"Feature sparsity, hidden layer {m[-1] if m[-1].isdigit() else 1} (c = "
                  f"{config.corr_threshold:g})", False) for m in sparsity],
            ("lr", "Step size η", False)]


def draw(view: dict) -> None:
    waiting(view, "compiling the training loop (first run of the server only) and drawing data, teacher and inits")
    long = histories_frame(view)
    if long.empty or "teacher" not in view["extras"]:
        return
    labels = run_order(view)
    hues = palette(labels)
    rules = decay_rules([r.to_dict() for r in config.runs], config.steps, at_key="at")
    diverged_counts(view, labels)
    first = [r for r in view["runs"] if r["seed"] == config.seed]   # only the first seed stores neurons
    step = checkpoint_scrubber(dict(view, runs=first), "neurons", "ts")
    if step is not None:
        plane = "" if config.d == 2 else " (projected on the plane of the first two teacher directions)"
        look_at("with the small step the neurons (dots) stay near their init (hollow); with large steps they "
                "move out and gather along the black teacher arrows.")
        st.caption(f"Drawn checkpoint: iteration {step:,}. Black arrows: teacher directions; gray: neurons at "
                   f"init; coloured: neurons now, in their run's colour{plane}. Seed {config.seed}; every panel "
                   "has the same square range.")
        half = shared_range(view, first)
        cols = st.columns(min(len(first), 4))
        for i, run in enumerate(first):
            title = f"{run['label']} (seed {config.seed}" + (", diverged)" if run["status"] == "diverged" else ")")
            cols[i % len(cols)].altair_chart(neuron_chart(view, run, step, title, half, hues[run["label"]]),
                                             width="content")
    charts = metric_panels(config.depth)
    look_at("train loss stabilizes during the large-step phase (dashed: decays) while the test loss, rank φ(X) "
            "and feature sparsity fall below the small step's.")
    if config.seeds > 1:
        st.caption(f"Curves: median over seeds {config.seed}–{config.seed + config.seeds - 1}, band: 10–90%.")
    if config.depth != 2:
        st.caption(f"No alignment panel for three layers: the first-layer neurons carry biases and feed a second "
                   f"hidden layer, so they do not gather on the teacher's directions; in d = {config.d} the share "
                   f"within {config.align_degrees:g}° stays 0 for every run (measured on Fig. 6), so the sparsity "
                   "of each hidden layer tells the story instead.")
    for i in range(0, len(charts), 2):
        cols = st.columns(2)
        for col, (name, title, log) in zip(cols, charts[i:i + 2]):
            y_title = "share aligned" if name == "alignment" else None   # the long name would squeeze the plot
            col.altair_chart(metric_chart(long, name, title, labels, log=log, rules=rules, y_title=y_title),
                             width="stretch")
    if view["status"] != "running":
        expected_vs_obtained(EXPERIMENT, preset, view)
        st.subheader("Final values")
        shown = [m for m, _, _ in charts if m != "lr"]
        finals = finals_frame(view, shown).rename(columns=metric)
        st.dataframe(finals, hide_index=True, width="stretch",
                     column_config={metric(m): st.column_config.NumberColumn(format="%.4g") for m in shown})
        downloads(view, f"teacher_student_{preset}")


live(job, draw, "Press Run to train every run of the table in the background.")
