"""Toy 1D model (paper Sec. 2.2, Prop. 3): the loss stabilizes because SGD bounces across the valley."""

import json

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from engine.core.recording import Recorder
from engine.toy import bouncing
from ui.charts import X_FORMAT, color, metric_chart, palette
from ui.jobs import downloads
from ui.paper import definitions, header, look_at
from ui.shell import ensure_shell
from ui.tables import histories_frame
from ui.widgets import settings

ensure_shell()  # a deep link on a fresh server runs this file alone: app.py's shell first

EXPERIMENT, PREFIX = "bouncing", "toy_"
FIELDS = ["eta", "a", "b", "theta_star", "theta0", "steps", "n", "seed", "algorithms"]
RUNS = ["SGD", "GD"]              # one colour each, the same on every chart of the page
COLORS = palette(RUNS)

header("Toy model: loss stabilization by bouncing", "Sec. 2.2, Eq. (4) and Proposition 3",
       "h(x) = x θ², labels y = x θ\\*², loss F(θ) = ¼ E(y − x θ²)², SGD θ ← θ + η θ x (y − x θ²). For η in the "
       "Prop. 3 interval the loss stays in a band and θ alternates sides of θ\\*")
definitions("θ*", "Prop. 3 interval", "label noise ξ", "bifurcation diagram")


# ---- settings: preset + widgets, bound to the URL (bind="query-params") so a link reproduces them.
# η is a number box (full precision, in the URL too); the zoom slider below moves it inside Prop. 3's window.
preset, config = settings(bouncing.PRESETS, bouncing.Config, PREFIX, FIELDS,
                          sliders=("a", "b", "theta_star", "theta0", "steps"))


def zoom_window(c: bouncing.Config) -> tuple[float, float]:
    """A window of η around the Prop. 3 interval (the interval plus its width on each side), within η's bounds."""
    lo, hi = sorted(bouncing.prop3_interval(c))
    pad = max(hi - lo, 0.01)
    return round(max(0.01, lo - pad), 4), round(min(5.0, hi + pad), 4)


def eta_zoom(c: bouncing.Config) -> None:
    """A slider over the window around the interval, tied to the sidebar's η: moving it sets η."""
    key, zoom = f"{PREFIX}eta", f"{PREFIX}eta_zoom"

    def to_eta() -> None:
        # A callback runs before the next script run, so it may set the number box's state (drawn later in that
        # run); the box, bound to the URL, then writes the new η into the link.
        st.session_state[key] = st.session_state[zoom]

    z_lo, z_hi = zoom_window(c)
    st.session_state[zoom] = min(max(c.eta, z_lo), z_hi)  # follows the number box
    st.slider("Zoom on the Prop. 3 interval: step size η", z_lo, z_hi, step=0.0001, format="%.4f", key=zoom,
              on_change=to_eta, help="The same η as the sidebar's number box, on a scale where the interval is "
                                     "wide; type any η (to full precision) in the sidebar.")
    if not z_lo <= c.eta <= z_hi:
        st.caption(f"η = {c.eta:.10g} is outside this window.")


def prop3_message(c: bouncing.Config) -> None:
    """Where η sits relative to the Prop. 3 interval, stated before anything runs."""
    lo, hi = bouncing.prop3_interval(c)
    low, high = bouncing.loss_bounds(c)
    eta = f"η = {c.eta:.10g}"  # the full value: the interval is ~0.03 wide
    if lo >= hi:
        st.warning(f"With a = {c.a}, b = {c.b} the Prop. 3 interval ({lo:.4g}, {hi:.4g}) is empty: "
                   "the support of x is too wide (need b/a < √1.25 ≈ 1.118).")
    elif lo < c.eta < hi:
        st.success(f"{eta} lies **inside** the Prop. 3 interval ({lo:.4g}, {hi:.4g}): expect the loss to stay "
                   f"between {low:.3g} and {high:.3g} and θ to alternate sides of θ\\* = {c.theta_star:g}.")
    elif c.eta <= lo:
        st.info(f"{eta} lies **below** the Prop. 3 interval ({lo:.4g}, {hi:.4g}): SGD should converge.")
    else:
        st.info(f"{eta} lies **above** the Prop. 3 interval ({lo:.4g}, {hi:.4g}): no guarantee; "
                "far enough above, the iterates blow up.")
    if not 0 < c.theta0 < c.theta_star:
        st.caption("Prop. 3 assumes 0 < θ₀ < θ\\*.")


eta_zoom(config)
prop3_message(config)


# ---- the toy trains in ~0.1 s: it runs inline in this script run, cached per config (st.cache_data), with no
# background job; a Recorder collects the same record a job would.
@st.cache_data(max_entries=64, show_spinner="Training SGD and GD…")
def train(config_json: str) -> dict:
    c = bouncing.Config.from_dict(json.loads(config_json))
    rec = Recorder(EXPERIMENT, c.to_dict())
    bouncing.run(c, rec)
    rec.close("done")
    return rec.view()


view = dict(train(json.dumps(config.to_dict(), sort_keys=True)), preset=preset)


# ---- drawing
def cobweb(view: dict) -> alt.Chart:
    """The rescaled maps h_γ for the extreme γ, the identity, and the first steps of the SGD path (its colour)."""
    grid = np.linspace(0, 1.4, 200)
    gammas = {"h_γ, γ min (x = a)": config.eta * config.theta_star**2 * config.a**2,
              "h_γ, γ max (x = b)": config.eta * config.theta_star**2 * config.b**2}
    curves = pd.concat([pd.DataFrame(dict(theta=grid, value=bouncing.h_map(g, grid), curve=name))
                        for name, g in gammas.items()] + [pd.DataFrame(dict(theta=grid, value=grid, curve="identity"))])
    layers = [alt.Chart(curves).mark_line(strokeWidth=1.2).encode(
        x=alt.X("theta:Q", title="θ / θ*", scale=alt.Scale(domain=[0, 1.4])),
        y=alt.Y("value:Q", title="h_γ(θ)", scale=alt.Scale(domain=[0, 1.4], clamp=True)),
        color=alt.Color("curve:N", title=None, legend=alt.Legend(orient="bottom"),  # map colours, not run colours
                        scale=alt.Scale(range=["#b279a2", "#9d755d", "#bab0ac"])))]
    run = next((r for r in view["runs"] if r["name"] == "SGD"), None) or (view["runs"] or [None])[0]
    if run is not None:
        th = np.asarray([v for v in run["history"].get("theta", []) if v is not None][:60]) / config.theta_star
        if len(th) > 1:
            # cobweb: (θ0, 0) -> (θ0, θ1) -> (θ1, θ1) -> (θ1, θ2) -> ...
            xs = np.concatenate([[th[0]], np.repeat(th[:-1], 2)[1:], [th[-1]]])
            ys = np.concatenate([[0.0], np.repeat(th[1:], 2)])
            path = pd.DataFrame(dict(x=xs, y=ys, order=np.arange(len(xs))))
            path = path[(path.x.abs() < 1.4) & (path.y.abs() < 1.4)]
            layers.append(alt.Chart(path).mark_line(color=COLORS[run["name"]], strokeWidth=0.9, opacity=0.8).encode(
                x="x:Q", y="y:Q", order="order:Q"))
    name = run["name"] if run is not None else "SGD"
    return alt.layer(*layers).properties(title=f"Cobweb of h_γ: the first 60 steps of {name}", height=300)


def bifurcation_chart(view: dict) -> alt.Chart | None:
    """Long-run θ per η for SGD and GD (run colours), the Prop. 3 interval shaded, the current η dashed."""
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
        x=alt.X("eta:Q", title="step size η", axis=alt.Axis(format=".3~g"), scale=alt.Scale(zero=False)),
        y=alt.Y("theta:Q", title="long-run θ", scale=alt.Scale(zero=False)),
        color=color(RUNS, field="algorithm", points=True))
    now = alt.Chart(pd.DataFrame(dict(eta=[config.eta]))).mark_rule(color="black", strokeDash=[4, 3]).encode(x="eta:Q")
    blown = (np.all(~np.isfinite(np.asarray(bif["gd"], dtype=float)), axis=1))
    title = "Bifurcation: long-run θ per η"
    if blown.any():
        title += f" (GD blows up beyond {etas[blown.argmax()]:.3g})"
    return alt.layer(shade, dots, now).properties(title=title, height=300)


def label_noise(run: dict) -> None:
    """Prop. 1 and Lemma 2 checked along the SGD run: the running means of the noise and of 2L, and the largest
    gap between an SGD step and the GD step on the noisy labels."""
    hist = pd.DataFrame(run["history"]).dropna(subset=["label_noise"])
    curves = hist.melt("step", ["label_noise_mean", "two_loss_mean"], "quantity", "value")
    curves["quantity"] = curves["quantity"].map({"label_noise_mean": "running mean of ‖ξ_t‖² / (n(n−1))",
                                                 "two_loss_mean": "running mean of 2 L(θ_t)"})
    chart = alt.Chart(curves).mark_line().encode(
        x=alt.X("step:Q", title="iteration", axis=alt.Axis(format=X_FORMAT)),
        y=alt.Y("value:Q", title="running mean", scale=alt.Scale(type="log")),
        color=alt.Color("quantity:N", title=None, legend=alt.Legend(orient="bottom", labelLimit=0),  # not a run's
                        scale=alt.Scale(range=["#b279a2", "#9d755d"])),
        strokeDash=alt.StrokeDash("quantity:N", legend=None))
    c1, c2 = st.columns([3, 1])
    c1.altair_chart(chart.properties(height=240), width="stretch")
    err = float(np.nanmax(hist["prop1_error"])) if len(hist) else float("nan")
    c2.metric("max |SGD step − GD step on y + ξ|", f"{err:.1e}", help="Prop. 1: one SGD step equals one "
              "full-batch GD step on the labels y + ξ_t, ξ_i = (h(x_i) − y_i)(1 − n 1[i = i_t]).")
    ratio = hist["label_noise_mean"].iloc[-1] / hist["two_loss_mean"].iloc[-1]
    c2.metric("noise / 2L at the end", f"{ratio:.3f}", help="Lemma 2: E‖ξ‖²/(n(n−1)) = 2 L(θ); the ratio of "
              "the running means tends to 1.")


def draw(view: dict) -> None:
    long = histories_frame(view)
    if long.empty:
        return
    st.caption(f"Trained in this page's run in {view['elapsed']:.2f} s (and kept per setting in a cache): the toy "
               "needs no background job.")
    for r in view["runs"]:
        if r["status"] == "diverged":
            st.error(f"{r['name']}: {r['message']}")
    low, high = bouncing.loss_bounds(config)
    look_at("inside the interval θ_t keeps alternating sides of the valley θ\\* and F(θ_t) stays between the "
            "dashed bounds instead of going to 0: the loss stabilizes (full-batch GD bounces at these η too; it "
            "parts ways with SGD in the bifurcation diagram).")
    left, right = st.columns(2)
    theta = metric_chart(long, "theta", "θ_t against the valley θ* (dashed)", RUNS, y_title="θ_t")
    valley = alt.Chart(pd.DataFrame(dict(y=[config.theta_star]))).mark_rule(color="green", strokeDash=[5, 3])
    valley = valley.encode(y="y:Q")
    left.altair_chart(alt.layer(theta, valley).resolve_scale(y="shared"), width="stretch")
    loss = metric_chart(long, "train_loss", "F(θ_t) with the Prop. 3 bounds (dashed)", RUNS, log=True,
                        y_title="F(θ_t)")
    bounds = alt.Chart(pd.DataFrame(dict(y=[max(low, 1e-300), high], bound=["ε₀² θ*²", "0.17 θ*²"]))).mark_rule(
        color="green", strokeDash=[5, 3]).encode(y="y:Q", tooltip=["bound", "y"])
    right.altair_chart(alt.layer(loss, bounds), width="stretch")

    look_at("the path bounces between the two maps around θ/θ\\* = 1; in the bifurcation diagram, the green "
            "band is where Prop. 3 guarantees the bounce: SGD's dots spread into two branches or a cloud there.")
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
        look_at("the two running means meet (ratio → 1: the noise scales with the loss) and an SGD step equals "
                "the GD step on the noisy labels up to rounding.")
        label_noise(sgd)
    downloads(view, f"toy_{preset}")


draw(view)
