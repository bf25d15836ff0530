"""Compare runs across groups: overlay the curves of other finished jobs of the same experiment."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine import registry
from engine.core.config import field_info
from engine.jobs import Job
from ui.charts import metric_chart
from ui.jobs import get_manager
from ui.tables import histories_frame


def _short(info: dict) -> str:
    """A field's label without its parenthesis ("width (channels of super-block 1)" -> "width")."""
    return (info.get("label") or info["name"].replace("_", " ")).split(" (")[0]


def named_groups(jobs: list[Job]) -> dict[str, Job]:
    """{name: job} for groups of runs of one experiment, named as a reader would, never by a config hash: the
    preset and the settings in which the groups differ (e.g. "cpu-demo, width 4" and "cpu-demo, width 2"), "runs
    edited" when a runs table differs from its preset's, a number when two still read the same."""
    if not jobs:
        return {}
    infos = [i for i in field_info(type(jobs[0].config)) if i["name"] != "runs"]
    varying = [i for i in infos if len({repr(getattr(j.config, i["name"], None)) for j in jobs}) > 1]
    out: dict[str, Job] = {}
    for job in jobs:
        preset = job.recorder.data.get("preset")
        presets = getattr(registry.get(job.experiment), "PRESETS", {})
        parts = [preset or "custom settings"]
        for info in varying:
            value = getattr(job.config, info["name"])
            parts.append(f"{_short(info)} {value if value != '' else '(root)'}")
        if preset in presets and getattr(job.config, "runs", None) != getattr(presets[preset].config, "runs", None):
            parts.append("runs edited")
        name, k = ", ".join(parts), 2
        while name in out:
            name, k = f"{', '.join(parts)} #{k}", k + 1
        out[name] = job
    return out


def overlay(experiment: str, job: Job | None, metrics: list[tuple[str, str, bool]]) -> None:
    """An expander to pick other finished groups of `experiment` and draw their runs beside this one's,
    one chart per (metric, title, log scale); legends read "<group>: <run>"."""
    manager = get_manager()
    finished = [j for j in manager.jobs() if j.experiment == experiment and j.finished and j.status == "done"]
    named = named_groups(([job] if job is not None else []) + [j for j in finished if j is not job])
    mine = next((name for name, j in named.items() if j is job), None)
    others = {name: j for name, j in named.items() if j is not job}
    with st.expander("Overlay runs from other groups"):
        if not others:
            st.caption("Groups of this page that finished while the app ran (or came from the cache) appear here.")
            return
        chosen = st.multiselect("Groups to overlay", list(others), key=f"{experiment}_overlay")
        groups = ([(mine, job)] if job is not None else []) + [(name, others[name]) for name in chosen]
        if len(groups) < 2:
            return
        frames = []
        for name, j in groups:
            frame = histories_frame(j.view())
            frame["label"] = name + ": " + frame["label"]
            frames.append(frame)
        long = pd.concat(frames, ignore_index=True)
        labels = list(dict.fromkeys(long["label"]))
        cols = st.columns(2)
        for k, (metric, title, log) in enumerate(metrics):
            cols[k % 2].altair_chart(metric_chart(long, metric, title, labels, log=log), width="stretch")
