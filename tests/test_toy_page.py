"""AppTest for the toy page: it opens on Prop. 3 and draws everything, trains inline (no background job), takes η
to full precision (number box, zoom slider, URL), gives SGD and GD one colour each on every chart, and explains bad
input."""

import json

import pytest
from streamlit.testing.v1 import AppTest

from engine.jobs import JobManager
from tests.page_helpers import PAGES, charts, open_page


def toy_page(**query: str) -> AppTest:
    return open_page("toy_1d", **query)


def test_toy_page_opens_on_its_preset_and_draws_everything():
    at = toy_page()
    assert not at.exception
    assert at.sidebar.selectbox(key="toy_preset").value == "prop3"
    assert any("inside" in s.value for s in at.success)
    assert charts(at) >= 5  # θ, loss, cobweb, bifurcation, label noise
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["max |SGD step − GD step on y + ξ|"]) < 1e-12
    assert abs(float(metrics["noise / 2L at the end"]) - 1) < 0.1
    assert any(c.value.startswith("**What to look at:**") for c in at.caption)
    assert any("arxiv.org" in c.value and "Proposition 3" in c.value for c in at.caption)


def test_toy_page_moves_with_the_step_size_and_explains_bad_input():
    at = toy_page()
    at.sidebar.number_input(key="toy_eta").set_value(0.9).run()
    assert any("below" in i.value for i in at.info)
    at.sidebar.slider(key="toy_a").set_value(1.2).run()
    assert not at.exception
    assert any("must be below b" in e.value for e in at.error)


def test_toy_page_trains_inline_without_a_background_job(monkeypatch):
    """Issue 8: a page load or a move of η must not create a job (the toy trains in a tenth of a second)."""
    submitted = []
    monkeypatch.setattr(JobManager, "submit", lambda self, *args, **kwargs: submitted.append(args))
    at = toy_page(toy_steps="300")
    at.sidebar.number_input(key="toy_eta").set_value(1.115).run()
    assert not at.exception
    assert submitted == []
    assert charts(at) >= 5 and any(s.value.startswith("SGD is GD with label noise") for s in at.subheader)


def test_eta_is_taken_to_full_precision_from_the_url_the_box_and_a_zoom_on_the_interval():
    """Issue 9: on a 0.01-5 slider Prop. 3's interval (1.108-1.134) was one pixel and η was shown to 6 digits."""
    at = toy_page(toy_eta="1.123456789")
    assert at.sidebar.number_input(key="toy_eta").value == 1.123456789
    assert any("η = 1.123456789 lies **inside**" in s.value for s in at.success)
    zoom = at.slider(key="toy_eta_zoom")
    assert zoom.min < 1.108 and 1.134 < zoom.max and zoom.max - zoom.min < 0.1   # the interval is a third of it
    assert zoom.value == 1.123456789
    zoom.set_value(1.1101).run()
    assert at.sidebar.number_input(key="toy_eta").value == 1.1101
    assert at.query_params["toy_eta"] in ("1.1101", ["1.1101"])
    assert any("η = 1.1101 lies **inside**" in s.value for s in at.success)


def color_scales(spec) -> list[dict]:
    """The colour scales of every encoding in a Vega-Lite spec, with the field they colour."""
    out = []
    if isinstance(spec, dict):
        enc = spec.get("encoding", {}).get("color")
        if isinstance(enc, dict) and "field" in enc:
            out.append(dict(field=enc["field"], **enc.get("scale", {})))
        for value in spec.values():
            out += color_scales(value)
    elif isinstance(spec, list):
        for value in spec:
            out += color_scales(value)
    return out


@pytest.mark.parametrize("algorithms", ["SGD + GD", "GD"])
def test_sgd_and_gd_keep_one_colour_on_every_chart(algorithms):
    at = toy_page(toy_algorithms=algorithms)
    runs = [s for chart in at.get("vega_lite_chart") for s in color_scales(json.loads(chart.proto.spec))
            if s["field"] in ("label", "algorithm")]
    assert len(runs) >= 3   # θ, loss, bifurcation
    assert all(s.get("domain") == ["SGD", "GD"] and s.get("scheme") == "tableau10" for s in runs), runs


# ----------------------------------------------------------------------------- the Overview (page 0)
def test_the_overview_shows_a_picture_and_a_link_per_page():
    at = AppTest.from_file(str(PAGES.parent / "app.py"), default_timeout=60).run()   # the app opens on it
    assert not at.exception
    links = {link.proto.page: link.proto.label for link in at.get("page_link")}
    assert set(links) == {"toy_1d", "diagonal", "relu_1d", "teacher_student", "resnet", "sweeps"}
    pictures = [p for p in ("toy_1d", "diagonal", "relu_1d", "teacher_student", "resnet", "sweeps")
                if (PAGES.parent / "docs" / f"{p}.png").exists()]
    assert len(pictures) >= 5 and len(at.get("image")) == len(pictures)   # sweeps.png once it exists
