"""The Reproduction page's parts: its table of claims (rates, intervals, links to a seed where each claim holds and
one where it fails), the rates as bars with their intervals, and the figures it shows without a claim."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import altair as alt
import pandas as pd

from engine import registry
from ui.links import PAGES, changes, page_url

# The toy page is not a sweep target (ui.links.PAGES lists those), but its settings are URL-bound the same way.
FIGURE_PAGES = {**PAGES, "bouncing": ("toy_1d", "toy_")}
RATE_SCALE = alt.Scale(domain=[0, 0.5, 1], range=["#c0392b", "#f1c40f", "#27ae60"])  # one scale for every claim


def seed_url(figure: dict, point: dict) -> str | None:
    """A link that opens exactly the config this seed ran (the same cache key) on the figure's page (None when this
    code no longer has the preset or reads the config differently)."""
    module = registry.get(figure["experiment"])
    try:
        preset = module.PRESETS[figure["preset"]].config
        config = type(preset).from_dict(point["config"])
    except (KeyError, ValueError, TypeError):
        return None
    if figure["experiment"] in PAGES:
        return page_url(figure["experiment"], figure["preset"], preset, config)
    path, prefix = FIGURE_PAGES[figure["experiment"]]
    query = {f"{prefix}preset": figure["preset"]}
    diff = changes(config, preset)
    if diff:
        query[f"{prefix}set"] = json.dumps(diff, separators=(",", ":"))
    return f"{path}?{urlencode(query)}"


def preset_url(figure: dict) -> str:
    """The figure's page on its preset."""
    path, prefix = FIGURE_PAGES[figure["experiment"]]
    return f"{path}?{urlencode({f'{prefix}preset': figure['preset']})}"


def map_url(figure: dict) -> str | None:
    """The sweep map showing how the figure's outcome moves with a setting (None when there is none)."""
    if not figure.get("sweep_map"):
        return None
    return "sweeps?" + urlencode({"sweep_exp": figure["experiment"], "sweep_preset": figure["sweep_map"]})


def _value(row: dict) -> str:
    v, t = row.get("value"), row.get("threshold")
    if not v:
        return ""
    text = f"{v['median']:.3g} [{v['p10']:.3g}, {v['p90']:.3g}]"
    return text + (f" vs {t:.3g}" if t is not None else "")


def claims_frame(report: dict, keys: list[str] | None = None) -> pd.DataFrame:
    """One row per claim of the figures `keys` (all when None): rate, interval, seeds, and the links."""
    figures = {f["key"]: f for f in report["figures"]}
    rows = []
    for r in report["claims"]:
        if keys is not None and r["figure_key"] not in keys:
            continue
        figure = figures[r["figure_key"]]
        points = {p["seed"]: p for p in figure["points"]}
        held = [points[s] for s in r["holds_on"] if s in points]
        failed = [points[s] for s in r["fails_on"] if s in points]
        lo, hi = r["interval"]
        rows.append({"figure": r["figure"], "claim": ("★ " if r["whole"] else "") + r["claim"],
                     "holds": f"{r['holds']}/{r['seeds']}", "rate": r["rate"], "low": lo, "high": hi,
                     "interval": f"{100 * lo:.0f}–{100 * hi:.0f}%", "median [p10, p90]": _value(r),
                     "fails on seeds": ", ".join(map(str, r["fails_on"])) or "none",
                     "where it holds": seed_url(figure, held[0]) if held else None,
                     "where it fails": seed_url(figure, failed[0]) if failed else None,
                     "sweep map": map_url(figure), "whole": r["whole"]})
    return pd.DataFrame(rows)


def rate_chart(frame: pd.DataFrame) -> alt.Chart:
    """Each claim's rate (a dot, coloured on one fixed scale) and its 95% Wilson interval (a bar)."""
    data = frame.assign(label=frame["figure"] + " · " + frame["claim"])
    y = alt.Y("label:N", sort=None, title=None, axis=alt.Axis(labelLimit=520, labelOverlap=False))
    base = alt.Chart(data)
    bars = base.mark_rule(strokeWidth=6, opacity=0.35).encode(
        x=alt.X("low:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"), title="share of seeds"),
        x2="high:Q", y=y, color=alt.Color("rate:Q", scale=RATE_SCALE, legend=None))
    dots = base.mark_circle(size=90, opacity=1).encode(
        x="rate:Q", y=y, color=alt.Color("rate:Q", scale=RATE_SCALE, legend=None),
        tooltip=["figure", "claim", "holds", "interval", "fails on seeds"])
    return (bars + dots).properties(height=max(120, 24 * len(data)),
                                    title="How often each claim holds: rate and 95% interval over seeds")


def other_figures(report: dict, keys: list[str] | None = None) -> pd.DataFrame:
    """The figures without a checked claim: shown only, run without a claim, or skipped (ResNets, with GPU-hours)."""
    rows = []
    for f in report["figures"]:
        if f["kind"] == "checked" or (keys is not None and f["key"] not in keys):
            continue
        what = {"shown": "shown, no quantitative claim", "ran": "ran, no claim registered",
                "skipped": f"not run here: about {f['gpu_hours'] or 0:.0f} GPU-hours"}[f["kind"]]
        rows.append({"figure": f["figure"], "section": f["section"], "status": what, "note": f["note"],
                     "page": preset_url(f)})
    return pd.DataFrame(rows)
