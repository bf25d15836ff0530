"""Sidebar shown on every page: compute device, background jobs (what each one changes from its preset, a link
back to its settings), and the disk cache with its health and a confirmed clear."""

from __future__ import annotations

import streamlit as st

from engine import registry
from ui.jobs import get_manager, mine
from ui.links import PAGES, TITLES, changes, page_url


@st.cache_resource
def device_description() -> str:
    """'CUDA: <name>' when a GPU is usable, else 'CPU only' (torch imported once, lazily)."""
    try:
        import torch

        if torch.cuda.is_available():
            return f"CUDA: {torch.cuda.get_device_name(0)}"
    except Exception:
        pass
    return "CPU only (no CUDA device)"


def describe(job) -> tuple[str, str | None]:
    """'Diagonal nets · fig2 · steps, runs changed' and a link back to the job's settings (None when its page
    cannot show it)."""
    preset = job.recorder.data.get("preset")
    title = TITLES.get(job.experiment, job.experiment)
    module = registry.get(job.experiment)
    base = getattr(module, "PRESETS", {}).get(preset)
    if base is None:
        return f"{title}{' · ' + preset if preset else ''}", None
    diff = sorted(changes(job.config, base.config))
    text = f"{title} · {preset}" + (f" · {', '.join(diff)} changed" if diff else "")
    link = page_url(job.experiment, preset, base.config, job.config) if job.experiment in PAGES else None
    return text, link


def jobs_panel(manager) -> None:
    active = [j for j in manager.jobs() if not j.finished]
    if not active:
        return
    st.caption("Background jobs")
    for job in active:
        view = job.view()
        where = f"queued, place {view['queue_position']}" if view["status"] == "queued" else f"{view['progress']:.0%}"
        text, link = describe(job)
        owner = "" if job.key in mine() else " (started in another session)"
        back = f" [settings]({link})" if link else ""
        st.caption(f"• {text}: {where}{owner}{back}")
        if job.key in mine() and st.button("Cancel", key=f"sidebar_cancel_{job.key}", type="tertiary"):
            job.cancel()
            st.rerun()


def cache_panel(manager) -> None:
    store = manager.store
    if store.warning:
        st.warning(store.warning)
    stats = store.stats()
    st.caption(f"Cache: {stats['entries']} results, {stats['bytes'] / 1e6:.1f} MB in `{stats['path']}`")
    with st.popover("Clear cache…", help="Forget stored results (running jobs go on)."):
        summary = store.summary()
        total = sum(s["results"] for s in summary.values())
        resnet = summary.get("resnet", {})
        st.markdown(f"This drops **{total} results**"
                    + (f", among them {resnet['results']} ResNet jobs (about {resnet['seconds'] / 60:.0f} minutes "
                       "of training)" if resnet.get("results") else "")
                    + ". The cache is shared by every session of this server; running jobs go on.")
        if st.button(f"Yes, drop {total} results", key="clear_cache", type="primary", disabled=not total):
            store.clear()
            for job in manager.jobs():
                if job.finished:
                    manager.forget(job.key)
            st.rerun()


def status_sidebar() -> None:
    """Device, running and queued jobs with their progress, and the cache."""
    manager = get_manager()
    with st.sidebar:
        st.caption(f"Device: {device_description()}")
        jobs_panel(manager)
        cache_panel(manager)
