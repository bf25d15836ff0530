"""Sweeps: where large steps sparsify, and how reliably — a grid of settings x seeds, filled in live."""

import json
import os

import streamlit as st

from engine import registry
from engine.sweeps import grid as sweeps
from engine.sweeps.experiment import job_config
from ui.jobs import live, run_controls
from ui.labels import metric as metric_label
from ui.links import PAGES, TITLES, page_url, read_changes
from ui.shell import ensure_shell
from ui.sweep_charts import cells_frame, heatmaps, line, selected_index

ensure_shell()  # a deep link on a fresh server runs this file alone: app.py's shell first

NONE = "(none)"
KEYS = ["sweep_preset", "sweep_ax1", "sweep_v1", "sweep_ax2", "sweep_v2", "sweep_seeds", "sweep_metric", "sweep_stuck"]

st.title("Sweeps: where large steps sparsify, and how reliably")
st.caption("The sparsifying steps sit just below the edge of stability, in a narrow window where the outcome "
           "depends on the seed. A sweep runs a grid of one or two settings over several seeds: each cell shows "
           "the median of a metric over the seeds that survived, and beside it the share of seeds that diverged "
           "(or got stuck), because there survival is itself the result. Every point is an ordinary run of the "
           "experiment, cached on its own: rerunning, widening the grid or opening a cell reuses it.")


def reset(keys: list[str]) -> None:
    for key in keys:
        st.session_state.pop(key, None)
        st.query_params.pop(key, None)


def suggest(config, name: str) -> str:
    """Values around the current one: five from 80% to 120% (whole numbers for integer settings)."""
    value = sweeps.get_value(config, name)
    if isinstance(value, int):
        return ",".join(str(v) for v in sorted({max(0, round(value * f)) for f in (0.5, 0.75, 1, 1.5, 2)}))
    return f"{value * 0.8:.4g}:{value * 1.2:.4g}:5"


# ---- the sweep's settings (sidebar), bound to the URL so a link reproduces the map
with st.sidebar:
    # URL-bound selectboxes store the shown option in the link: show plain names (no format_func)
    experiment = st.selectbox("Experiment", list(PAGES), key="sweep_exp",  # the experiments with a page
                              bind="query-params", on_change=reset, args=(KEYS + ["sweep_base"],))
    module = registry.get(experiment)
    maps = sweeps.presets(experiment)
    preset = st.selectbox("Preset", [*maps, *module.PRESETS], key="sweep_preset", bind="query-params",
                          on_change=reset, args=(KEYS[1:] + ["sweep_base"],),
                          help="map-...: a phase diagram of the paper's message (its own axes, seeds and metrics); "
                               "the others: one of the experiment's presets, swept along the axes you choose")
    if preset in maps:
        default_plan = sweeps.build(experiment, preset)
        st.caption(maps[preset].description)
    else:
        st.caption(module.PRESETS[preset].description)
        default_plan = None
    page_preset = maps[preset].preset if preset in maps else preset
    base = default_plan.base if default_plan else module.PRESETS[preset].config
    changes, note = read_changes(st.query_params.get("sweep_base"), type(base), "sweep_base")
    if note:
        st.warning(note)
    if changes:
        try:
            base = type(base).from_dict({**base.to_dict(), **changes})
            st.caption("Base: the settings of the page you came from (" + ", ".join(changes) + " changed).")
        except (ValueError, TypeError) as exc:
            st.warning(f"The settings of the link could not be used ({exc}): sweeping the preset's.")
    options = sweeps.sweepable(base)
    runs = getattr(base, "runs", ())
    if default_plan:
        defaults = [a.split("=", 1) for a in maps[preset].axes]
    else:
        first = f"runs.{len(runs) - 1}.lr" if runs else options[0]
        defaults = [[first, suggest(base, first)]]
    if runs:
        st.caption("Runs table: " + "; ".join(f"runs.{k} = {r.name}" for k, r in enumerate(runs)))
    ax1 = st.selectbox("Axis 1", options, index=options.index(defaults[0][0]), key="sweep_ax1",
                       bind="query-params", on_change=reset, args=(["sweep_v1"],))
    v1 = st.text_input("Axis 1 values", value=defaults[0][1] if ax1 == defaults[0][0] else suggest(base, ax1),
                       key="sweep_v1", bind="query-params", help="LO:HI:N (N evenly spaced values) or V1,V2,...")
    second = defaults[1][0] if len(defaults) > 1 else NONE
    ax2 = st.selectbox("Axis 2", [NONE, *options], index=[NONE, *options].index(second), key="sweep_ax2",
                       bind="query-params", on_change=reset, args=(["sweep_v2"],))
    v2 = None
    if ax2 != NONE:
        v2 = st.text_input("Axis 2 values", value=defaults[1][1] if ax2 == second else suggest(base, ax2),
                           key="sweep_v2", bind="query-params", help="LO:HI:N or V1,V2,...")
    seeds_field = base.__dataclass_fields__.get("seeds")
    seeds = 1
    if seeds_field is not None:
        seeds = st.number_input("Seeds per point", min_value=1, max_value=int(seeds_field.metadata["hi"]),
                                value=default_plan.seeds if default_plan else 4, key="sweep_seeds",
                                bind="query-params", help="each point trains every seed (the compiled loop "
                                                          "advances them together)")
    metric_names = sweeps.METRICS[experiment]
    default_metric = default_plan.metrics[0] if default_plan else metric_names[0]
    metric = st.selectbox("Metric shown", metric_names, index=metric_names.index(default_metric),
                          key="sweep_metric", bind="query-params")
    stuck = None
    if experiment == "relu1d":
        stuck = st.number_input("Stuck: final train loss above", min_value=0.0, max_value=100.0,
                                value=default_plan.stuck_above if default_plan else 0.1, key="sweep_stuck",
                                bind="query-params", help="Fig. 9's over-regularization: the run no longer fits")
    with st.expander("Where to run"):
        scheduler = st.text_input("Dask scheduler", value=os.environ.get("SPARSE_SGD_SCHEDULER", ""),
                                  key="sweep_scheduler", help="tcp://HOST:8786 of an existing cluster "
                                  "(`dask scheduler` + `dask worker`); empty: worker processes on this machine")
        workers = st.number_input("Local worker processes (0 = one per core)", 0, 64, 0, key="sweep_workers")

axes = [f"{ax1}={v1}"] + ([f"{ax2}={v2}"] if v2 is not None else [])
try:
    plan = sweeps.build(experiment, preset, axes=axes, seeds=int(seeds), metrics=list(metric_names),
                        stuck_above=stuck, base=base)
except ValueError as exc:
    st.error(f"Invalid sweep: {exc}")
    st.stop()

shown_run = plan.run_name()
st.markdown(f"**{plan.size} points × {plan.seeds} seeds** of `{experiment}` / `{preset}`"
            + (f"; cells show the run **{shown_run}**" if shown_run else "") + ".")
job = run_controls("sweep", job_config(plan, scheduler.strip(), int(workers)), preset, label="Run sweep")


def draw(view: dict) -> None:
    header, cells = view["extras"].get("sweep"), view["extras"].get("cells") or []
    if not header:
        return
    frame = cells_frame(header, cells)
    fields = [a["field"] for a in header["axes"]]
    share, share_title = ("stuck_share", "share of seeds stuck") if plan.stuck_above is not None else \
        ("diverged_share", "share of seeds that diverged")
    if len(fields) == 2:
        left, right = st.columns(2)
        metric_chart, share_chart = heatmaps(frame, fields, metric, metric_label(metric), share, share_title)
        picked = [left.altair_chart(metric_chart, on_select="rerun", key="sweep_pick_metric", width="stretch"),
                  right.altair_chart(share_chart, on_select="rerun", key="sweep_pick_share", width="stretch")]
    else:
        metric_chart, share_chart = line(frame, fields[0], metric, metric_label(metric), share, share_title)
        picked = [st.altair_chart(metric_chart, on_select="rerun", key="sweep_pick_line", width="stretch")]
        st.altair_chart(share_chart, width="stretch")
    stats = view["extras"].get("stats") or {}
    st.caption(f"{stats.get('computed', 0)} points computed, {stats.get('cached', 0)} from the cache, "
               f"{stats.get('failed', 0)} failed. Click a cell to open that point on its page.")
    for message in stats.get("notes", []):
        st.info(message)
    failed = [c for c in cells if c is not None and c["status"] == "failed"]
    if failed:
        st.warning("Failed points: " + "; ".join(
            ", ".join(f"{k}={v:g}" for k, v in c["point"].items()) + f": {c.get('message', '')}" for c in failed))
    chosen = next((i for i in map(selected_index, picked) if i is not None), None)
    if chosen is not None and experiment in PAGES:
        point = plan.points()[chosen]
        where = ", ".join(f"{k} = {v:g}" for k, v in point.items())
        url = page_url(experiment, page_preset, module.PRESETS[page_preset].config, plan.configs()[chosen])
        st.link_button(f"Open {where} on the {TITLES[experiment]} page", url)
    with st.expander("Cells as a table"):
        st.dataframe(frame.drop(columns=["i"]), hide_index=True, width="stretch")
    left, right, _ = st.columns([1, 1, 3])
    stem = f"sweep_{experiment}_{preset}"
    left.download_button("Download CSV", frame.to_csv(index=False).encode(), f"{stem}.csv", "text/csv",
                         key="sweep_csv")
    right.download_button("Download JSON", json.dumps(plan.export(cells)).encode(), f"{stem}.json",
                          "application/json", key="sweep_json")


live(job, draw, "Press Run sweep: the cells fill in as points finish (cached points at once).")
