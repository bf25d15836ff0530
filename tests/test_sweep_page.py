"""The sweep page (AppTest): a tiny grid fills its cells, a cell links to its page, bad axes are a message."""

from urllib.parse import parse_qs, urlparse

from streamlit.testing.v1 import AppTest

from tests.page_helpers import PAGES, charts, open_page, run_until_done


def sweep_page(**query: str) -> AppTest:
    return open_page("sweeps", **query)


def test_the_page_opens_on_the_fig2_map():
    at = sweep_page()
    assert not at.exception
    assert at.sidebar.selectbox(key="sweep_preset").value == "map-fig2"
    assert at.sidebar.text_input(key="sweep_v1").value == "0.2:0.3:11"
    assert any("44 points × 10 seeds" in m.value for m in at.markdown)


def test_a_tiny_grid_fills_its_cells():
    at = sweep_page(sweep_preset="fig2", sweep_ax1="runs.1.lr", sweep_v1="0.27,0.29", sweep_ax2="runs.1.decay_at",
                    sweep_v2="0.1,0.5", sweep_seeds="2", sweep_base='{"steps":2001}', sweep_workers="2")
    assert any("4 points × 2 seeds" in m.value for m in at.markdown), [m.value for m in at.markdown]
    at.button(key="run_sweep").click()
    at = run_until_done(at, timeout=180)
    assert charts(at) >= 2  # the metric heatmap and the diverged-share heatmap
    assert any("4 points computed" in c.value for c in at.caption)
    table = at.dataframe[0].value
    assert len(table) == 4 and (table["status"] == "done").all() and table["l0_norm_median"].notna().all()


def test_bad_axes_are_a_message():
    at = sweep_page(sweep_preset="fig2", sweep_ax1="runs.1.lr", sweep_v1="0.2:900:3")
    assert not at.exception
    assert any("outside the allowed range" in e.value for e in at.error)


def test_a_cell_link_opens_the_same_config_on_its_page():
    from engine.diagonal import experiment as diagonal
    from engine.sweeps import grid as sweeps
    from ui.links import page_url

    plan = sweeps.build("diagonal", "map-fig2", axes=["runs.0.lr=0.27,0.28"], seeds=2)
    url = page_url("diagonal", "fig2", diagonal.PRESETS["fig2"].config, plan.configs()[1])
    query = {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}
    assert urlparse(url).path == "diagonal"
    at = AppTest.from_file(str(PAGES / "diagonal.py"), default_timeout=60)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception
    assert any("From the link" in c.value and "checkpoints=20" in c.value for c in at.sidebar.caption)
    runs = at.dataframe(key="diag_runs_editor").value
    assert runs["lr"].tolist() == [0.28] and runs["decay_factor"].tolist() == [1.5]
    assert at.sidebar.number_input(key="diag_seeds").value == 2
