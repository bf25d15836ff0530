"""Configs as plain frozen dataclasses whose fields carry their bounds once.

`param(default, lo, hi, ...)` stores bounds, step, choices and help text in the field's metadata;
validation, the CLI's `--set` and the page widgets all read that one declaration, so a slider can
never offer a value the engine rejects.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from engine import ENGINE_VERSION


def param(default: Any, lo: float | None = None, hi: float | None = None, *, step: float | None = None,
          help: str = "", choices: tuple | None = None, log: bool = False, label: str | None = None):
    """A config field with bounds [lo, hi] (inclusive), a widget step, allowed choices and help text."""
    meta = dict(lo=lo, hi=hi, step=step, help=help, choices=choices, log=log, label=label)
    return field(default=default, metadata=meta)


def bounds_text(f: dataclasses.Field) -> str:
    """The allowed values of a field, as shown in error messages."""
    m = f.metadata
    if m.get("choices"):
        return "one of " + ", ".join(map(str, m["choices"]))
    return f"[{m.get('lo')}, {m.get('hi')}]"


def check_field(f: dataclasses.Field, value: Any, owner: str = "") -> None:
    """Raise ValueError naming the field, the value and the allowed range when value is out of bounds."""
    m = f.metadata
    name = f"{owner}{f.name}"
    if m.get("choices") is not None:
        if value not in m["choices"]:
            raise ValueError(f"{name}={value!r} is not allowed: expected {bounds_text(f)}")
        return
    if m.get("lo") is None and m.get("hi") is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValueError(f"{name}={value!r} is not a number: expected a value in {bounds_text(f)}")
    if (m["lo"] is not None and value < m["lo"]) or (m["hi"] is not None and value > m["hi"]):
        raise ValueError(f"{name}={value!r} is outside the allowed range {bounds_text(f)}")


def _field_type(cls: type, name: str) -> Any:
    return typing.get_type_hints(cls)[name]


def parse_value(cls: type, name: str, text: str) -> Any:
    """Parse a command-line string into the type of field `name` of `cls`."""
    names = {f.name for f in fields(cls)}
    if name not in names:
        raise ValueError(f"unknown field {name!r}: expected one of {', '.join(sorted(names))}")
    kind = _field_type(cls, name)
    try:
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        if kind is int:
            return int(float(text)) if float(text).is_integer() else int(text)
        if kind is float:
            return float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a valid {kind.__name__}") from None
    return text


@dataclass(frozen=True)
class Config:
    """Base of every experiment's config: bounds checked on construction, dict round trip, hash."""

    run_type: ClassVar[type | None] = None  # dataclass of one row of `runs`, if the config has runs

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "runs":
                if not value:
                    raise ValueError("runs: at least one run is needed")
                for i, run in enumerate(value):
                    if not isinstance(run, Config):
                        raise ValueError(f"runs[{i}] is not a {self.run_type.__name__}")
                names = [getattr(run, "name", i) for i, run in enumerate(value)]
                if len(set(names)) != len(names):
                    raise ValueError(f"runs: names must differ, got {names}")
            else:
                check_field(f, value)
        self.check()

    def check(self) -> None:
        """Cross-field checks; subclasses raise ValueError naming the fields."""

    @classmethod
    def from_dict(cls, data: dict) -> Config:
        """Build from a plain dict (as `to_dict` writes it); unknown keys are an error."""
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))} for {cls.__name__}")
        data = dict(data)
        if "runs" in data and cls.run_type is not None:
            data["runs"] = tuple(r if isinstance(r, Config) else cls.run_type.from_dict(r) for r in data["runs"])
        for f in fields(cls):
            if f.name in data and isinstance(data[f.name], list):
                data[f.name] = tuple(data[f.name])
        return cls(**data)

    def to_dict(self) -> dict:
        """Plain JSON-ready dict."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def replace(self, **changes: Any) -> Config:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    def key(self, experiment: str) -> str:
        """Cache key: experiment name, every field, and the engine version."""
        blob = json.dumps([experiment, ENGINE_VERSION, self.to_dict()], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]


def with_settings(config: Config, settings: dict[str, str]) -> Config:
    """Apply `--set` style overrides: `field=value` or `runs.K.field=value` (K from 0)."""
    top: dict[str, Any] = {}
    runs = list(getattr(config, "runs", ()))
    for name, text in settings.items():
        if name.startswith("runs."):
            parts = name.split(".")
            if len(parts) != 3 or not parts[1].isdigit():
                raise ValueError(f"{name!r}: expected runs.K.field")
            k = int(parts[1])
            if k >= len(runs):
                raise ValueError(f"{name!r}: there are only {len(runs)} runs (K from 0 to {len(runs) - 1})")
            run_cls = type(runs[k])
            runs[k] = runs[k].replace(**{parts[2]: parse_value(run_cls, parts[2], text)})
        else:
            top[name] = parse_value(type(config), name, text)
    if runs:
        top["runs"] = tuple(runs)
    return config.replace(**top)


def field_info(cls: type) -> list[dict]:
    """Each field's name, type, default and metadata: what a page needs to draw a widget for it."""
    hints = typing.get_type_hints(cls)
    return [dict(name=f.name, type=hints[f.name], default=f.default, **f.metadata) for f in fields(cls)]
