"""Compare runs across groups: overlay the curves of other finished jobs of the same experiment."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine.jobs import Job
from ui.charts import metric_chart
from ui.jobs import get_manager
from ui.tables import histories_frame


def group_name(job: Job) -> str:
    """A short name for a job's group of runs: its preset and the start of its config key."""
    return f"{job.recorder.data.get('preset') or 'custom'} · {job.key[:6]}"


def overlay(experiment: str, job: Job | None, metrics: list[tuple[str, str, bool]]) -> None:
    """An expander to pick other finished groups of `experiment` and draw their runs beside this one's,
    one chart per (metric, title, log scale)."""
    manager = get_manager()
    others = {group_name(j): j for j in manager.jobs()
              if j.experiment == experiment and j.finished and j is not job and j.status == "done"}
    with st.expander("Overlay runs from other groups"):
        if not others:
            st.caption("Groups of this page that finished while the app ran (or came from the cache) appear here.")
            return
        chosen = st.multiselect("Groups to overlay", list(others), key=f"{experiment}_overlay")
        groups = ([(group_name(job), job)] if job is not None else []) + [(name, others[name]) for name in chosen]
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
