"""Links between pages that carry a whole configuration: open a sweep's cell on its experiment's page, or sweep
the settings a page shows. A config travels as its preset plus the fields that differ from it."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import streamlit as st

from engine.core.config import Config, parse_json

# experiment -> (page url path, query-parameter prefix of its settings)
PAGES = {"diagonal": ("diagonal", "diag_"), "relu1d": ("relu_1d", "relu_"),
         "teacher_student": ("teacher_student", "ts_"), "resnet": ("resnet", "resnet_")}
# experiment -> the title of its page in the navigation
TITLES = {"bouncing": "1 · Toy model", "diagonal": "2 · Diagonal linear nets", "relu1d": "3 · ReLU net in 1D",
          "teacher_student": "4 · Teacher-student", "resnet": "5 · ResNets", "diagonal_edge": "Edge finder",
          "sweep": "6 · Sweeps"}


def _compact(value) -> str:
    return json.dumps(value, separators=(",", ":"))


def changes(config: Config, preset: Config) -> dict:
    """The fields of `config` whose values differ from `preset`'s (plain data)."""
    mine, theirs = config.to_dict(), preset.to_dict()
    return {k: v for k, v in mine.items() if v != theirs.get(k)}


def page_url(experiment: str, preset_name: str, preset: Config, config: Config) -> str:
    """A relative link that opens `config` on its experiment's page: the preset, the runs table, and every other
    changed field in `<prefix>set` (read by ui.widgets.settings)."""
    path, prefix = PAGES[experiment]
    diff = changes(config, preset)
    query = {f"{prefix}preset": preset_name}
    if "runs" in diff:
        query[f"{prefix}runs"] = _compact(diff.pop("runs"))
    if diff:
        query[f"{prefix}set"] = _compact(diff)
    return f"{path}?{urlencode(query)}"


def sweep_url(experiment: str, preset_name: str, preset: Config, config: Config) -> str:
    """A relative link to the sweep page with this page's settings as the sweep's base."""
    query = {"sweep_exp": experiment, "sweep_preset": preset_name}
    diff = changes(config, preset)
    if diff:
        query["sweep_base"] = _compact(diff)
    return f"sweeps?{urlencode(query)}"


def read_changes(text: str | None, config_type: type, what: str) -> tuple[dict, str | None]:
    """Field changes from a link (JSON object of known fields), or ({}, a message naming what was ignored)."""
    if not text:
        return {}, None
    try:
        data = parse_json(text, what)
        if not isinstance(data, dict):
            raise ValueError
    except ValueError:
        return {}, f"The link's `{what}` could not be read (not a JSON object of settings): it was ignored."
    known = {f for f in config_type.__dataclass_fields__}
    unknown = sorted(set(data) - known)
    data = {k: v for k, v in data.items() if k in known}
    note = f"The link's `{what}` names unknown settings ({', '.join(unknown)}): they were ignored." if unknown else None
    return data, note


def sweep_button(experiment: str, preset_name: str, preset: Config, config: Config) -> None:
    """A 'Sweep this' button: the sweep page with these settings as its base (opens in a new tab)."""
    st.link_button("Sweep this", sweep_url(experiment, preset_name, preset, config), icon=":material/grid_on:",
                   help="Open the sweep page with these settings as the base of a grid of step sizes, schedules "
                        "or any other setting, over several seeds")
