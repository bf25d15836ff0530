"""Widgets drawn from a config's field metadata, so a widget never offers what the engine rejects."""

from __future__ import annotations

import json
from dataclasses import fields

import pandas as pd
import streamlit as st

from engine.core.config import Config, check_field, field_info, parse_json


def _label(info: dict) -> str:
    return info.get("label") or info["name"].replace("_", " ")


def field_widget(info: dict, default, key: str, slider: bool = False):
    """One widget for one config field, bound to the URL under `key` (its query parameter); numbers get a
    slider over their bounds when `slider`, else a number input."""
    label, help_text = _label(info), info.get("help") or None
    # The default is passed on every run: a widget whose arguments change is a new widget to Streamlit.
    common = dict(key=key, help=help_text, bind="query-params")
    if info.get("choices"):
        return st.selectbox(label, info["choices"], index=list(info["choices"]).index(default), **common)
    common["value"] = default
    if info["type"] is bool:
        return st.toggle(label, **common)
    if info["type"] is str:
        return st.text_input(label, **common)
    lo, hi, step = info.get("lo"), info.get("hi"), info.get("step")
    if slider:
        kind = int if info["type"] is int else float
        return st.slider(label, min_value=kind(lo), max_value=kind(hi), step=kind(step) if step else None, **common)
    if info["type"] is int:
        return st.number_input(label, min_value=int(lo), max_value=int(hi), step=int(step or 1), **common)
    return st.number_input(label, min_value=float(lo), max_value=float(hi), step=float(step) if step else None,
                           format="%.6g", **common)


def config_widgets(config: Config, names: list[str], prefix: str, columns: int = 1,
                   sliders: tuple[str, ...] = ()) -> dict:
    """Widgets for the named fields of `config` (its values as defaults), sliders for those in `sliders`;
    returns {name: value}."""
    infos = {i["name"]: i for i in field_info(type(config))}
    cols = st.columns(columns) if columns > 1 else [st.container()]
    values = {}
    for k, name in enumerate(names):
        with cols[k % len(cols)]:
            key = f"{prefix}{name}"
            first = key not in st.session_state  # a link's value is only checked when it seeds the widget
            requested = st.query_params.get(key) if first else None
            values[name] = field_widget(infos[name], getattr(config, name), key, name in sliders)
            url_notice(key, requested, values[name])
    return values


def reset_widgets(prefix: str, names: list[str]) -> None:
    """Forget widget values so they re-read their defaults (e.g. after switching preset)."""
    for name in names:
        st.session_state.pop(f"{prefix}{name}", None)


def preset_picker(presets: dict, key: str, prefix: str, fields: list[str], runs_key: str | None = None):
    """Preset selectbox (bound to the URL) and its description; returns (name, config). Switching preset
    resets the setting widgets and the runs table to the new preset's values."""

    def reset() -> None:
        reset_widgets(prefix, fields)
        st.query_params.pop(f"{prefix}set", None)
        if runs_key:
            st.session_state.pop(f"{runs_key}_editor", None)
            st.session_state.pop(f"{runs_key}_rows", None)
            st.query_params.pop(runs_key, None)

    requested = st.query_params.get(key) if key not in st.session_state else None
    name = st.selectbox("Preset", list(presets), key=key, bind="query-params", on_change=reset)
    url_notice(key, requested, name)
    st.caption(presets[name].description)
    return name, presets[name].config


def _honoured(requested: str, value) -> bool:
    """Whether a widget shows the value a link asked for (a widget drops a value it cannot take)."""
    if isinstance(value, bool):
        return requested.strip().lower() == str(value).lower()
    if isinstance(value, (int, float)):
        try:
            return float(requested) == float(value)
        except ValueError:
            return False
    return requested == str(value)


def url_notice(key: str, requested: str | None, value) -> None:
    """Name a link's value that a widget did not take (invalid, out of range, unknown preset...)."""
    if requested is not None and not _honoured(requested, value):
        shown = requested if len(requested) <= 40 else requested[:37] + "..."
        st.warning(f"The link's `{key}={shown}` could not be used (not an allowed value): showing {value!r}.")


def _link_rows(text: str, runs: tuple[Config, ...], key: str) -> tuple[list[dict], list[str]]:
    """The runs table a link carries, repaired: a missing field takes the preset's value (or the run type's
    default); a value out of bounds or of the wrong type is replaced and named. Returns (rows, notes)."""
    preset_rows = [r.to_dict() for r in runs]
    run_type = type(runs[0])
    try:
        rows = parse_json(text, key)
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError
    except ValueError:
        return preset_rows, [f"The link's `{key}` is not a list of runs: showing the preset's runs."]
    if not rows:
        return preset_rows, [f"The link's `{key}` has no runs: showing the preset's runs (a run needs a row)."]
    defaults = {f.name: f.default for f in fields(run_type)}
    by_name = {f.name: f for f in fields(run_type)}
    out, notes = [], []
    for k, row in enumerate(rows):
        base = preset_rows[k] if k < len(preset_rows) else defaults
        unknown = sorted(set(row) - set(by_name))
        if unknown:
            notes.append(f"`runs.{k}`: unknown fields {', '.join(unknown)} ignored")
        merged = dict(base)
        for name, value in row.items():
            if name not in by_name:
                continue
            try:
                kind = by_name[name].type if isinstance(by_name[name].type, type) else type(base[name])
                if kind is int and isinstance(value, float) and value.is_integer():
                    value = int(value)
                if (kind in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float)))) or \
                        (kind is str and not isinstance(value, str)):
                    raise ValueError(f"runs.{k}.{name}={value!r} is not a {kind.__name__}")
                check_field(by_name[name], value, f"runs.{k}.")
                merged[name] = value
            except ValueError as exc:
                notes.append(f"{exc}: kept {base[name]!r}")
        out.append(merged)
    return out, notes


def runs_editor(runs: tuple[Config, ...], key: str, columns: list[str] | None = None) -> list[dict]:
    """An editable table of a config's runs (one row per run), with bounds from the run type's metadata.
    Edits are kept in the URL (query parameter `key`) so a copied link reproduces them, and in the session so
    they survive a visit to another page. Step sizes keep full precision."""
    run_type = type(runs[0])
    infos = [i for i in field_info(run_type) if columns is None or i["name"] in columns]
    preset_rows = [r.to_dict() for r in runs]
    saved = f"{key}_rows"  # not a widget key: survives a page switch (widget state and the URL do not)
    if key not in st.query_params and st.session_state.get(saved):
        st.query_params[key] = json.dumps(st.session_state[saved], separators=(",", ":"))
    rows = preset_rows
    if key in st.query_params:
        rows, notes = _link_rows(st.query_params[key], runs, key)
        if notes:
            st.warning("Not everything in the link's runs table could be used: " + "; ".join(notes) + ".")
    column_config = {}
    for info in infos:
        name, label, help_text = info["name"], _label(info), info.get("help") or None
        if info.get("choices"):
            column_config[name] = st.column_config.SelectboxColumn(label, options=list(info["choices"]),
                                                                   help=help_text, required=True)
        elif info["type"] in (int, float):
            # no step for floats: a step makes the editor round what is typed (0.27123 -> 0.271)
            column_config[name] = st.column_config.NumberColumn(
                label, min_value=info["lo"], max_value=info["hi"], step=1 if info["type"] is int else None,
                help=help_text, required=True, format="%d" if info["type"] is int else "%.8g")
        else:
            column_config[name] = st.column_config.TextColumn(label, help=help_text, required=True)
    frame = pd.DataFrame(rows)[[i["name"] for i in infos]]
    edited = st.data_editor(frame, column_config=column_config, num_rows="dynamic", hide_index=True,
                            key=f"{key}_editor", width="stretch")
    out = []
    defaults = {f.name: f.default for f in fields(run_type)}
    for row in edited.to_dict("records"):
        if all(v is None or v != v for v in row.values()):
            continue
        merged = {**defaults, **{k: v for k, v in row.items() if v is not None and v == v}}
        for info in infos:  # the editor gives floats for int columns
            if info["type"] is int and isinstance(merged.get(info["name"]), float):
                merged[info["name"]] = int(merged[info["name"]])
        out.append(merged)
    if out != preset_rows:
        st.query_params[key] = json.dumps(out, separators=(",", ":"))
        st.session_state[saved] = out
    else:
        st.query_params.pop(key, None)
        st.session_state.pop(saved, None)
    return out


def build_config(config_type: type, base: Config, values: dict) -> Config | None:
    """The validated config, or None after showing the validation message (never a traceback)."""
    try:
        return config_type.from_dict({**base.to_dict(), **values})
    except (ValueError, TypeError) as exc:
        st.error(f"Invalid setting: {exc}")
        return None


def checkpoint_scrubber(view: dict, snapshot: str, key: str) -> int | None:
    """A slider over the checkpoints where runs stored `snapshot`; it follows training unless the user
    turns 'Follow training' off and picks one. Returns the chosen step (None before the first one)."""
    steps = sorted({s["step"] for r in view["runs"] for s in r["snapshots"].get(snapshot, [])})
    if not steps:
        return None
    follow = st.toggle("Follow training", value=True, key=f"{key}_follow",
                       help="off: pick any recorded checkpoint with the slider")
    if follow or st.session_state.get(f"{key}_step") not in steps:
        st.session_state[f"{key}_step"] = steps[-1]
    return st.select_slider("Checkpoint (iteration)", options=steps, key=f"{key}_step", disabled=follow)


def link_settings(base: Config, prefix: str) -> Config:
    """The preset's config with the changes a link carries in `<prefix>set` (e.g. a sweep's cell: its seeds and
    checkpoint density), named in a caption with a button to drop them; a bad value is named and ignored."""
    from ui.links import read_changes

    key = f"{prefix}set"
    changes, note = read_changes(st.query_params.get(key), type(base), key)
    if note:
        st.warning(note)
    if not changes:
        return base
    try:
        changed = type(base).from_dict({**base.to_dict(), **changes})
    except (ValueError, TypeError) as exc:
        st.warning(f"The link's settings could not be used ({exc}): showing the preset's.")
        return base
    shown = ", ".join(f"{k}={v}" for k, v in changes.items() if k != "runs")
    st.caption(f"From the link: {shown}")
    if st.button("Back to the preset's values", key=f"{prefix}drop_set"):
        del st.query_params[key]
        st.rerun()
    return changed


def settings(presets: dict, config_type: type, prefix: str, fields: list[str], runs_help: str | None = None,
             sliders: tuple[str, ...] = ()) -> tuple[str, Config]:
    """A page's settings, bound to the URL: the preset and one widget per field in the sidebar, then, when
    `runs_help` is given, the editable runs table (query parameter `<prefix>runs`). Returns (preset name,
    validated config); invalid input shows its message and stops the page."""
    runs_key = f"{prefix}runs" if runs_help is not None else None
    with st.sidebar:
        preset, base = preset_picker(presets, f"{prefix}preset", prefix, fields, runs_key)
        base = link_settings(base, prefix)
        values = config_widgets(base, fields, prefix, sliders=sliders)
    if runs_key:
        st.subheader("Runs")
        st.caption(runs_help)
        values["runs"] = runs_editor(base.runs, runs_key)
    config = build_config(config_type, base, values)
    if config is None:
        st.stop()
    return preset, config
