"""AppTest for the ReLU pages: a small preset run completes, the predictor / neuron scatter and the charts are
drawn, the time scrubber changes the drawn checkpoint, and a bad value is a message, not a traceback."""

import json

import pytest
from streamlit.testing.v1 import AppTest

from engine.experiments import relu1d
from engine.experiments import teacher_student as ts
from tests.page_helpers import PAGES, run_until_done


def drawn_step(at: AppTest) -> str:
    return next(c.value for c in at.caption if c.value.startswith("Drawn checkpoint"))


@pytest.mark.parametrize("page, prefix, experiment, preset, charts", [
    ("relu_1d.py", "relu", "relu1d", "fig4", 1 + 5 + 5),             # predictor, 5 metrics, Fig. 10 strip
    ("teacher_student.py", "ts", "teacher_student", "fig5", 4 + 6),  # one scatter per run, 6 metrics
])
def test_page_runs_its_preset_and_the_scrubber_moves_the_drawing(page, prefix, experiment, preset, charts):
    at = AppTest.from_file(str(PAGES / page), default_timeout=60)
    at.query_params[f"{prefix}_steps"] = "2000"       # a short run, set through the URL like a shared link
    at.run()
    assert at.sidebar.selectbox(key=f"{prefix}_preset").value == preset
    at.button(key=f"run_{experiment}").click()
    at = run_until_done(at)
    assert len(at.get("vega_lite_chart")) >= charts
    assert any(s.value == "Final values" for s in at.subheader)
    assert drawn_step(at).startswith("Drawn checkpoint: iteration 2,000.")
    at.toggle(key=f"{prefix}_follow").set_value(False).run()
    slider = at.select_slider(key=f"{prefix}_step")
    earlier = slider.options[len(slider.options) // 3]
    slider.set_value(int(earlier)).run()
    assert not at.exception
    assert drawn_step(at).startswith(f"Drawn checkpoint: iteration {int(earlier):,}.")


def test_relu_page_bad_value_is_a_message():
    at = AppTest.from_file(str(PAGES / "relu_1d.py"), default_timeout=60)
    at.run()
    runs = at.dataframe(key="relu_runs_editor").value
    assert runs["name"].tolist() == ["warmup 2%", "warmup 50%"]
    row = {**relu1d.RunSpec().to_dict(), "name": "a"}
    at.query_params["relu_runs"] = json.dumps([row, row])
    at.run()
    assert not at.exception
    assert any("names must differ" in e.value for e in at.error)


def test_teacher_student_page_bad_value_is_a_message():
    at = AppTest.from_file(str(PAGES / "teacher_student.py"), default_timeout=60)
    at.run()
    at.sidebar.number_input(key="ts_n").set_value(3).run()
    assert not at.exception
    at.query_params["ts_runs"] = json.dumps([{**ts.RunSpec().to_dict(), "name": "big", "batch_size": 5}])
    at.run()
    assert any("batch_size=5 is larger than the n=3" in e.value for e in at.error)
