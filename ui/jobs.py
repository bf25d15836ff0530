"""The app's one job manager, the Run/Cancel controls and the live-redrawing fragment."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import streamlit as st

from engine import registry
from engine.core.config import Config
from engine.core.recording import export
from engine.jobs import Job, JobManager, QueueFull
from ui.tables import histories_frame

REFRESH_SECONDS = 0.5  # quick jobs: the charts follow training closely
REFRESH_LONG = 3.0     # long-lane jobs (ResNets): a redraw holds the GIL the training thread also needs


@st.cache_resource
def get_manager() -> JobManager:
    """One JobManager per server process (st.cache_resource): jobs outlive browser sessions and tabs."""
    return JobManager()


@st.cache_resource
def warm_up_kernels() -> threading.Thread:
    """Load (on a fresh machine: compile, ~4 s) the diagonal nets' numba kernels in a background thread
    once per server, so the first Run shows its first point at once."""

    def warm() -> None:
        from engine.diagonal import kernels as diagonal_kernels

        diagonal_kernels.warm_up()

    thread = threading.Thread(target=warm, daemon=True, name="warm-up-kernels")
    thread.start()
    return thread


def mine() -> set[str]:
    """Keys of the jobs this browser session started (the sidebar offers Cancel for those only)."""
    return st.session_state.setdefault("_my_jobs", set())


def run_controls(experiment: str, config: Config, preset: str | None, label: str = "Run",
                 extra: Callable[[], None] | None = None) -> Job | None:
    """Run and Cancel buttons (and `extra()` drawn beside them); returns the job of this config (running,
    finished or cached), if any. What would stop the config from running here (no GPU, no data) is said
    before Run is offered; a full queue is a message."""
    manager = get_manager()
    job = manager.find(experiment, config)
    problem = registry.preflight(experiment, config) if job is None else None
    left, right, rest, _ = st.columns([1, 1, 1.5, 2.5])
    if extra is not None:
        with rest:
            extra()
    busy = job is not None and not job.finished
    if left.button(label, type="primary", disabled=busy or problem is not None, key=f"run_{experiment}"):
        try:
            job = manager.submit(experiment, config, preset=preset)  # a cancelled job resumes where it stopped
            mine().add(job.key)
            st.rerun()  # a full rerun: the sidebar (drawn before the page) lists the new job too
        except QueueFull as exc:
            st.error(f"Not started: {exc}")
    if right.button("Cancel", disabled=not busy, key=f"cancel_{experiment}"):
        job.cancel()
    if problem:
        st.error(f"Cannot run here: {problem}")
    return job


def _status_line(view: dict) -> None:
    status = view["status"]
    if status == "queued":
        st.info(f"Queued: place {view['queue_position']} in line (jobs start as workers free up).")
        return
    if status == "running":
        if view["progress"] == 0:  # the job is setting up: say what it is doing rather than show an empty bar
            st.progress(0.0, text=f"Starting: {view['message'] or 'preparing data and model'}…")
            return
        eta = f", about {view['eta']:.0f} s left" if view.get("eta") is not None else ""
        st.progress(view["progress"], text=f"Training: {view['progress']:.0%}{eta}. {view['message']}")
        return
    diverged = [r["name"] for r in view["runs"] if r["status"] == "diverged"]
    where = "from the disk cache" if view.get("from_cache") else f"in {view['elapsed']:.1f} s"
    if status == "done":
        if len(diverged) > 1:
            st.success(f"Done {where}. {len(diverged)} of {len(view['runs'])} runs diverged.")
        else:
            st.success(f"Done {where}." + (f" {diverged[0]} diverged." if diverged else ""))
    elif status == "cancelled":
        st.warning(f"Cancelled after {view['elapsed']:.1f} s; the checkpoints recorded so far are shown.")
    elif status == "failed":
        st.error(f"The run failed: {view['message']}")


def live(job: Job | None, draw: Callable[[dict], None], empty_text: str = "Press Run to train.") -> None:
    """Draw the job's record with `draw(view)`, redrawn while it trains (st.fragment): every 0.5 s for quick jobs,
    every 3 s for long ones (benchmarks/watched_run.py: a ResNet cpu-demo of 3 epochs took 63 s from the CLI and
    292 s in the app while a page redrew it every 0.5 s)."""
    if job is None:
        st.caption(empty_text)
        return
    running = not job.finished

    # A fragment re-runs on its own timer without re-running the page; the timer is off once finished.
    every = REFRESH_LONG if job.lane == "long" else REFRESH_SECONDS

    @st.fragment(run_every=every if running else None)
    def _panel() -> None:
        view = job.view()
        _status_line(view)
        draw(view)
        if running and job.finished:
            st.rerun()  # full rerun: redraw once more and switch the timer off

    _panel()


def downloads(view: dict, stem: str) -> None:
    """CSV (every run's history, long form) and JSON (the engine's export contract) download buttons."""
    left, right, _ = st.columns([1, 1, 3])
    csv = histories_frame(view).to_csv(index=False).encode()
    left.download_button("Download CSV", csv, f"{stem}.csv", "text/csv", key=f"csv_{stem}")
    right.download_button("Download JSON", json.dumps(export(view)).encode(), f"{stem}.json", "application/json",
                          key=f"json_{stem}")
