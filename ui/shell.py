"""The app's shell (st.navigation, sidebar) for a page opened without app.py.

With a `pages/` folder next to app.py, Streamlit runs a deep link opened on a fresh server in its legacy
multipage mode: the page script runs alone, without app.py's navigation and sidebar. Each page therefore
starts with `ensure_shell()`, which runs app.py in that case (app.py then runs the page) and stops the outer run.
"""

from __future__ import annotations

import runpy
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

APP = Path(__file__).resolve().parent.parent / "app.py"
FLAG = "_app_shell_run"


@contextmanager
def shell_running():
    """app.py runs the page inside this: the page's guard then knows the shell is there."""
    st.session_state[FLAG] = True
    try:
        yield
    finally:
        st.session_state[FLAG] = False


def ensure_shell() -> None:
    """Run app.py (navigation, sidebar, then this page) when the server runs app.py but app.py is not running
    this page. A page run on its own (AppTest, `streamlit run pages/x.py`) is left alone."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is None or Path(ctx.main_script_path).resolve() != APP or st.session_state.get(FLAG):
        return
    runpy.run_path(str(APP), run_name="__main__")
    st.stop()
