"""AppTest for the ResNet page: a tiny cpu-demo run completes with its charts and filter grids, labels in the paper's
notation and one colour per run; a preset that needs a GPU, CIFAR that is not on disk (with a download that has no
network, also on a fresh checkout without a data folder) and a folder outside the data root are messages, not
tracebacks; overlays name the groups by their settings. About 20 s on the 2-core dev machine."""

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from tests.page_helpers import run_until_done

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "resnet.py")
TINY = dict(resnet_width="4", resnet_epochs="1", resnet_eval_every="10", resnet_sparsity_images="256",
            resnet_device="cpu")


@pytest.fixture(autouse=True)
def data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSE_SGD_DATA", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    return tmp_path / "data"


def page(**params) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    return at.run()


def test_a_tiny_cpu_demo_run_draws_charts_filters_and_finals():
    at = page(**TINY)
    assert not at.exception
    assert at.sidebar.selectbox(key="resnet_preset").value == "cpu-demo"
    assert at.dataframe(key="resnet_runs_editor").value["name"].tolist() == ["small", "large, 10%", "large, 30%",
                                                                             "large, 50%"]
    at.button(key="run_resnet").click()
    at = run_until_done(at, timeout=180)
    assert len(at.get("vega_lite_chart")) >= 4 + 4 + 1     # loss/errors/lr, 4 sparsity panels, distances
    assert len(at.get("image")) == 4                       # stem and later layer, at init and now
    assert any(s.value == "Filters (Fig. 12)" for s in at.subheader)
    assert any(s.value == "Final values" for s in at.subheader)
    finals = at.dataframe[-1].value
    assert finals["run"].tolist() == ["small", "large, 10%", "large, 30%", "large, 50%"]
    assert finals["feature sparsity, block 4"].between(0, 1).all()      # headers in the paper's words
    assert not {"train_loss", "sparsity_block4"} & set(finals.columns)
    specs = [chart.proto.spec for chart in at.get("vega_lite_chart")]
    assert not any("sparsity_block" in spec.split('"datasets"')[0] for spec in specs)  # no engine names on axes
    runs = ["small", "large, 10%", "large, 30%", "large, 50%"]
    domains = [scale.get("domain") for spec in specs for scale in color_scales(json.loads(spec))]
    assert domains and all(d == runs for d in domains)   # one colour per run, the same on every chart


def color_scales(spec) -> list[dict]:
    """The colour scales of every encoding in a Vega-Lite spec."""
    out = []
    if isinstance(spec, dict):
        enc = spec.get("encoding", {}).get("color")
        if isinstance(enc, dict) and "field" in enc:
            out.append(enc.get("scale", {}))
        for value in spec.values():
            out += color_scales(value)
    elif isinstance(spec, list):
        for value in spec:
            out += color_scales(value)
    return out


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_a_gpu_preset_without_a_gpu_says_so():
    at = page(resnet_preset="fig7-plain")
    assert not at.exception
    assert any("no CUDA GPU" in w.value for w in at.warning)
    assert not [b for b in at.button if b.key == "run_resnet"]


def test_missing_cifar_offers_a_download_that_explains_no_network(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    at = page(resnet_preset="fig7-plain", resnet_device="cpu")
    assert any("CIFAR-10 is not in" in w.value for w in at.warning)
    at.button(key="resnet_download").click().run()
    deadline = time.time() + 20
    while not any("no network" in e.value for e in at.error):
        assert time.time() < deadline, "no message after a failed download"
        time.sleep(0.2)
        at.run()
    assert not at.exception


def test_a_fresh_checkout_without_a_data_folder_offers_the_download(data_root, monkeypatch):
    """Issue 9: with no data folder at all, the page said the folder does not exist and showed no button."""
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    fresh = data_root.parent / "fresh-checkout" / "data"
    monkeypatch.setenv("SPARSE_SGD_DATA", str(fresh))
    at = page(resnet_preset="fig7-plain", resnet_device="cpu")
    assert not at.exception and not at.error
    assert any("CIFAR-10 is not in the data root (the folder does not exist yet" in w.value for w in at.warning)
    at.button(key="resnet_download").click().run()
    assert fresh.is_dir()                      # the download action creates the folder
    deadline = time.time() + 20
    while not any("no network" in e.value for e in at.error):
        assert time.time() < deadline, "no message after a failed download"
        time.sleep(0.2)
        at.run()
    assert not at.exception


def test_a_folder_outside_the_data_root_is_an_error():
    at = page(resnet_preset="fig7-plain", resnet_device="cpu", resnet_data_dir="../elsewhere")
    assert not at.exception
    assert any("outside the data root" in e.value for e in at.error)


def run_tiny(**params) -> AppTest:
    at = page(**{**TINY, **params})
    at.button(key="run_resnet").click()
    return run_until_done(at, timeout=180)


def test_runs_of_another_group_overlay_on_the_same_charts():
    run_tiny(resnet_width="2")
    at = run_tiny()
    before = len(at.get("vega_lite_chart"))
    overlay = at.multiselect(key="resnet_overlay")
    assert "cpu-demo, width 2" in overlay.options          # named by what differs, not by a config hash
    overlay.set_value(["cpu-demo, width 2"]).run()
    assert not at.exception
    assert len(at.get("vega_lite_chart")) == before + 4    # test error, train loss, sparsity blocks 4 and 1
    legend = at.get("vega_lite_chart")[-1].proto.spec
    assert "cpu-demo, width 4: small" in legend and "cpu-demo, width 2: large, 50%" in legend
