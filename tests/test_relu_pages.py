"""AppTest for the ReLU pages: a small preset run completes, the predictor / neuron scatter and the charts are
drawn, the time scrubber changes the drawn checkpoint, several seeds give median + band curves and per-run counts
of diverged (and stuck) seeds, and a bad value is a message, not a traceback."""

import json

import pytest
from streamlit.testing.v1 import AppTest

from engine.relu import relu1d
from engine.relu import teacher_student as ts
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


def has_band(at: AppTest) -> bool:
    """Whether some chart draws a 10-90% band (an area layer) under its median line."""
    return any('"area"' in chart.proto.spec for chart in at.get("vega_lite_chart"))


def test_relu_page_with_two_seeds_shows_bands_and_counts_diverged_and_stuck_seeds():
    at = AppTest.from_file(str(PAGES / "relu_1d.py"), default_timeout=60)
    for key, value in dict(relu_steps="300", relu_checkpoints="10", relu_seeds="2").items():
        at.query_params[key] = value
    at.query_params["relu_runs"] = json.dumps([{**relu1d.RunSpec().to_dict(), "name": "huge", "lr": 0.05},
                                               {**relu1d.RunSpec().to_dict(), "name": "ok"}])
    at.run()
    assert at.sidebar.number_input(key="relu_seeds").value == 2
    at.button(key="run_relu1d").click()
    at = run_until_done(at)
    assert has_band(at)
    assert any(c.value.startswith("Curves: median over seeds 3–4") for c in at.caption)
    # 300 steps: the huge step blows up in both seeds, the other run has not fit yet (train loss > STUCK_LOSS)
    assert [w.value for w in at.warning] == ["Diverged: huge: 2 of 2 seeds"]
    assert any(i.value.endswith("ok: 2 of 2 seeds") for i in at.info)
    assert any(s.value.endswith("(seed 3)") for s in at.subheader)
    assert at.dataframe[-1].value["run"].tolist() == ["huge [seed 3]", "huge [seed 4]", "ok [seed 3]", "ok [seed 4]"]


def test_teacher_student_page_with_two_seeds_draws_the_first_seeds_neurons_and_counts_diverged_seeds():
    at = AppTest.from_file(str(PAGES / "teacher_student.py"), default_timeout=60)
    for key, value in dict(ts_steps="300", ts_checkpoints="10", ts_seeds="2").items():
        at.query_params[key] = value
    at.run()
    at.button(key="run_teacher_student").click()
    at = run_until_done(at)
    assert has_band(at)
    assert len(at.get("vega_lite_chart")) == 4 + 6               # one scatter per run of seed 0, 6 metrics
    assert "(seed 0)" in at.get("vega_lite_chart")[0].proto.spec
    # step 0.455 blows up from seed 1's init (at step 14), not from seed 0's
    warning = next(w.value for w in at.warning)
    assert warning.startswith("Diverged") and "large, decay at 10%: 1 of 2 seeds (diverged at step 14" in warning
    assert "small step" not in warning


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


# ----------------------------------------------------------------------------- issue 9: the paper on the page
def expected_box(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown if "✓" in m.value or "✗" in m.value or "Expected" in m.value)


def test_fig9_opens_on_its_over_regularized_seed_and_says_how_often():
    """At the paper's seed 3 both runs fit: the preset opens at a seed where the 50% run sticks, and says how
    often that happens."""
    at = AppTest.from_file(str(PAGES / "relu_1d.py"), default_timeout=60)
    at.query_params["relu_preset"] = "fig9"
    at.run()
    assert any("3 of seeds 3-22" in c.value for c in at.sidebar.caption)
    at.button(key="run_relu1d").click()
    at = run_until_done(at)
    box = expected_box(at)
    assert "Expected (paper) vs obtained" in box and box.count("✓") == 3 and "✗" not in box
    assert any(i.value.startswith("Stuck") and "warmup 50%: 1 of 1 seed" in i.value for i in at.info)


def test_fig5_opens_on_a_seed_where_the_neurons_align():
    at = AppTest.from_file(str(PAGES / "teacher_student.py"), default_timeout=60)
    at.run()
    at.button(key="run_teacher_student").click()
    at = run_until_done(at)
    box = expected_box(at)
    assert "seed 0" in box and box.count("✓") == 3 and "✗" not in box


def specs(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]


def test_fig10_strip_says_when_a_panel_is_off_the_labels_scale():
    at = AppTest.from_file(str(PAGES / "relu_1d.py"), default_timeout=60)
    at.query_params["relu_steps"] = "2000"
    at.run()
    at.button(key="run_relu1d").click()
    at = run_until_done(at)
    # at t = 0 the init's predictor lies at h ~ -280..-160, far below the labels (-1.7..2.3)
    strip = [s for s in specs(at) if str(s.get("title", "")).startswith("t = ")]
    assert len(strip) == 5 and strip[0]["title"] == "t = 0 (own y scale)"
    assert any(c.value.startswith("Panels share the labels' y range") and "t = 0: h from" in c.value
               for c in at.caption)
    # the paper's notation in the table and on the charts, not the engine's names
    finals = at.dataframe[-1].value
    assert {"train loss", "rank φ(X)", "feature sparsity", "kinks"} <= set(finals.columns)
    assert not {"ntk_rank", "train_loss", "feature_sparsity"} & set(finals.columns)
    shown = json.dumps([{k: v for k, v in s.items() if k != "datasets"} for s in specs(at)], ensure_ascii=False)
    assert "ntk_rank" not in shown and "feature_sparsity" not in shown and "rank φ(X)" in shown
    assert "Expected (paper) vs obtained" in expected_box(at)   # fig4's claims, checked on the run
    assert any(c.value.startswith("**What to look at:**") for c in at.caption)


def test_teacher_student_scatters_are_square_on_one_range_with_axis_titles_and_run_colours():
    at = AppTest.from_file(str(PAGES / "teacher_student.py"), default_timeout=60)
    at.query_params["ts_steps"] = "500"
    at.run()
    at.button(key="run_teacher_student").click()
    at = run_until_done(at)
    scatters = specs(at)[:4]
    domains = []
    for spec, run in zip(scatters, ["small step", "large, decay at 10%", "large, decay at 30%",
                                    "large, decay at 50%"], strict=True):
        assert spec["title"].startswith(run)
        assert spec["width"] == spec["height"]
        x, y = spec["layer"][0]["encoding"]["x"], spec["layer"][0]["encoding"]["y"]
        assert x["scale"]["domain"] == y["scale"]["domain"]
        assert x["title"] == "w₁" and y["title"] == "w₂"
        domains.append(x["scale"]["domain"])
    assert all(d == domains[0] for d in domains)
    # the neurons take their run's colour, the one the metric charts give it
    colours = [spec["layer"][-1]["mark"]["color"] for spec in scatters]
    assert colours == ["#4c78a8", "#f58518", "#e45756", "#72b7b2"]


def test_fig6_has_no_alignment_panel_and_says_why():
    at = AppTest.from_file(str(PAGES / "teacher_student.py"), default_timeout=60)
    for key, value in dict(ts_preset="fig6", ts_steps="300", ts_checkpoints="10").items():
        at.query_params[key] = value
    at.run()
    at.button(key="run_teacher_student").click()
    at = run_until_done(at)
    titles = [str(s.get("title", "")) for s in specs(at)]
    assert not any(t.startswith("Share of neurons") for t in titles)
    assert any(t.startswith("Feature sparsity, hidden layer 2") for t in titles)
    assert any(c.value.startswith("No alignment panel for three layers") for c in at.caption)
    assert "neurons aligned with the teacher" not in at.dataframe[-1].value.columns


def test_a_job_that_has_not_logged_yet_says_what_it_is_doing():
    def page():
        from ui.charts import waiting

        waiting(dict(status="running", progress=0.0, message=""), "compiling the training loop")
        waiting(dict(status="running", progress=0.0, message="loading CIFAR"), "compiling")
        waiting(dict(status="running", progress=0.2, message="step 10"), "compiling")

    at = AppTest.from_function(page).run()
    assert [i.value for i in at.info] == ["Starting: compiling the training loop…", "Starting: loading CIFAR…"]
