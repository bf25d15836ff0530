"""The reproduction (engine.reproduce, `python -m engine reproduce`, the Reproduction page): a small run of two
figures at two seeds writes the report, its rates are recomputed from the stored runs, the page draws the table
and links that open exactly the runs behind each rate, and the README's table is the stored report's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from streamlit.testing.v1 import AppTest

from engine import registry
from engine.core import claims
from engine.core.recording import Recorder
from engine.core.version import engine_version
from engine.reproduce import report as reports
from engine.reproduce.figures import FIGURES, RESNET_WORK, by_key, gpu_hours
from engine.reproduce.reproduction import plan
from engine.reproduce.stats import wilson
from engine.store import Store
from engine.toy import bouncing
from tests.page_helpers import PAGES
from ui.reproduction import seed_url

ROOT = Path(__file__).resolve().parent.parent
ONLY = "fig2,fig4"


def cli(*args):
    return subprocess.run([sys.executable, "-m", "engine", "reproduce", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """`reproduce --seeds 2 --only fig2,fig4` into a fresh cache: (report, its path, the cache, the CLI's output)."""
    folder = tmp_path_factory.mktemp("reproduce")
    path, cache = folder / "reproduction.json", folder / "cache"
    out = cli("--seeds", "2", "--only", ONLY, "--json", str(path), "--cache-dir", str(cache), "--workers", "2")
    assert out.returncode == 0, out.stderr
    return json.loads(path.read_text()), path, cache, out


@pytest.fixture
def page_cache(small, monkeypatch):
    """The page's job manager (one per process) on the small run's cache, recreated afterwards for other tests."""
    from ui.jobs import get_manager

    monkeypatch.setenv("SPARSE_SGD_CACHE", str(small[2]))
    get_manager.clear()
    yield small[2]
    get_manager.clear()


def test_the_report_has_its_schema(small):
    report, _, _, out = small
    assert report["schema"] == reports.SCHEMA and report["seeds"] == 2
    assert report["engine_version"] == engine_version() and report["wall_s"] > 0
    assert report["machine"]["cpus"] >= 1 and report["libraries"]["numpy"]
    assert report["points"] == dict(computed=4, cached=0, failed=0)
    assert [f["key"] for f in report["figures"]] == ONLY.split(",")
    for figure in report["figures"]:
        assert figure["kind"] == "checked"
        # the preset's own seed first, then the next ones
        first = registry.preset(figure["experiment"], figure["preset"])[1]
        first = getattr(first, figure["seed_field"])
        assert figure["seeds"] == [first, first + 1]
        for p in figure["points"]:
            assert p["status"] == "done" and p["checks"] and p["key"]
    for row in report["claims"]:
        assert {"figure", "section", "claim", "seeds", "holds", "rate", "interval", "holds_on", "fails_on",
                "obtained", "value", "threshold"} <= set(row)
        assert row["seeds"] == 2 and row["rate"] == row["holds"] / row["seeds"]
        lo, hi = row["interval"]
        assert 0 <= lo <= row["rate"] <= hi <= 1
        assert sorted(row["holds_on"] + row["fails_on"]) == sorted(next(
            f["seeds"] for f in report["figures"] if f["key"] == row["figure_key"]))
    assert sum(r["whole"] for r in report["claims"]) == 2  # one "whole figure" row per figure
    # one log line per figure, and the table on stdout
    for key in ONLY.split(","):
        assert sum(line.startswith(f"{key} (") for line in out.stderr.splitlines()) == 1
    assert "| Fig. 2 |" in out.stdout and "| Fig. 4 |" in out.stdout


def test_the_rates_are_recomputed_from_the_stored_runs(small):
    report, _, cache, _ = small
    store = Store(cache)
    for figure in report["figures"]:
        verdicts = {}
        for p in figure["points"]:
            config = registry.get(figure["experiment"]).Config.from_dict(p["config"])
            assert config.key(figure["experiment"]) == p["key"]
            result = store.get(p["key"])
            assert result is not None, "every seed's runs are in the cache"
            check = registry.claims_for(figure["experiment"], figure["preset"], result["config"])
            verdicts[p["seed"]] = check(result["runs"])
        rows = [r for r in report["claims"] if r["figure_key"] == figure["key"]]
        for row in rows:
            if row["whole"]:
                held = [s for s, checks in verdicts.items() if claims.holds(checks)]
            else:
                held = [s for s, checks in verdicts.items() if any(c.claim == row["claim"] and c.ok for c in checks)]
            assert row["holds_on"] == held and row["holds"] == len(held)
            assert row["rate"] == len(held) / len(verdicts)


def test_a_rerun_with_more_seeds_reuses_the_cached_ones(small, tmp_path):
    _, _, cache, _ = small
    path = tmp_path / "more.json"
    out = cli("--seeds", "3", "--only", ONLY, "--json", str(path), "--cache-dir", str(cache), "--quiet")
    assert out.returncode == 0, out.stderr
    report = json.loads(path.read_text())
    assert report["points"] == dict(computed=2, cached=4, failed=0)
    assert all(r["seeds"] == 3 for r in report["claims"])


def test_wilson_interval():
    # the Wilson score interval's textbook values (z = 1.96): 0/10 -> [0, 0.278], 7/10 -> [0.397, 0.892]
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson(7, 10) == pytest.approx((0.3968, 0.8922), abs=1e-4)
    assert wilson(10, 10)[1] == 1.0 and wilson(10, 10)[0] == pytest.approx(0.7225, abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)


def test_the_page_draws_the_table_and_links_that_open_the_same_runs(small, page_cache, monkeypatch):
    report, path, _, _ = small
    monkeypatch.setenv("SPARSE_SGD_REPRODUCTION", str(path))
    at = AppTest.from_file(str(PAGES / "reproduction.py"), default_timeout=60).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert len(table) == len(report["claims"])
    assert set(table["figure"]) == {"Fig. 2", "Fig. 4"}
    assert len(at.get("vega_lite_chart")) == 1
    links = [u for u in table["where it holds"].tolist() + table["where it fails"].tolist() if u]
    assert links, "every claim holds or fails somewhere"
    figures = {f["figure"]: f for f in report["figures"]}
    for figure_name, url in zip(table["figure"].tolist() * 2, table["where it holds"].tolist()
                                + table["where it fails"].tolist()):
        if not url:
            continue
        figure = figures[figure_name]
        query = {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}
        page, prefix = {"diagonal": ("diagonal", "diag_"), "relu1d": ("relu_1d", "relu_")}[figure["experiment"]]
        assert urlparse(url).path == page and query[f"{prefix}preset"] == figure["preset"]
    # each link is its seed's: the first seed where the claim holds, the first where it fails
    for (_, row), claim in zip(table.iterrows(), report["claims"], strict=True):
        figure = figures[claim["figure"]]
        points = {p["seed"]: p for p in figure["points"]}
        for column, seeds in (("where it holds", claim["holds_on"]), ("where it fails", claim["fails_on"])):
            assert row[column] == (seed_url(figure, points[seeds[0]]) if seeds else None)
    # and opens that seed's stored run on the figure's page: no training, the same verdict
    figure = figures["Fig. 4"]
    point = figure["points"][1]  # not the preset's own seed: the link has to carry it
    query = {k: v[0] for k, v in parse_qs(urlparse(seed_url(figure, point)).query).items()}
    assert json.loads(query["relu_set"])["seed"] == point["seed"]
    fig_page = AppTest.from_file(str(PAGES / "relu_1d.py"), default_timeout=60)
    for key, value in query.items():
        fig_page.query_params[key] = value
    fig_page.run()
    assert not fig_page.exception
    assert any(s.value.startswith("Done from the disk cache") for s in fig_page.success)
    verdict = "\n".join(m.value for m in fig_page.markdown)
    for check in point["checks"]:
        assert f"{'✓' if check['ok'] else '✗'} {check['claim']}: {check['obtained']}" in verdict


def test_the_page_without_a_report_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSE_SGD_REPRODUCTION", str(tmp_path / "none.json"))
    at = AppTest.from_file(str(PAGES / "reproduction.py"), default_timeout=60).run()
    assert not at.exception
    assert any("no reproduction stored yet" in i.value for i in at.info)
    assert at.button(key="run_reproduce")


def test_the_readme_table_is_the_stored_report():
    report = reports.read(reports.DEFAULT_PATH)
    text = (ROOT / "README.md").read_text()
    start, end = text.index(reports.README_START), text.index(reports.README_END) + len(reports.README_END)
    assert text[start:end] == reports.readme_block(report)
    # and it covers every small-model figure at 10 seeds
    assert report["seeds"] == 10
    assert {f["key"] for f in report["figures"]} >= {f.key for f in FIGURES if f.family == "small"}


def test_resnet_rows_say_their_gpu_hours_and_are_skipped_on_a_cpu(tmp_path):
    figures = plan(None, 10, "skip")
    assert {f.key for f in figures["skipped"]} == {f.key for f in FIGURES if f.family == "resnet"}
    assert all(gpu_hours(f, 10) > gpu_hours(f, 1) > 0 for f in figures["skipped"])
    # the cost table is the presets' own
    for f in figures["skipped"]:
        config = registry.preset("resnet", f.preset)[1]
        assert RESNET_WORK[f.preset] == (config.model, len(config.runs) * config.seeds, config.epochs)
    path = tmp_path / "r.json"
    out = cli("--seeds", "1", "--only", "fig7-plain,fig3", "--json", str(path), "--resnet", "skip",
              "--cache-dir", str(tmp_path / "cache"))
    assert out.returncode == 0, out.stderr
    assert "fig7-plain: about" in out.stderr and "GPU-hours" in out.stderr
    report = json.loads(path.read_text())
    kinds = {f["key"]: f["kind"] for f in report["figures"]}
    assert kinds == {"fig3": "shown", "fig7-plain": "skipped"} and report["claims"] == []
    assert "shown, no quantitative claim" in out.stdout and "GPU-hours" in out.stdout


def test_bad_input_is_one_line():
    for args, message in ((("--seeds", "0"), "--seeds 0: expected 1 to"),
                          (("--only", "fig99"), "--only: unknown figure fig99"),
                          (("--resnet", "tpu"), "--resnet 'tpu'"),
                          (("--workers", "-1"), "--workers=-1"),
                          (("--readme", "/nonexistent/README.md"), "--readme /nonexistent/README.md: cannot be read"),
                          (("--scheduler", "nonsense"), "--scheduler nonsense: no Dask scheduler answers there")):
        out = cli(*args)
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert out.stderr.startswith("error: ") and message in out.stderr


def _toy(config) -> dict:
    rec = Recorder("bouncing", config.to_dict())
    bouncing.run(config, rec)
    rec.close("done")
    return rec.view()


def test_prop3_holds_inside_the_interval_and_its_checks_can_fail():
    config = bouncing.PRESETS["prop3"].config
    check = registry.claims_for("bouncing", "prop3", config.to_dict())
    view = _toy(config)
    assert claims.holds(check(view["runs"]))
    # a run whose loss leaves the band, or that stops alternating, is refused
    sgd = next(r for r in view["runs"] if r["label"] == "SGD")
    low, high = bouncing.loss_bounds(config)
    stuck = dict(sgd, history=dict(sgd["history"], train_loss=[*sgd["history"]["train_loss"][:-1], high * 2],
                                   theta=[*sgd["history"]["theta"][:-2], 1.1, 1.1]))
    verdicts = [c.ok for c in check([stuck])]
    assert verdicts == [True, False, False]
    # outside Prop. 3's hypotheses there is nothing to check
    below = bouncing.PRESETS["below"].config
    assert registry.claims_for("bouncing", "prop3", below.to_dict())(_toy(below)["runs"]) == []


def test_every_figure_key_is_known_and_only_picks_them():
    assert [f.key for f in by_key(["fig5", "fig2"])] == ["fig5", "fig2"]
    with pytest.raises(ValueError, match="unknown figure"):
        by_key(["nope"])


def test_the_cpu_demo_runs_each_seed_on_every_run_of_its_table():
    from engine.reproduce.figures import CPU_DEMO
    from engine.reproduce.runner import seed_sweep

    figures = plan(["fig2"], 3, "cpu-demo")
    assert [f.key for f in figures["run"]] == ["fig2", "cpu-demo"]
    configs = seed_sweep(CPU_DEMO, 3).configs()
    first = registry.preset("resnet", "cpu-demo")[1].runs[0].seed
    assert [{r.seed for r in c.runs} for c in configs] == [{first}, {first + 1}, {first + 2}]


def test_the_page_button_runs_what_is_missing_in_the_background(small, page_cache, tmp_path, monkeypatch):
    from tests.page_helpers import run_until_done

    report, path, _, _ = small
    mine = tmp_path / "reproduction.json"
    mine.write_text(path.read_text())
    monkeypatch.setenv("SPARSE_SGD_REPRODUCTION", str(mine))
    at = AppTest.from_file(str(PAGES / "reproduction.py"), default_timeout=60).run()
    at.button(key="run_reproduce").click()
    at = run_until_done(at, timeout=300)
    again = json.loads(mine.read_text())
    # the stored scope again (2 seeds of fig2 and fig4), every seed from the cache, the same verdicts
    assert again["points"] == dict(computed=0, cached=4, failed=0)
    assert [(r["claim"], r["holds_on"]) for r in again["claims"]] == [(r["claim"], r["holds_on"])
                                                                      for r in report["claims"]]


def test_a_dask_cluster_gives_the_same_report_as_local_processes(tmp_path):
    from distributed import LocalCluster

    from engine.reproduce.reproduction import reproduce

    figures = plan(["prop3"], 2, "skip")
    local = reproduce(figures, 2, Store(tmp_path / "local"), "test", workers=1)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = reproduce(figures, 2, Store(tmp_path / "dask"), "test", scheduler=cluster.scheduler_address)
    assert remote["where"].startswith("Dask scheduler") and remote["points"]["computed"] == 2
    assert remote["claims"] == local["claims"] and len(local["claims"]) == 4
    assert [p["key"] for p in remote["figures"][0]["points"]] == [p["key"] for p in local["figures"][0]["points"]]


def test_a_seed_that_did_not_run_is_named_not_counted():
    from engine.reproduce.figures import by_key as figures_by_key

    figure = figures_by_key(["prop3"])[0]
    ok = [dict(claim="c", obtained="x", ok=True, value=None, threshold=None)]
    points = [dict(seed=0, status="done", checks=ok, holds=True, message=""),
              dict(seed=1, status="failed", checks=[], holds=None, message="boom")]
    rows = reports.claim_rows(figure, points)
    assert [(r["seeds"], r["holds"], r["not_run"]) for r in rows] == [(1, 1, [1]), (1, 1, [1])]


def test_ctrl_c_stops_the_workers_and_a_rerun_resumes_from_the_finished_seeds(tmp_path):
    import signal
    import time

    cache, path = tmp_path / "cache", tmp_path / "r.json"
    args = [sys.executable, "-m", "engine", "reproduce", "--seeds", "4", "--only", "fig2", "--workers", "1",
            "--json", str(path), "--cache-dir", str(cache)]
    # a child of a background shell ignores SIGINT: give it the default handler back (Python then raises
    # KeyboardInterrupt, as at a terminal)
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while Store(cache).stats()["entries"] < 1 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "cancelled: the finished seeds stay cached" in err, err
    assert "Traceback" not in err and not path.exists()
    kept = Store(cache).stats()["entries"]
    assert 1 <= kept < 4
    out = cli("--seeds", "4", "--only", "fig2", "--json", str(path), "--cache-dir", str(cache), "--quiet")
    assert out.returncode == 0, out.stderr
    assert json.loads(path.read_text())["points"] == dict(computed=4 - kept, cached=kept, failed=0)
