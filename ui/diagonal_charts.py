"""Charts of the diagonal-network page beyond the metric curves: the final β against β* (sorted magnitudes,
log scale, so dense and sparse solutions read apart) and Fig. 3's loss surface with the trajectories."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from ui.charts import color, run_order


def beta_chart(view: dict, seed: int) -> alt.Chart | None:
    """|β_i| of every run's final β (one seed) and of β*, sorted from largest to smallest, log scale: a dense
    solution keeps all d coordinates up, a sparse one drops to zero after about r of them."""
    star = view["extras"].get("beta_star")
    if star is None:
        return None
    floor = 1e-12
    labels = run_order(view)
    rows = []
    for r in view["runs"]:
        beta = r["snapshots"].get("beta")
        if beta is not None and r["seed"] == seed:
            size = np.sort(np.abs(np.asarray(beta, dtype=float)))[::-1]
            rows.append(pd.DataFrame(dict(rank=np.arange(1, len(size) + 1), size=np.maximum(size, floor),
                                          label=r["label"])))
    if not rows:
        return None
    star_sorted = np.maximum(np.sort(np.abs(np.asarray(star, dtype=float)))[::-1], floor)
    truth = pd.DataFrame(dict(rank=np.arange(1, len(star_sorted) + 1), size=star_sorted, label="β*"))
    y = alt.Y("size:Q", title="|β_i| (sorted)", scale=alt.Scale(type="log", domain=[floor, 1]))
    x = alt.X("rank:Q", title="coordinates, largest first")
    lines = alt.Chart(pd.concat(rows)).mark_line(strokeWidth=1.8).encode(
        x=x, y=y, color=color(labels), tooltip=["label", "rank", alt.Tooltip("size:Q", format=".3g")])
    target = alt.Chart(truth).mark_line(strokeDash=[4, 3], color="black").encode(
        x=x, y=y, tooltip=[alt.Tooltip("rank:Q"), alt.Tooltip("size:Q", title="|β*_i|", format=".3g")])
    return alt.layer(target, lines).properties(
        title=alt.Title(f"Final |β| = |u ⊙ v|, sorted, against β* (dashed), seed {seed}",
                        subtitle="values below 1e-12 drawn at 1e-12"),
        height=280)


def plane_chart(view: dict) -> alt.Chart | None:
    """Fig. 3: train loss on the plane through the init spanned by the gradient-flow end point and w*, with the
    projected paths of every run (run colours as in the other charts)."""
    plane = view["extras"].get("plane")
    if not plane:
        return None
    a, b = np.asarray(plane["a"]), np.asarray(plane["b"])
    loss = np.asarray(plane["loss"], dtype=float)
    A, B = np.meshgrid(a, b, indexing="ij")
    grid = pd.DataFrame(dict(a=A.ravel(), b=B.ravel(), log_loss=np.log10(np.maximum(loss.ravel(), 1e-12))))
    da, db = (a[1] - a[0]) / 2, (b[1] - b[0]) / 2
    grid["a2"], grid["b2"], grid["a"], grid["b"] = grid.a + da, grid.b + db, grid.a - da, grid.b - db
    heat = alt.Chart(grid).mark_rect().encode(
        x=alt.X("a:Q", title=plane["axes"][0]), x2="a2", y=alt.Y("b:Q", title=plane["axes"][1]), y2="b2",
        color=alt.Color("log_loss:Q", title="log₁₀ train loss", scale=alt.Scale(scheme="greys", reverse=True)))
    paths = []
    for r in view["runs"]:
        path = r["snapshots"].get("path")
        if path:
            p = np.asarray(path, dtype=float)
            paths.append(pd.DataFrame(dict(a=p[:, 0], b=p[:, 1], order=np.arange(len(p)), label=r["label"])))
    layers = [heat]
    if paths:
        layers.append(alt.Chart(pd.concat(paths)).mark_line(strokeWidth=2.2).encode(
            x="a:Q", y="b:Q", order="order:Q", color=color(run_order(view))))
    marks = pd.DataFrame(dict(a=[0.0, plane["star"][0]], b=[0.0, plane["star"][1]], point=["init", "w*"]))
    layers.append(alt.Chart(marks).mark_point(shape="diamond", size=110, filled=True, color="#d62728").encode(
        x="a:Q", y="b:Q", tooltip=["point"]))
    layers.append(alt.Chart(marks).mark_text(dy=-12, fontWeight="bold").encode(x="a:Q", y="b:Q", text="point"))
    return alt.layer(*layers).resolve_scale(color="independent").properties(
        title="Fig. 3: train loss on the plane through the init, w_flow and w*, with the projected trajectories",
        height=380)
