"""Reproduction: every claim of the paper as a rate over seeds, read from the stored report (no training on load);
a button runs what is missing in the background."""

import streamlit as st

from engine.core.version import engine_version
from engine.reproduce import report as reports
from engine.reproduce.experiment import ReproduceConfig
from engine.reproduce.figures import FIGURES
from ui.jobs import live, run_controls
from ui.reproduction import claims_frame, other_figures, rate_chart
from ui.shell import ensure_shell

ensure_shell()  # a deep link on a fresh server runs this file alone: app.py's shell first

st.title("Does the paper reproduce? Every claim as a rate over seeds")
st.caption("The paper shows each effect on one seed. Here each figure's preset runs over many seeds (the preset's "
           "own first) and every claim the paper makes about it is checked on each seed with the same criteria as "
           "the figure's page: the share of seeds where it holds, with a 95% Wilson interval. Nothing is tuned to "
           "make a rate look better; each row opens the figure on a seed where the claim holds and on one where it "
           "fails, exactly as it ran (the same cached run).")

path = reports.default_path()
try:
    report = reports.read(path)
except ValueError as exc:
    report = None
    st.info(f"{exc}. Press the button below to run it here.")

# the stored report's scope (its seeds, and its figures when it covers only some): what is missing from it
seeds = int(report["seeds"]) if report else 10
stored = [f["key"] for f in report["figures"]] if report else []
only = "" if not stored or set(stored) >= {f.key for f in FIGURES} else ",".join(stored)
job = run_controls("reproduce", ReproduceConfig(seeds=seeds, only=only, json_path=str(path)), "all",
                   label="Run what is missing")
live(job, lambda view: None, f"Runs every small-model figure at {seeds} seeds: seeds already in the cache come at "
     "once, the others are computed on local worker processes (minutes on two cores).")

if report:
    m = report["machine"]
    load = (m.get("load_average") or ["?"])[0]
    st.caption(f"Stored: `{report['command']}` — {report['seeds']} seeds per figure, {report['wall_s']:.0f} s on "
               f"{m['cpus']} CPU cores ({report['where']}; load average {load} at the end), "
               f"{report['points']['computed']} seeds computed and "
               f"{report['points']['cached']} from the cache, {report['created']}.")
    if report["engine_version"] != engine_version():
        st.warning(f"The stored report is of engine {report['engine_version']}; this code is {engine_version()}. A "
                   "seed's link reruns it with this code, which may differ; Run what is missing recomputes all.")
    figures = [f["figure"] for f in report["figures"]]
    keys = {f["figure"]: f["key"] for f in report["figures"]}
    chosen = st.multiselect("Figures", figures, default=figures, key="repro_figures")
    frame = claims_frame(report, [keys[f] for f in chosen])
    if frame.empty:
        st.caption("No checked claim among the figures chosen.")
    else:
        st.altair_chart(rate_chart(frame), width="stretch")
        shown = frame.drop(columns=["low", "high", "whole"])
        if not shown["median [p10, p90]"].any():  # the criteria report no numbers (only a verdict and a text)
            shown = shown.drop(columns=["median [p10, p90]"])
        st.dataframe(
            shown, hide_index=True, width="stretch", key="repro_table", height=min(36 * (len(shown) + 1) + 3, 900),
            column_config={
                "rate": st.column_config.ProgressColumn("rate", min_value=0.0, max_value=1.0, format="percent"),
                "interval": st.column_config.TextColumn("95% interval"),
                "where it holds": st.column_config.LinkColumn("a seed where it holds", display_text="open"),
                "where it fails": st.column_config.LinkColumn("a seed where it fails", display_text="open"),
                "sweep map": st.column_config.LinkColumn("how it moves with the step", display_text="sweep map"),
            })
        st.caption("★ = every claim of the figure at once, on the same seed. The sweep maps show where the rate "
                   "depends on a setting (the step size near the edge of stability, the warmup).")
    others = other_figures(report, [keys[f] for f in chosen])
    if not others.empty:
        st.subheader("Figures without a checked claim")
        st.dataframe(others, hide_index=True, width="stretch", key="repro_others",
                     column_config={"page": st.column_config.LinkColumn("page", display_text="open")})
