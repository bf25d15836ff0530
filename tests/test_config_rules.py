"""The rules of engine/core/config.py on a small config of every field kind: the messages a user reads, the
normalization that gives one cache key per setting, the --set syntax and the runs table (issue 16: these tests
kill the mutants of config.py, docs/testing.md)."""

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pytest

from engine.core.config import (
    Config,
    bounds_text,
    check_field,
    check_runs,
    check_work,
    field_info,
    param,
    parse_value,
    with_settings,
)


@dataclass(frozen=True)
class Row(Config):
    name: str = param("a")
    lr: float = param(0.1, 0.0, 1.0)


@dataclass(frozen=True)
class Sample(Config):
    n: int = param(10, 1, 100, step=1, help="how many", label="count", log=True)
    x: float = param(0.5, 0.0, 1.0)
    free: float = param(1.0)
    above: float = param(1.0, 0.0)
    below: float = param(1.0, None, 5.0)
    pair: tuple = (1, 2)
    flag: bool = param(False)
    mode: str = param("a", choices=("a", "b"))
    text: str = param("hi")
    runs: tuple = field(default=(Row("a"), Row("b", 0.2)))

    run_type: ClassVar = Row


@dataclass(frozen=True)
class Plain(Config):
    k: int = param(1, 0, 5)


@dataclass(frozen=True)
class Loose(Config):
    """A runs table without a declared row type, whose rows have no names."""
    runs: tuple = (Plain(1),)


F = {f.name: f for f in Sample.__dataclass_fields__.values()}


def error(call, *args, **kwargs) -> str:
    with pytest.raises(ValueError) as info:
        call(*args, **kwargs)
    return str(info.value)


def test_a_field_carries_its_declaration():
    info = {d["name"]: d for d in field_info(Sample)}
    assert info["n"] == dict(name="n", type=int, default=10, lo=1, hi=100, step=1, help="how many", choices=None,
                             log=True, label="count")
    assert info["mode"]["choices"] == ("a", "b") and info["mode"]["type"] is str
    assert info["free"]["lo"] is None and info["free"]["hi"] is None and info["free"]["log"] is False
    assert info["flag"]["help"] == "" and info["flag"]["label"] is None and info["flag"]["step"] is None


def test_bounds_text_of_every_kind():
    assert bounds_text(F["mode"]) == "one of a, b"
    assert bounds_text(F["flag"]) == "true or false"
    assert bounds_text(F["text"]) == "text"
    assert bounds_text(F["n"]) == "an integer in [1, 100]"
    assert bounds_text(F["x"]) == "a number in [0.0, 1.0]"
    assert bounds_text(F["free"]) == "a number"
    assert bounds_text(F["above"]) == "a number in [0.0, None]"
    assert bounds_text(F["below"]) == "a number in [None, 5.0]"


def test_check_field_normalizes_and_names_what_is_wrong():
    assert check_field(F["flag"], np.bool_(True)) is True
    assert check_field(F["n"], 3.0) == 3 and type(check_field(F["n"], 3.0)) is int
    assert check_field(F["n"], np.int64(7)) == 7 and type(check_field(F["n"], np.int64(7))) is int
    assert type(check_field(F["x"], 1)) is float
    assert check_field(F["n"], 1) == 1 and check_field(F["n"], 100) == 100  # bounds are inclusive
    assert check_field(F["mode"], "b") == "b" and check_field(F["text"], "x") == "x"
    assert error(check_field, F["flag"], 1) == "flag=1 is not true or false"
    assert error(check_field, F["flag"], np.int64(1)) == "flag=np.int64(1) is not true or false"
    assert error(check_field, F["text"], 3) == "text=3 is not text: expected text"
    assert error(check_field, F["n"], True) == "n=True is not a number: expected an integer in [1, 100]"
    assert error(check_field, F["x"], np.bool_(False)).startswith("x=")
    assert error(check_field, F["x"], "0.5") == "x='0.5' is not a number: expected a number in [0.0, 1.0]"
    assert error(check_field, F["x"], float("nan")) == "x=nan is not a number: expected a number in [0.0, 1.0]"
    assert error(check_field, F["n"], 2.5) == "n=2.5 is not a whole number: expected an integer in [1, 100]"
    assert error(check_field, F["n"], float("inf")) == "n=inf is not a whole number: expected an integer in [1, 100]"
    assert error(check_field, F["mode"], "c") == "mode='c' is not allowed: expected one of a, b"
    assert error(check_field, F["n"], 101) == "n=101 is outside the allowed range [1, 100]"
    assert error(check_field, F["n"], 0) == "n=0 is outside the allowed range [1, 100]"
    assert error(check_field, F["n"], 1e300) == "n=1e+300 is outside the allowed range [1, 100]"
    assert error(check_field, F["x"], -0.5, "runs.2.") == "runs.2.x=-0.5 is outside the allowed range [0.0, 1.0]"
    assert error(check_field, F["above"], -1.0) == "above=-1.0 is outside the allowed range [0.0, None]"
    assert check_field(F["above"], 1e9) == 1e9


def test_check_runs_and_check_work_limits_are_inclusive_with_messages():
    check_runs(Sample(), 2)
    assert error(check_runs, Sample(), 1) == "runs: 2 runs, above the limit of 1 per job: use fewer runs"
    check_work(24, steps=2, runs=3, seeds=4)
    assert error(check_work, 23, steps=2, runs=3, seeds=4) == (
        "steps x runs x seeds = 2 x 3 x 4 = 24 is above the limit of 23 per job: use fewer steps, runs or seeds")
    assert error(check_work, 1_000, epochs=1_001) == (
        "epochs = 1,001 = 1,001 is above the limit of 1,000 per job: use fewer epochs")
    assert error(check_work, 5, a=2, b=3) == "a x b = 2 x 3 = 6 is above the limit of 5 per job: use fewer a or b"


def test_parse_value_reads_what_a_user_types():
    assert parse_value(Sample, "n", "1e1") == 10 and parse_value(Sample, "n", "42") == 42
    assert parse_value(Sample, "x", "0.25") == 0.25 and parse_value(Sample, "text", "any thing") == "any thing"
    for text, want in ((" Yes ", True), ("TRUE", True), ("1", True), ("no", False), ("false", False), ("0", False)):
        assert parse_value(Sample, "flag", text) is want
    assert error(parse_value, Sample, "flag", "maybe") == "flag='maybe' is not a valid bool: expected true or false"
    assert error(parse_value, Sample, "n", "2.5") == "n='2.5' is not a valid int: expected an integer in [1, 100]"
    assert error(parse_value, Sample, "n", "1e999") == "n='1e999' is not a valid int: expected an integer in [1, 100]"
    assert error(parse_value, Sample, "x", "abc") == "x='abc' is not a valid float: expected a number in [0.0, 1.0]"
    assert error(parse_value, Sample, "x", "0.５", "runs.1.") == (
        "runs.1.x='0.５' is not a valid float: expected a number in [0.0, 1.0]")
    assert error(parse_value, Sample, "n", "500") == "n=500 is outside the allowed range [1, 100]"
    assert error(parse_value, Sample, "nn", "1", "runs.0.") == (
        "unknown field runs.0.'nn': expected one of above, below, flag, free, mode, n, pair, runs, text, x")
    assert error(parse_value, Sample, "pair", "1,2") == "pair cannot be set from text"
    assert error(parse_value, Sample, "mode", "c", "runs.1.") == "runs.1.mode='c' is not allowed: expected one of a, b"
    assert error(parse_value, Sample, "runs", "[]") == (
        "runs: a runs table is not one value: set one field of run K with runs.K.FIELD=VALUE")


def test_from_dict_builds_runs_and_names_bad_input():
    c = Sample.from_dict({"n": 5.0, "runs": [{"name": "p", "lr": 0.3}, Row("q")]})
    assert c.n == 5 and type(c.n) is int and c.runs == (Row("p", 0.3), Row("q")) and isinstance(c.runs, tuple)
    assert Sample.from_dict(c.to_dict()) == c
    assert Sample.from_dict({"pair": [3, 4]}).pair == (3, 4)  # JSON lists come back as the tuples they were
    assert error(Sample.from_dict, 3) == "Sample: expected a mapping of fields, got 3"
    assert error(Row.from_dict, 3, "runs.1.") == "runs.1: expected a mapping of fields, got 3"
    assert error(Sample.from_dict, {"zz": 1, "aa": 2}) == "unknown field(s) aa, zz for Sample"
    assert error(Sample.from_dict, {"runs": 3}) == "runs: expected a list of runs, got 3"
    assert error(Sample.from_dict, {"runs": [{"lr": 2.0}]}) == "runs.0.lr=2.0 is outside the allowed range [0.0, 1.0]"
    assert error(Sample.from_dict, {"x": 2}, "top.") == "top.x=2 is outside the allowed range [0.0, 1.0]"


def test_the_runs_table_is_a_tuple_of_distinct_runs():
    assert Sample(runs=[Row("a")]).runs == (Row("a"),)
    assert error(Sample, runs=3) == "runs: expected a table of Row rows, got 3"
    assert error(Sample, runs=()) == "runs: at least one run is needed"
    assert error(Sample, runs=(Row("a"), {"name": "b"})) == "runs.1 is not a Row"
    assert error(Sample, runs=(Row("a"), Row("a"))) == "runs: names must differ, got ['a', 'a']"
    assert Loose(runs=(Plain(1), Plain(1))).runs == (Plain(1), Plain(1))  # rows without names: told apart by place
    assert error(Loose, runs=3) == "runs: expected a table of run config rows, got 3"


def test_the_key_is_a_short_hash_of_experiment_and_fields():
    k = Sample().key("e")
    assert len(k) == 24 and int(k, 16) >= 0
    assert k == Sample.from_dict(Sample().to_dict()).key("e") and k != Sample().key("f")
    assert Sample(x=1).key("e") == Sample(x=1.0).key("e")  # normalized: one key per setting


def test_with_settings_sets_top_fields_and_runs_and_names_bad_paths():
    c = with_settings(Sample(), {"runs.1.lr": "0.5", "n": "7", "runs.0.name": "z"})
    assert c.n == 7 and c.runs == (Row("z"), Row("b", 0.5))
    assert with_settings(Plain(), {"k": "3"}) == Plain(3)
    assert error(with_settings, Plain(), {"runs.0.lr": "1"}) == "'runs.0.lr': this experiment has no runs table"
    for bad in ("runs.x.lr", "runs.1", "runs.1.lr.y", "runs.١.lr", "runs.-1.lr"):
        assert error(with_settings, Sample(), {bad: "0.5"}) == f"{bad!r}: expected runs.K.field (K from 0 to 1)"
    assert error(with_settings, Sample(), {"runs.2.lr": "0.5"}) == "'runs.2.lr': there are only 2 runs (K from 0 to 1)"
    one = Sample(runs=(Row("a"),))
    assert error(with_settings, one, {"runs.1.lr": "0.5"}) == "'runs.1.lr': there is only 1 run (K from 0 to 0)"
    assert error(with_settings, Sample(), {"runs.1.lr": "2"}) == "runs.1.lr=2.0 is outside the allowed range [0.0, 1.0]"
    assert error(with_settings, Sample(), {"runs.1.zz": "2"}).startswith("unknown field runs.1.'zz'")
