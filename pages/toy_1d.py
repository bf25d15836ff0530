"""Toy 1D model (paper Sec. 2.2, Prop. 3): the loss stabilizes because SGD bounces across the valley."""

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from engine.experiments import bouncing
from ui.charts import metric_chart, run_order
from ui.jobs import downloads, get_manager, live
from ui.shell import ensure_shell
from ui.tables import histories_frame
from ui.widgets import settings

ensure_shell()  # a deep link on a fresh server runs this file alone: app.py's shell first

EXPERIMENT, PREFIX = "bouncing", "toy_"
FIELDS = ["eta", "a", "b", "theta_star", "theta0", "steps", "n", "seed", "algorithms"]

st.title("Toy model: loss stabilization by bouncing")
st.caption("h(x) = x θ², labels y = x θ\\*², loss F(θ) = ¼ E(y − x θ²)², SGD θ ← θ + η θ x (y − x θ²). "
           "Prop. 3: for η in ((θ\\* a)⁻², 1.25 (θ\\* b)⁻²) the loss stays in a band and θ alternates sides of θ\\*.")


# ---- settings: preset + sliders, bound to the URL (bind="query-params") so a link reproduces them
preset, config = settings(bouncing.PRESETS, bouncing.Config, PREFIX, FIELDS,
                          sliders=("eta", "a", "b", "theta_star", "theta0", "steps"))

# ---- the Prop. 3 interval, stated before anything runs
lo, hi = bouncing.prop3_interval(config)
low, high = bouncing.loss_bounds(config)
if lo >= hi:
    st.warning(f"With a = {config.a}, b = {config.b} the Prop. 3 interval ({lo:.4g}, {hi:.4g}) is empty: "
               "the support of x is too wide (need b/a < √1.25 ≈ 1.118).")
elif lo < config.eta < hi:
    st.success(f"η = {config.eta:g} lies **inside** the Prop. 3 interval ({lo:.4g}, {hi:.4g}): expect the loss "
               f"to stay between {low:.3g} and {high:.3g} and θ to alternate sides of θ\\* = {config.theta_star:g}.")
elif config.eta <= lo:
    st.info(f"η = {config.eta:g} lies **below** the Prop. 3 interval ({lo:.4g}, {hi:.4g}): SGD should converge.")
else:
    st.info(f"η = {config.eta:g} lies **above** the Prop. 3 interval ({lo:.4g}, {hi:.4g}): no guarantee; "
            "far enough above, the iterates blow up.")
if not 0 < config.theta0 < config.theta_star:
    st.caption("Prop. 3 assumes 0 < θ₀ < θ\\*.")

# ---- the toy trains in ~0.1 s, so every change runs at once (same config = same cached job)
job = get_manager().submit(EXPERIMENT, config, preset=preset)


def cobweb(view: dict) -> alt.Chart:
    """The rescaled maps h_γ for the extreme γ, the identity, and the first steps of the SGD path."""
    grid = np.linspace(0, 1.4, 200)
    gammas = {"γ min (x = a)": config.eta * config.theta_star**2 * config.a**2,
              "γ max (x = b)": config.eta * config.theta_star**2 * config.b**2}
    curves = pd.concat([pd.DataFrame(dict(theta=grid, value=bouncing.h_map(g, grid), curve=name))
                        for name, g in gammas.items()] + [pd.DataFrame(dict(theta=grid, value=grid, curve="identity"))])
    layers = [alt.Chart(curves).mark_line(strokeWidth=1.2).encode(
        x=alt.X("theta:Q", title="θ / θ*", scale=alt.Scale(domain=[0, 1.4])),
        y=alt.Y("value:Q", title="h_γ(θ)", scale=alt.Scale(domain=[0, 1.4], clamp=True)),
        color=alt.Color("curve:N", title=None, scale=alt.Scale(range=["#4c78a8", "#e45756", "#999999"])))]
    run = next((r for r in view["runs"] if r["name"] == "SGD"), None) or (view["runs"] or [None])[0]
    if run is not None:
        th = np.asarray([v for v in run["history"].get("theta", []) if v is not None][:60]) / config.theta_star
        if len(th) > 1:
            # cobweb: (θ0, 0) -> (θ0, θ1) -> (θ1, θ1) -> (θ1, θ2) -> ...
            xs = np.concatenate([[th[0]], np.repeat(th[:-1], 2)[1:], [th[-1]]])
            ys = np.concatenate([[0.0], np.repeat(th[1:], 2)])
            path = pd.DataFrame(dict(x=xs, y=ys, order=np.arange(len(xs))))
            path = path[(path.x.abs() < 1.4) & (path.y.abs() < 1.4)]
            layers.append(alt.Chart(path).mark_line(color="black", strokeWidth=0.8, opacity=0.7).encode(
                x="x:Q", y="y:Q", order="order:Q"))
    return alt.layer(*layers).properties(title="Cobweb of h_γ, first 60 steps",
                                         height=300)


def bifurcation_chart(view: dict) -> alt.Chart | None:
    bif = view["extras"].get("bifurcation")
    if not bif:
        return None
    etas = np.asarray(bif["eta"])
    rows = []
    for name in ("sgd", "gd"):
        vals = np.asarray(bif[name], dtype=float)  # (count, keep)
        e = np.repeat(etas, vals.shape[1])
        v = vals.reshape(-1)
        ok = np.isfinite(v)
        rows.append(pd.DataFrame(dict(eta=e[ok], theta=v[ok], algorithm=name.upper())))
    points = pd.concat(rows)
    band = pd.DataFrame(dict(lo=[bif["interval"][0]], hi=[bif["interval"][1]]))
    shade = alt.Chart(band).mark_rect(opacity=0.15, color="green").encode(x="lo:Q", x2="hi:Q")
    dots = alt.Chart(points).mark_circle(size=4, opacity=0.5).encode(
        x=alt.X("eta:Q", title="step size η"), y=alt.Y("theta:Q", title="long-run θ", scale=alt.Scale(zero=False)),
        color=alt.Color("algorithm:N", scale=alt.Scale(range=["#e45756", "#4c78a8"])))
    now = alt.Chart(pd.DataFrame(dict(eta=[config.eta]))).mark_rule(color="black", strokeDash=[4, 3]).encode(x="eta:Q")
    blown = (np.all(~np.isfinite(np.asarray(bif["gd"], dtype=float)), axis=1))
    title = "Bifurcation: long-run θ per η"
    if blown.any():
        title += f" (GD blows up beyond {etas[blown.argmax()]:.3g})"
    return alt.layer(shade, dots, now).properties(title=title, height=300)


def draw(view: dict) -> None:
    long = histories_frame(view)
    labels = run_order(view)
    if long.empty:
        return
    for r in view["runs"]:
        if r["status"] == "diverged":
            st.error(f"{r['name']}: {r['message']}")
    left, right = st.columns(2)
    theta = metric_chart(long, "theta", "θ_t against the valley θ* (dashed)", labels, y_title="θ_t")
    valley = alt.Chart(pd.DataFrame(dict(y=[config.theta_star]))).mark_rule(color="green", strokeDash=[5, 3])
    valley = valley.encode(y="y:Q")
    left.altair_chart(alt.layer(theta, valley).resolve_scale(y="shared"), width="stretch")
    loss = metric_chart(long, "train_loss", "F(θ_t) with the Prop. 3 bounds (dashed)", labels, log=True,
                        y_title="F(θ_t)")
    bounds = alt.Chart(pd.DataFrame(dict(y=[max(low, 1e-300), high], bound=["ε₀² θ*²", "0.17 θ*²"]))).mark_rule(
        color="green", strokeDash=[5, 3]).encode(y="y:Q", tooltip=["bound", "y"])
    right.altair_chart(alt.layer(loss, bounds), width="stretch")

    left, right = st.columns(2)
    left.altair_chart(cobweb(view), width="stretch")
    bif = bifurcation_chart(view)
    if bif is not None:
        right.altair_chart(bif, width="stretch")
        right.caption("Green band: the Prop. 3 interval; dashed line: the current η. Each dot is one iterate "
                      "after burn-in: one dot per η means convergence, two a period-2 bounce, a cloud chaos.")

    sgd = next((r for r in view["runs"] if r["name"] == "SGD"), None)
    if sgd and "label_noise" in sgd["history"]:
        st.subheader("SGD is GD with label noise (Prop. 1, Lemma 2)")
        hist = pd.DataFrame(sgd["history"]).dropna(subset=["label_noise"])
        curves = hist.melt("step", ["label_noise_mean", "two_loss_mean"], "quantity", "value")
        curves["quantity"] = curves["quantity"].map({"label_noise_mean": "running mean of ‖ξ_t‖² / (n(n−1))",
                                                     "two_loss_mean": "running mean of 2 L(θ_t)"})
        chart = alt.Chart(curves).mark_line().encode(
            x=alt.X("step:Q", title="iteration"), y=alt.Y("value:Q", title=None, scale=alt.Scale(type="log")),
            color=alt.Color("quantity:N", title=None, legend=alt.Legend(orient="bottom")))
        c1, c2 = st.columns([3, 1])
        c1.altair_chart(chart.properties(height=240), width="stretch")
        err = float(np.nanmax(hist["prop1_error"])) if len(hist) else float("nan")
        c2.metric("max |SGD step − GD step on y + ξ|", f"{err:.1e}", help="Prop. 1: one SGD step equals one "
                  "full-batch GD step on the labels y + ξ_t, ξ_i = (h(x_i) − y_i)(1 − n 1[i = i_t]).")
        ratio = hist["label_noise_mean"].iloc[-1] / hist["two_loss_mean"].iloc[-1]
        c2.metric("noise / 2L at the end", f"{ratio:.3f}", help="Lemma 2: E‖ξ‖²/(n(n−1)) = 2 L(θ); the ratio of "
                  "the running means tends to 1.")
    downloads(view, f"toy_{preset}")


live(job, draw)
