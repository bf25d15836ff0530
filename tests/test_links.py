"""Links that carry a whole configuration (ui/links.py): written as preset + changed fields, read back with
unknown or unreadable parts named, and a link always reopens the configuration it was made from."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from engine import registry
from engine.diagonal.config import DiagonalConfig
from ui import links

FIG2 = registry.preset("diagonal", "fig2")[1]


def query(url: str) -> tuple[str, dict]:
    parts = urlsplit(url)
    return parts.path, {k: v[0] for k, v in parse_qs(parts.query, strict_parsing=True).items()}


def test_changes_are_the_fields_that_differ_from_the_preset():
    assert links.changes(FIG2, FIG2) == {}
    config = FIG2.replace(seeds=3, n=60)
    assert links.changes(config, FIG2) == {"seeds": 3, "n": 60}


def test_a_page_link_carries_the_preset_and_only_the_changes_and_reopens_the_config():
    assert links.page_url("diagonal", "fig2", FIG2, FIG2) == "diagonal?diag_preset=fig2"
    runs = FIG2.to_dict()["runs"]
    runs[1]["lr"] = 0.27
    config = DiagonalConfig.from_dict({**FIG2.to_dict(), "runs": runs, "seeds": 2})
    path, q = query(links.page_url("diagonal", "fig2", FIG2, config))
    assert path == "diagonal" and set(q) == {"diag_preset", "diag_runs", "diag_set"}
    assert q["diag_preset"] == "fig2" and json.loads(q["diag_set"]) == {"seeds": 2}
    assert json.loads(q["diag_runs"]) == runs
    assert q["diag_runs"] == json.dumps(runs, separators=(",", ":"))  # compact JSON: short links
    changes, note = links.read_changes(q["diag_set"], DiagonalConfig, "diag_set")
    assert note is None
    assert DiagonalConfig.from_dict({**FIG2.to_dict(), **changes, "runs": json.loads(q["diag_runs"])}) == config


@pytest.mark.parametrize("experiment, path, prefix", [("relu1d", "relu_1d", "relu_"),
                                                      ("teacher_student", "teacher_student", "ts_"),
                                                      ("resnet", "resnet", "resnet_")])
def test_each_experiment_links_to_its_own_page_and_prefix(experiment, path, prefix):
    name = next(iter(registry.get(experiment).PRESETS))
    preset = registry.preset(experiment, name)[1]
    config = preset.replace(seeds=2)
    got_path, q = query(links.page_url(experiment, name, preset, config))
    assert got_path == path and q == {f"{prefix}preset": name, f"{prefix}set": '{"seeds":2}'}


def test_a_sweep_link_carries_the_page_settings_as_its_base():
    assert links.sweep_url("diagonal", "fig2", FIG2, FIG2) == "sweeps?sweep_exp=diagonal&sweep_preset=fig2"
    path, q = query(links.sweep_url("diagonal", "fig8", FIG2, FIG2.replace(seeds=4)))
    assert path == "sweeps" and q == {"sweep_exp": "diagonal", "sweep_preset": "fig8", "sweep_base": '{"seeds":4}'}


def test_reading_a_link_keeps_known_fields_and_names_what_it_ignored():
    assert links.read_changes(None, DiagonalConfig, "x") == ({}, None)
    assert links.read_changes("", DiagonalConfig, "x") == ({}, None)
    assert links.read_changes('{"seeds":3,"n":50}', DiagonalConfig, "diag_set") == ({"seeds": 3, "n": 50}, None)
    data, note = links.read_changes('{"seeds":3,"zeta":1,"alpha":2}', DiagonalConfig, "diag_set")
    assert data == {"seeds": 3}
    assert note == "The link's `diag_set` names unknown settings (alpha, zeta): they were ignored."
    for bad in ("{not json", "[1, 2]", "3", '"seeds"'):
        assert links.read_changes(bad, DiagonalConfig, "diag_set") == (
            {}, "The link's `diag_set` could not be read (not a JSON object of settings): it was ignored.")


def test_the_sweep_button_opens_the_sweep_page_with_these_settings(monkeypatch):
    seen = {}
    monkeypatch.setattr(links.st, "link_button", lambda label, url, **kw: seen.update(label=label, url=url, **kw))
    links.sweep_button("diagonal", "fig2", FIG2, FIG2.replace(seeds=4))
    assert seen["label"] == "Sweep this"
    assert seen["url"] == "sweeps?sweep_exp=diagonal&sweep_preset=fig2&sweep_base=%7B%22seeds%22%3A4%7D"
    assert "sweep page" in seen["help"]


def test_every_linked_page_and_title_exists():
    from pathlib import Path

    pages = Path(__file__).resolve().parent.parent / "pages"
    for experiment, (path, prefix) in links.PAGES.items():
        assert (pages / f"{path}.py").exists() and prefix.endswith("_")
        assert links.TITLES[experiment]
    assert links.TITLES["sweep"] == "6 · Sweeps" and links.TITLES["diagonal"] == "2 · Diagonal linear nets"
