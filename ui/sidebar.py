"""Sidebar shown on every page: compute device, background jobs, and the disk cache."""

from __future__ import annotations

import streamlit as st

from ui.jobs import get_manager


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


def status_sidebar() -> None:
    """Device, running and queued jobs with their progress, and cache size with a clear button."""
    manager = get_manager()
    with st.sidebar:
        st.caption(f"Device: {device_description()}")
        active = [j for j in manager.jobs() if not j.finished]
        if active:
            st.caption("Background jobs")
            for job in active:
                view = job.view()
                where = f"queued #{view['queue_position']}" if view["status"] == "queued" else f"{view['progress']:.0%}"
                st.caption(f"• {job.experiment} {view.get('preset') or ''}: {where}")
        stats = manager.store.stats()
        st.caption(f"Cache: {stats['entries']} results, {stats['bytes'] / 1e6:.1f} MB in `{stats['path']}`")
        if st.button("Clear cache", key="clear_cache", help="Forget stored results (running jobs go on)."):
            manager.store.clear()
            for job in manager.jobs():
                if job.finished:
                    manager.forget(job.key)
            st.rerun()
