"""End to end: the real app (`streamlit run app.py`) driven in Debian's headless Chromium by Playwright."""

import os
import shutil
from pathlib import Path

import pytest

from tools.app_server import CHROMIUM_ARGS, serve

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """The app on a free local port with its own cache folder; stopped afterwards."""
    with serve(tmp_path_factory.mktemp("cache")) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def open_page(browser, url):
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    page.requested = []  # every URL the page asks for (nothing may leave the machine)
    page.on("request", lambda request: page.requested.append(request.url))
    page.goto(url)
    page.wait_for_selector("[data-testid='stApp']", timeout=30000)
    return page


def test_a_deep_link_on_a_fresh_server_opens_inside_the_app(tmp_path, browser):
    """With a pages/ folder, Streamlit runs a deep link opened on a fresh server without app.py (legacy mode):
    the page's guard must bring the app's navigation and sidebar."""
    with serve(tmp_path / "cache") as url:
        page = open_page(browser, f"{url}/diagonal?diag_steps=3001")
        page.get_by_text("Diagonal linear networks").first.wait_for(timeout=60000)
        page.get_by_text("Device:", exact=False).first.wait_for(timeout=60000)  # the app's sidebar
        assert page.get_by_text("2 · Diagonal linear nets").count() >= 1     # the app's navigation
        assert page.get_by_text("Diagonal linear networks").count() == 1     # the page drawn once
        page.close()


def outside(urls: list[str]) -> list[str]:
    """Requests to anywhere but this machine (data: and blob: URLs stay in the page)."""
    local = ("http://127.0.0.1", "http://localhost", "ws://127.0.0.1", "ws://localhost", "data:", "blob:")
    return [u for u in urls if not u.startswith(local)]


def test_nothing_is_fetched_from_outside_and_there_is_no_deploy_button(app_url, browser):
    page = open_page(browser, f"{app_url}/")
    page.get_by_text("SGD with large step sizes learns sparse features").first.wait_for(timeout=60000)
    page.get_by_text("Device:", exact=False).first.wait_for(timeout=60000)
    page.wait_for_timeout(1500)
    assert page.get_by_text("Deploy", exact=True).count() == 0
    assert not outside(page.requested), outside(page.requested)
    page.close()


def test_toy_page_trains_on_open_and_draws_its_charts(app_url, browser):
    page = open_page(browser, f"{app_url}/toy_1d")
    page.get_by_text("inside", exact=False).first.wait_for(timeout=30000)
    page.locator(".vega-embed").nth(3).wait_for(timeout=30000)
    assert page.locator(".vega-embed").count() >= 5  # θ, loss, cobweb, bifurcation, label noise
    assert page.get_by_text("SGD is GD with label noise").count() == 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "toy_1d.png"), full_page=True)
    page.close()


def chart_texts(page) -> str:
    """Every text drawn in the page's charts (titles, axis titles, legends)."""
    return " ".join(page.locator(".vega-embed svg text").all_text_contents())


def test_diagonal_page_runs_fig2_and_checks_the_papers_claims(app_url, browser):
    page = open_page(browser, f"{app_url}/diagonal")
    page.get_by_role("button", name="Run", exact=True).click()
    page.locator(".vega-embed").first.wait_for(timeout=60000)
    page.get_by_text("Expected (paper) vs obtained", exact=False).first.wait_for(timeout=120000)
    page.get_by_text("rank φ(X) of the longest large-step phase", exact=False).first.wait_for(timeout=30000)
    assert page.get_by_text("✓", exact=False).count() >= 6 and page.get_by_text("✗", exact=False).count() == 0
    page.get_by_text("Final values").wait_for(timeout=30000)
    page.locator(".vega-embed").nth(4).wait_for(timeout=30000)  # 4 live charts + the final |β|
    for label in ("‖u ⊙ v‖₀", "rank φ(X)"):
        page.locator(".vega-embed svg text", has_text=label).first.wait_for(timeout=30000)
    texts = chart_texts(page)
    assert "l0_norm" not in texts and "ntk_rank" not in texts
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "diagonal.png"), full_page=True)
    page.close()


def test_a_small_run_keeps_its_url_settings_through_the_run(app_url, browser):
    page = open_page(browser, f"{app_url}/diagonal?diag_steps=20001")
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Final values").wait_for(timeout=120000)
    # the settings survive the reruns of a run (a widget re-created with other arguments would reset)
    steps = page.locator("[data-testid='stSidebar'] input[type='number']").nth(4)
    assert steps.input_value() == "20001"
    page.close()


@pytest.mark.parametrize("path, shot, labels", [
    ("relu_1d?relu_steps=3001", "relu_1d.png", ("feature sparsity", "rank φ(X)")),
    ("teacher_student?ts_steps=3001&ts_seed=4", "teacher_student.png", ("w₁", "w₂", "rank φ(X)"))])
def test_relu_pages_run_and_draw_the_predictor_or_the_neuron_scatter(app_url, browser, path, shot, labels):
    page = open_page(browser, f"{app_url}/{path}")
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Done", exact=False).first.wait_for(timeout=120000)
    page.get_by_text("Drawn checkpoint", exact=False).first.wait_for(timeout=30000)
    page.locator(".vega-embed").nth(4).wait_for(timeout=30000)
    for label in labels:  # charts render one after the other: wait for each title
        page.locator(".vega-embed svg text", has_text=label).first.wait_for(timeout=30000)
    assert "ntk_rank" not in chart_texts(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
    page.close()


def test_resnet_page_opens_on_the_cpu_demo_without_a_gpu_or_cifar(app_url, browser):
    page = open_page(browser, f"{app_url}/resnet")
    page.get_by_text("ResNets on CIFAR", exact=False).first.wait_for(timeout=30000)
    page.get_by_role("button", name="Run", exact=True).wait_for(timeout=30000)
    assert page.get_by_text("cpu-demo", exact=False).count() >= 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "resnet.png"), full_page=True)
    page.close()


def test_cifar_can_be_downloaded_from_a_fresh_checkout(app_url, browser):
    """No data folder yet: the page says CIFAR-10 is missing and offers the download button."""
    page = open_page(browser, f"{app_url}/resnet?resnet_dataset=cifar10")
    page.get_by_role("button", name="Download CIFAR-10").wait_for(timeout=60000)
    page.close()


def test_the_overview_links_every_page(app_url, browser):
    page = open_page(browser, f"{app_url}/")
    page.get_by_text("SGD with large step sizes learns sparse features").first.wait_for(timeout=60000)
    main = page.locator("[data-testid='stMain']")
    for title in ("Toy model", "Diagonal linear nets", "ReLU net in 1D", "Teacher-student", "ResNets", "Sweeps"):
        main.get_by_role("link", name=title).first.wait_for(timeout=30000)
    main.get_by_role("link").filter(has_text="Diagonal linear nets").first.click()
    page.get_by_text("Diagonal linear networks").first.wait_for(timeout=60000)
    page.close()


def test_sweep_page_fills_the_heatmaps_and_a_cell_opens_its_page(app_url, browser):
    query = ("sweep_preset=fig2&sweep_ax1=runs.3.lr&sweep_v1=0.27,0.28&sweep_ax2=runs.3.decay_at&sweep_v2=0.3,0.5"
             "&sweep_seeds=2&sweep_base=%7B%22steps%22%3A5001%7D")
    page = open_page(browser, f"{app_url}/sweeps?{query}")
    page.get_by_text("4 points × 2 seeds", exact=False).first.wait_for(timeout=30000)
    page.get_by_role("button", name="Run sweep", exact=True).click()
    page.get_by_text("Done", exact=False).first.wait_for(timeout=180000)
    page.get_by_text("4 points computed", exact=False).first.wait_for(timeout=30000)
    assert page.locator(".vega-embed").count() >= 2  # the metric heatmap and the diverged share
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "sweeps.png"), full_page=True)
    page.locator(".vega-embed canvas, .vega-embed svg").first.click(position={"x": 120, "y": 60})
    page.get_by_text("Open runs.3.lr", exact=False).first.wait_for(timeout=30000)
    page.close()
