"""Helpers for AppTest page tests."""

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

PAGES = Path(__file__).resolve().parent.parent / "pages"


def open_page(name: str, **query: str) -> AppTest:
    """An AppTest of pages/<name>.py with URL query parameters, run once."""
    at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=60)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def charts(at: AppTest) -> int:
    """Number of Altair/Vega-Lite charts on the page."""
    return len(at.get("vega_lite_chart"))


def run_until_done(at: AppTest, timeout: float = 120, done=None) -> AppTest:
    """Re-run the page (as the live fragment would) until `done(at)` holds (default: a job reports Done)."""
    done = done or (lambda page: any(s.value.startswith("Done") for s in page.success))
    deadline = time.time() + timeout
    while time.time() < deadline:
        at.run()
        assert not at.exception, at.exception
        if done(at):
            return at
        time.sleep(0.3)
    pytest.fail("the run did not finish")
