"""Configs as plain frozen dataclasses whose fields carry their bounds once.

`param(default, lo, hi, ...)` stores bounds, step, choices and help text in the field's metadata;
validation, the CLI's `--set` and the page widgets all read that one declaration, so a slider can
never offer a value the engine rejects.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import re
import typing
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from engine.core import version


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
    kind = field_kind(f)
    if kind is bool:
        return "true or false"
    if kind is str:
        return "text"
    what = "an integer" if kind is int else "a number"
    if m.get("lo") is None and m.get("hi") is None:
        return what
    return f"{what} in [{m.get('lo')}, {m.get('hi')}]"


_KINDS = {"int": int, "float": float, "bool": bool, "str": str}


def field_kind(f: dataclasses.Field) -> type | None:
    """int, float, bool or str for a scalar field (None for others, e.g. a runs table)."""
    kind = _KINDS.get(f.type) if isinstance(f.type, str) else f.type
    return kind if kind in (int, float, bool, str) else None


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool) or (getattr(value, "dtype", None) is not None and value.dtype.kind == "b")


def check_field(f: dataclasses.Field, value: Any, owner: str = "") -> Any:
    """The value as the field's type (an integral 1000.0 as 1000, an int as a float for float fields, so equal
    numbers give one cache key); ValueError naming the field, the value and the allowed values when it is of the
    wrong type (a non-integer for an int field, anything but true/false for a bool) or out of bounds. `owner`
    prefixes the name (e.g. 'runs.2.')."""
    m = f.metadata
    name = f"{owner}{f.name}"
    kind = field_kind(f)
    given = value
    if kind is bool:
        if not _is_bool(value):
            raise ValueError(f"{name}={value!r} is not true or false")
        value = bool(value)
    elif kind is str:
        if not isinstance(value, str):
            raise ValueError(f"{name}={value!r} is not text: expected {bounds_text(f)}")
    elif kind in (int, float):
        if _is_bool(value) or not isinstance(value, numbers.Real) or value != value:
            raise ValueError(f"{name}={value!r} is not a number: expected {bounds_text(f)}")
        if kind is int:
            if not isinstance(value, numbers.Integral):
                if not math.isfinite(value) or not float(value).is_integer():
                    raise ValueError(f"{name}={value!r} is not a whole number: expected {bounds_text(f)}")
            value = int(value)
        else:
            value = float(value)
    if m.get("choices") is not None:
        if value not in m["choices"]:
            raise ValueError(f"{name}={value!r} is not allowed: expected {bounds_text(f)}")
        return value
    if (m.get("lo") is not None and value < m["lo"]) or (m.get("hi") is not None and value > m["hi"]):
        shown = value if type(given) is type(value) else given  # 1e300 for an int field, not its 301 digits
        raise ValueError(f"{name}={shown!r} is outside the allowed range [{m.get('lo')}, {m.get('hi')}]")
    return value


def check_runs(config: Config, limit: int) -> None:
    """ValueError when the runs table holds more than `limit` runs."""
    n = len(config.runs)
    if n > limit:
        raise ValueError(f"runs: {n} runs, above the limit of {limit} per job: use fewer runs")


def check_work(limit: int, **factors: int) -> None:
    """ValueError when the product of `factors` (field name -> value), the work of one job, is above `limit`;
    the message names the fields, their values and the limit."""
    total = math.prod(factors.values())
    if total > limit:
        names = list(factors)
        fewer = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
        raise ValueError(f"{' x '.join(names)} = {' x '.join(f'{v:,}' for v in factors.values())} = {total:,} is "
                         f"above the limit of {limit:,} per job: use fewer {fewer}")


def parse_value(cls: type, name: str, text: str, owner: str = "") -> Any:
    """Parse a command-line string into the type of field `name` of `cls` (checked against its bounds). Numbers
    are ASCII digits only; `owner` prefixes the name in errors (e.g. 'runs.2.')."""
    by_name = {f.name: f for f in fields(cls)}
    if name not in by_name:
        raise ValueError(f"unknown field {owner}{name!r}: expected one of {', '.join(sorted(by_name))}")
    f = by_name[name]
    kind = field_kind(f)
    if kind is None:
        if name == "runs":
            raise ValueError("runs: a runs table is not one value: set one field of run K with runs.K.FIELD=VALUE")
        raise ValueError(f"{owner}{name} cannot be set from text")
    bad = ValueError(f"{owner}{name}={text!r} is not a valid {kind.__name__}: expected {bounds_text(f)}")
    if kind is str:
        return check_field(f, text, owner)
    if not text.isascii():  # int('１０００') and float('١٠') parse, but they are not what a user typed as a number
        raise bad
    if kind is bool:
        if text.strip().lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise bad
        return text.strip().lower() in ("true", "1", "yes")
    try:
        if kind is int:
            try:
                value: Any = int(text)
            except ValueError:
                number = float(text)
                if not number.is_integer():
                    raise
                value = int(number)
        else:
            value = float(text)
    except (ValueError, OverflowError):
        raise bad from None
    return check_field(f, value, owner)


@dataclass(frozen=True)
class Config:
    """Base of every experiment's config: bounds checked on construction, dict round trip, hash."""

    run_type: ClassVar[type | None] = None  # dataclass of one row of `runs`, if the config has runs

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "runs":
                value = _check_runs_table(self, value)
            else:
                value = check_field(f, value)
            object.__setattr__(self, f.name, value)  # normalized: 1000.0 -> 1000 in an int field
        self.check()

    def check(self) -> None:
        """Cross-field checks; subclasses raise ValueError naming the fields."""

    @classmethod
    def from_dict(cls, data: dict, owner: str = "") -> Config:
        """Build from a plain dict (as `to_dict` writes it, or a URL's settings); unknown keys are an error, and
        errors name the field as `owner` + name (a run's fields as runs.K.FIELD)."""
        if not isinstance(data, dict):
            raise ValueError(f"{owner.rstrip('.') or cls.__name__}: expected a mapping of fields, got {data!r}")
        by_name = {f.name: f for f in fields(cls)}
        unknown = [f"{owner}{k}" for k in data if k not in by_name]
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(sorted(map(str, unknown)))} for {cls.__name__}")
        data = dict(data)
        for name, value in data.items():
            if name == "runs" and cls.run_type is not None:
                if not isinstance(value, (list, tuple)):
                    raise ValueError(f"{owner}runs: expected a list of runs, got {value!r}")
                data[name] = tuple(r if isinstance(r, Config) else cls.run_type.from_dict(r, f"{owner}runs.{i}.")
                                   for i, r in enumerate(value))
            elif isinstance(value, list):
                data[name] = tuple(value)
            else:
                data[name] = check_field(by_name[name], value, owner)
        return cls(**data)

    def to_dict(self) -> dict:
        """Plain JSON-ready dict."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def replace(self, **changes: Any) -> Config:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    def state(self) -> dict:
        """What this config's results depend on besides its fields: the code its experiment runs and the library
        versions (engine.core.version.state)."""
        return version.state(type(self).__module__, getattr(self, "device", None))

    def key(self, experiment: str) -> str:
        """Cache key: the experiment name, every field, and the code and libraries that compute the result."""
        return version.fingerprint([experiment, self.state(), self.to_dict()])


MAX_JSON_DEPTH = 32  # nesting of a JSON-valued setting (a sweep, a runs table): far above any real one
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def parse_json(text: str, what: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The value of JSON text `text` given for `what` (a field or link parameter); ValueError naming `what` when
    it is not JSON or nests deeper than `max_depth` (Python's parser would recurse once per level)."""
    if not isinstance(text, str):
        raise ValueError(f"{what}: expected JSON text, got {type(text).__name__}")
    depth = deepest = 0
    for bracket in re.finditer(r"[\[\]{}]", _JSON_STRING.sub('""', text)):
        depth += 1 if bracket.group() in "[{" else -1
        deepest = max(deepest, depth)
        if deepest > max_depth:
            raise ValueError(f"{what}: nested deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise ValueError(f"{what}: not valid JSON") from None


def with_settings(config: Config, settings: dict[str, str]) -> Config:
    """Apply `--set` style overrides: `field=value` or `runs.K.field=value` (K from 0); errors name the field as
    given (runs.K.field for a run's)."""
    top: dict[str, Any] = {}
    has_runs = "runs" in {f.name for f in fields(config)}
    runs = list(getattr(config, "runs", ()))
    for name, text in settings.items():
        if name.startswith("runs."):
            if not has_runs:
                raise ValueError(f"{name!r}: this experiment has no runs table")
            parts = name.split(".")
            if len(parts) != 3 or not (parts[1].isascii() and parts[1].isdigit()):
                raise ValueError(f"{name!r}: expected runs.K.field (K from 0 to {len(runs) - 1})")
            k = int(parts[1])
            if k >= len(runs):
                raise ValueError(f"{name!r}: there {'is' if len(runs) == 1 else 'are'} only {len(runs)} "
                                 f"run{'' if len(runs) == 1 else 's'} (K from 0 to {len(runs) - 1})")
            value = parse_value(type(runs[k]), parts[2], text, owner=f"runs.{k}.")
            runs[k] = runs[k].replace(**{parts[2]: value})
        else:
            top[name] = parse_value(type(config), name, text)
    if has_runs:
        top["runs"] = tuple(runs)
    return config.replace(**top)


def _check_runs_table(config: Config, value: Any) -> tuple:
    """The runs table as a tuple of run configs with distinct names (ValueError otherwise)."""
    kind = config.run_type.__name__ if config.run_type is not None else "run config"
    if isinstance(value, list):
        value = tuple(value)
    if not isinstance(value, tuple):
        raise ValueError(f"runs: expected a table of {kind} rows, got {value!r}")
    if not value:
        raise ValueError("runs: at least one run is needed")
    for i, run in enumerate(value):
        if not isinstance(run, Config):
            raise ValueError(f"runs.{i} is not a {kind}")
    names = [getattr(run, "name", i) for i, run in enumerate(value)]
    if len(set(names)) != len(names):
        raise ValueError(f"runs: names must differ, got {names}")
    return value


def field_info(cls: type) -> list[dict]:
    """Each field's name, type, default and metadata: what a page needs to draw a widget for it."""
    hints = typing.get_type_hints(cls)
    return [dict(name=f.name, type=hints[f.name], default=f.default, **f.metadata) for f in fields(cls)]


@dataclass(frozen=True)
class Preset:
    """A named config that reproduces one figure of the paper."""

    config: Config
    description: str
