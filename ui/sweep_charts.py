"""Charts of a sweep: a heatmap per panel for two axes (the metric's median over seeds; the share of seeds that
diverged or got stuck), a line with its 10-90% band for one axis. Cells fill in as points finish."""

from __future__ import annotations

import itertools
import math

import altair as alt
import pandas as pd

LOG_METRICS = ("train_loss", "test_loss")
SELECTION = "cell"


def cells_frame(export: dict, cells: list[dict | None]) -> pd.DataFrame:
    """One row per grid point: index, axis values, status, counts, and each metric's median / p10 / p90."""
    fields = [a["field"] for a in export["axes"]]
    rows = []
    values = [a["values"] for a in export["axes"]]
    points = [dict(zip(fields, combo, strict=True)) for combo in itertools.product(*values)]
    for i, point in enumerate(points):
        cell = cells[i] if i < len(cells) else None
        row = dict(i=i, **{f"axis{k}": point[f] for k, f in enumerate(fields)},
                   status="pending" if cell is None else cell["status"])
        if cell is not None:
            runs = max(cell["runs"], 1)
            row.update(runs=cell["runs"], diverged=cell["diverged"], diverged_share=cell["diverged"] / runs)
            if "stuck" in cell:
                row.update(stuck=cell["stuck"], stuck_share=cell["stuck"] / runs)
            if "holds" in cell:
                row.update(holds=cell["holds"])
            for m, stats in cell["metrics"].items():
                for q in ("median", "p10", "p90"):
                    row[f"{m}_{q}"] = stats[q]
            if cell.get("message"):
                row["message"] = cell["message"]
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _light_cells(values: pd.Series, log: bool, reverse: bool) -> pd.Series:
    """Whether a cell's viridis colour is light (black text reads better there)."""
    v = pd.to_numeric(values, errors="coerce")
    if log:
        v = v.where(v > 0).map(math.log10)
    lo, hi = v.min(), v.max()
    t = (v - lo) / (hi - lo) if hi > lo else v * 0 + 0.5
    return (t < 0.5) if reverse else (t > 0.5)


def heatmaps(frame: pd.DataFrame, fields: list[str], metric: str, title: str, share: str, share_title: str):
    """Two heatmaps side by side (metric median; share of seeds), clickable: a click selects a cell."""
    frame = frame.copy()
    frame["x"] = frame["axis0"].map(_fmt)
    frame["y"] = frame["axis1"].map(_fmt)
    order_x = list(dict.fromkeys(frame["x"]))
    order_y = list(dict.fromkeys(frame["y"]))[::-1]
    median = f"{metric}_median"
    if median not in frame:
        frame[median] = math.nan
    frame["shown"] = frame[median].map(lambda v: "" if v is None or v != v else f"{v:.3g}")
    frame["light"] = _light_cells(frame[median], log=metric in LOG_METRICS, reverse=metric in LOG_METRICS)
    if share not in frame:
        frame[share] = math.nan
    pick = alt.selection_point(name=SELECTION, fields=["i"], on="click", clear="dblclick")
    tooltip = [alt.Tooltip("x:N", title=fields[0]), alt.Tooltip("y:N", title=fields[1]), "status:N",
               alt.Tooltip(f"{metric}_median:Q", title=f"{metric} median", format=".4g"),
               alt.Tooltip(f"{metric}_p10:Q", title="p10", format=".4g"),
               alt.Tooltip(f"{metric}_p90:Q", title="p90", format=".4g"),
               alt.Tooltip("diverged:Q", title="seeds diverged"), alt.Tooltip("runs:Q", title="seeds")]
    if "stuck" in frame:
        tooltip.append(alt.Tooltip("stuck:Q", title="seeds stuck"))
    base = alt.Chart(frame).encode(
        x=alt.X("x:N", title=fields[0], sort=order_x, axis=alt.Axis(labelAngle=-45)),
        y=alt.Y("y:N", title=fields[1], sort=order_y), tooltip=tooltip)
    positive = frame[median].dropna()
    log = metric in LOG_METRICS and len(positive) and (positive > 0).all()
    scale = alt.Scale(type="log" if log else "linear", scheme="viridis", reverse=metric in LOG_METRICS)
    empty = alt.value("#eeeeee")
    metric_map = base.mark_rect(stroke="white").encode(
        color=alt.condition(f"isValid(datum['{median}'])", alt.Color(f"{median}:Q", title=title, scale=scale),
                            empty),
        opacity=alt.condition(pick, alt.value(1.0), alt.value(0.55))).add_params(pick)
    labels = base.mark_text(fontSize=10).encode(
        text="shown:N", color=alt.condition("datum.light", alt.value("black"), alt.value("white")))
    share_map = base.mark_rect(stroke="white").encode(
        color=alt.condition(f"isValid(datum['{share}'])", alt.Color(
            f"{share}:Q", title=share_title, scale=alt.Scale(domain=[0, 1], scheme="reds")), empty),
        opacity=alt.condition(pick, alt.value(1.0), alt.value(0.55))).add_params(pick)
    size = dict(width="container", height=alt.Step(max(34, 200 // len(order_y))))  # a row per value, tall enough
    layers = [metric_map, labels] if len(order_x) <= 7 else [metric_map]  # numbers fit in a cell; else hover
    return (alt.layer(*layers).properties(title=f"{title} (median over the seeds that survived)", **size),
            share_map.properties(title=share_title, **size))


def line(frame: pd.DataFrame, field: str, metric: str, title: str, share: str, share_title: str):
    """One axis: the metric's median with its 10-90% band over seeds, and the share of seeds below it."""
    frame = frame.copy()
    log = metric in LOG_METRICS and (frame.get(f"{metric}_p10", pd.Series(dtype=float)).dropna() > 0).all()
    pick = alt.selection_point(name=SELECTION, fields=["i"], on="click", clear="dblclick")
    x = alt.X("axis0:Q", title=field, scale=alt.Scale(zero=False))
    y_scale = alt.Scale(type="log") if log else alt.Scale(zero=False)
    median = f"{metric}_median"
    for col in (median, f"{metric}_p10", f"{metric}_p90", share):
        if col not in frame:
            frame[col] = math.nan
    tooltip = [alt.Tooltip("axis0:Q", title=field), alt.Tooltip(f"{median}:Q", title="median", format=".4g"),
               alt.Tooltip(f"{metric}_p10:Q", title="p10", format=".4g"),
               alt.Tooltip(f"{metric}_p90:Q", title="p90", format=".4g"), "diverged:Q", "runs:Q"]
    base = alt.Chart(frame).encode(x=x)
    band = base.mark_area(opacity=0.2).encode(y=alt.Y(f"{metric}_p10:Q", scale=y_scale, title=title),
                                               y2=f"{metric}_p90:Q")
    curve = base.mark_line(point=True).encode(y=alt.Y(f"{median}:Q", scale=y_scale, title=title), tooltip=tooltip)
    dots = base.mark_point(size=120, opacity=0).encode(y=f"{median}:Q", tooltip=tooltip).add_params(pick)
    bars = base.mark_bar().encode(y=alt.Y(f"{share}:Q", title=share_title, scale=alt.Scale(domain=[0, 1])),
                                  color=alt.value("#d62728"), tooltip=tooltip)
    return (alt.layer(band, curve, dots).properties(title=f"{title}: median and 10-90% over seeds", height=280,
                                                    width="container"),
            bars.properties(title=share_title, height=160, width="container"))


def selected_index(event) -> int | None:
    """The grid index of the clicked cell in a chart's selection event, if any."""
    try:
        chosen = event.selection[SELECTION]
    except (AttributeError, KeyError, TypeError):
        return None
    if chosen and "i" in chosen[0]:
        return int(chosen[0]["i"])
    return None
