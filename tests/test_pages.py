"""Page tests with Streamlit's AppTest: presets open, runs complete, charts appear, bad input is a message."""

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

PAGES = Path(__file__).resolve().parent.parent / "app_pages"


def charts(at: AppTest) -> int:
    return len(at.get("vega_lite_chart"))


def run_until_done(at: AppTest, timeout: float = 120) -> AppTest:
    """Re-run the page (as the live fragment would) until its job reports Done."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        at.run()
        assert not at.exception, at.exception
        if any(s.value.startswith("Done") for s in at.success):
            return at
        time.sleep(0.3)
    pytest.fail("the run did not finish")


def test_toy_page_opens_on_its_preset_and_draws_everything():
    at = run_until_done(AppTest.from_file(str(PAGES / "toy_1d.py"), default_timeout=60))
    assert at.sidebar.selectbox(key="toy_preset").value == "prop3"
    assert any("inside" in s.value for s in at.success)
    assert charts(at) >= 5
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["max |SGD step − GD step on y + ξ|"]) < 1e-12
    assert abs(float(metrics["noise / 2L at the end"]) - 1) < 0.1


def test_toy_page_moves_with_the_step_size_and_explains_bad_input():
    at = AppTest.from_file(str(PAGES / "toy_1d.py"), default_timeout=60)
    at.run()
    at.sidebar.number_input(key="toy_eta").set_value(0.9).run()
    assert any("below" in i.value for i in at.info)
    at.sidebar.number_input(key="toy_a").set_value(1.2).run()
    assert not at.exception
    assert any("must be below b" in e.value for e in at.error)
