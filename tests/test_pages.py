"""Page tests with Streamlit's AppTest: presets open, runs complete, charts appear, bad input is a message."""

import time

from streamlit.testing.v1 import AppTest

from tests.page_helpers import PAGES, charts, open_page, run_until_done


def test_diagonal_page_runs_a_small_fig2_and_shows_charts_table_and_beta():
    at = AppTest.from_file(str(PAGES / "diagonal.py"), default_timeout=60)
    at.query_params["diag_steps"] = "5001"  # settings come from the URL like a shared link
    at.run()
    assert at.sidebar.selectbox(key="diag_preset").value == "fig2"
    runs = at.dataframe(key="diag_runs_editor").value
    assert runs["name"].tolist() == ["small step", "large, decay at 10%", "large, decay at 30%", "large, decay at 50%"]
    assert runs["lr"].tolist() == [0.25, 0.282, 0.282, 0.282]
    at.button(key="run_diagonal").click()
    at = run_until_done(at)
    assert charts(at) >= 5  # train loss, test loss, rank, l0, final beta
    assert any(s.value == "Final values" for s in at.subheader)
    finals = at.dataframe[-1].value
    assert set(finals["run"]) == set(runs["name"]) and finals["‖u ⊙ v‖₀"].notna().all()  # the paper's notation


def test_diagonal_page_bad_setting_is_a_message():
    at = AppTest.from_file(str(PAGES / "diagonal.py"), default_timeout=60)
    at.run()
    at.sidebar.number_input(key="diag_r").set_value(300).run()
    assert not at.exception
    assert any("r=300 must not exceed d=200" in e.value for e in at.error)


def test_following_the_edge_finder_leads_to_sparse_features():
    """Issue 9: on fig2 the finder's proposal (measured, not 0.95 x the edge) must sparsify when run."""
    at = AppTest.from_file(str(PAGES / "diagonal.py"), default_timeout=60).run()
    at.button(key="run_diagonal_edge").click()
    deadline = time.time() + 240
    while time.time() < deadline:
        at.run()
        if any(m.value.startswith("**Proposal") for m in at.markdown):
            break
        time.sleep(0.5)
    proposal = float(next(m.value for m in at.markdown if m.value.startswith("**Proposal")).split("**")[1].split()[1])
    assert 0.26 < proposal < 0.30
    at.button(key="edge_apply").click().run()
    assert not at.exception
    lrs = at.dataframe(key="diag_runs_editor").value["lr"].tolist()
    assert lrs == [0.25, proposal, proposal, proposal]
    at.button(key="run_diagonal").click()
    at = run_until_done(at, done=lambda page: any(s.value == "Final values" for s in page.subheader))
    finals = at.dataframe[-1].value.set_index("run")["‖u ⊙ v‖₀"]
    assert finals["small step"] == 200 and finals["large, decay at 50%"] <= 0.9 * 200


# ----------------------------------------------------------------------------- links and the runs table (issue 9)
def diagonal_page(**query: str) -> AppTest:
    return open_page("diagonal", **query)


def test_a_run_missing_keys_or_an_empty_table_in_the_link_is_a_message_not_a_traceback():
    at = diagonal_page(diag_runs='[{"name":"x","algorithm":"SGD","lr":0.1}]')
    assert not at.exception
    runs = at.dataframe(key="diag_runs_editor").value
    assert runs["name"].tolist() == ["x"] and runs["lr"].tolist() == [0.1]
    assert runs["decay_factor"].tolist() == [1.0]  # the missing keys took the preset's first run's values
    at = diagonal_page(diag_runs="[]")
    assert not at.exception and any("has no runs" in w.value for w in at.warning)
    assert len(at.dataframe(key="diag_runs_editor").value) == 4


def test_bad_link_values_are_named():
    at = diagonal_page(diag_runs='[{"name":"x","algorithm":"SGD","lr":NaN}]', diag_steps="abc", diag_preset="fig99")
    assert not at.exception
    shown = " ".join(w.value for w in at.warning)
    assert "runs.0.lr=nan" in shown and "`diag_steps=abc`" in shown and "`diag_preset=fig99`" in shown
    assert at.dataframe(key="diag_runs_editor").value["lr"].tolist() == [0.25]


def test_step_sizes_keep_full_precision_in_the_table_and_the_link():
    at = diagonal_page(diag_runs='[{"name":"a","algorithm":"SGD","lr":0.27123},{"name":"b","algorithm":"SGD",'
                                 '"lr":0.26475}]')
    assert at.dataframe(key="diag_runs_editor").value["lr"].tolist() == [0.27123, 0.26475]
    assert '"lr":0.27123' in at.query_params["diag_runs"] and '"lr":0.26475' in at.query_params["diag_runs"]
    columns = at.dataframe(key="diag_runs_editor").proto.columns
    assert '"step"' not in columns.split('"lr"')[1].split("}")[0]  # a step would make the editor round input


def test_runs_table_edits_survive_a_visit_to_another_page():
    at = AppTest.from_file(str(PAGES.parent / "app.py"), default_timeout=60).run()
    at.switch_page("pages/diagonal.py")
    at.query_params["diag_runs"] = '[{"name":"mine","algorithm":"SGD","lr":0.27123}]'
    at.run()
    at.switch_page("pages/relu_1d.py")
    at.query_params.clear()  # the browser drops the query string when it follows a navigation link
    at.run()
    at.switch_page("pages/diagonal.py").run()
    assert at.dataframe(key="diag_runs_editor").value["name"].tolist() == ["mine"]
    assert '"lr":0.27123' in at.query_params["diag_runs"]


def test_after_fig2_the_page_checks_the_papers_claims_on_the_result():
    at = diagonal_page()
    at.button(key="run_diagonal").click()
    at = run_until_done(at, done=lambda page: any(s.value == "Final values" for s in page.subheader))
    box = " ".join(m.value for m in at.markdown)
    assert "Expected (paper) vs obtained" in box and "seed 6" in box
    assert box.count("✓") == 6 and "✗" not in box
    assert "43x, 54x, 65x" in box and "200 (small) → 150 → 87 → 72" in box


def test_the_sidebar_names_a_jobs_changes_links_back_and_confirms_clearing():
    at = AppTest.from_file(str(PAGES.parent / "app.py"), default_timeout=60).run()
    at.switch_page("pages/diagonal.py")
    at.query_params["diag_steps"] = "1000001"
    at.run()
    at.button(key="run_diagonal").click().run()
    entry = next(c.value for c in at.sidebar.caption if c.value.startswith("• 2 · Diagonal linear nets · fig2"))
    assert "steps changed" in entry and "[settings](diagonal?" in entry and "another session" not in entry
    at.button(key="cancel_diagonal").click().run()
    assert any(b.label.startswith("Yes, drop") for b in at.sidebar.button)  # clearing asks first
