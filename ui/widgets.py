"""Widgets drawn from a config's field metadata, so a widget never offers what the engine rejects."""

from __future__ import annotations

import json
from dataclasses import fields

import pandas as pd
import streamlit as st

from engine.config import Config, field_info


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
            values[name] = field_widget(infos[name], getattr(config, name), f"{prefix}{name}", name in sliders)
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
            st.query_params.pop(runs_key, None)

    name = st.selectbox("Preset", list(presets), key=key, bind="query-params", on_change=reset)
    st.caption(presets[name].description)
    return name, presets[name].config


def runs_editor(runs: tuple[Config, ...], key: str, columns: list[str] | None = None) -> list[dict]:
    """An editable table of a config's runs (one row per run), with bounds from the run type's metadata.
    Edits are kept in the URL (query parameter `key`) so a copied link reproduces them."""
    run_type = type(runs[0])
    infos = [i for i in field_info(run_type) if columns is None or i["name"] in columns]
    rows = [r.to_dict() for r in runs]
    if key in st.query_params:
        try:
            rows = json.loads(st.query_params[key])
            assert isinstance(rows, list) and all(isinstance(r, dict) for r in rows)
        except Exception:
            st.warning("The runs in the link could not be read; showing the preset's runs.")
            rows = [r.to_dict() for r in runs]
    column_config = {}
    for info in infos:
        name, label, help_text = info["name"], _label(info), info.get("help") or None
        if info.get("choices"):
            column_config[name] = st.column_config.SelectboxColumn(label, options=list(info["choices"]),
                                                                   help=help_text, required=True)
        elif info["type"] in (int, float):
            column_config[name] = st.column_config.NumberColumn(
                label, min_value=info["lo"], max_value=info["hi"], step=info.get("step"), help=help_text,
                required=True, format="%g")
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
    preset_rows = [r.to_dict() for r in runs]
    if out != preset_rows:
        st.query_params[key] = json.dumps(out, separators=(",", ":"))
    elif key in st.query_params:
        del st.query_params[key]
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
