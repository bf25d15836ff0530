"""Configs: bounds named in errors, dict round trip, --set parsing, stable cache keys."""

import pytest

from engine.core.config import field_info, with_settings
from engine.diagonal.config import FIG2, DiagonalConfig
from engine.toy import bouncing


def test_out_of_range_value_names_field_value_and_range():
    with pytest.raises(ValueError, match=r"eta=9\.0 is outside the allowed range \[0\.01, 5\.0\]"):
        bouncing.Config(eta=9.0)
    with pytest.raises(ValueError, match="algorithms='Adam' is not allowed"):
        bouncing.Config(algorithms="Adam")


def test_round_trip_and_key():
    c = bouncing.Config(eta=1.11, seed=3)
    assert bouncing.Config.from_dict(c.to_dict()) == c
    assert c.key("bouncing") == bouncing.Config(eta=1.11, seed=3).key("bouncing")
    assert c.key("bouncing") != c.replace(seed=4).key("bouncing")
    with pytest.raises(ValueError, match="unknown field"):
        bouncing.Config.from_dict({"etaa": 1})


def test_with_settings_parses_types_and_rejects_unknown_fields():
    c = with_settings(bouncing.Config(), {"eta": "1.1", "steps": "300", "algorithms": "GD"})
    assert (c.eta, c.steps, c.algorithms) == (1.1, 300, "GD")
    with pytest.raises(ValueError, match="unknown field 'stpes'"):
        with_settings(bouncing.Config(), {"stpes": "3"})
    with pytest.raises(ValueError, match="steps='many' is not a valid int"):
        with_settings(bouncing.Config(), {"steps": "many"})


def test_field_info_exposes_bounds_for_widgets():
    info = {i["name"]: i for i in field_info(bouncing.Config)}
    assert (info["eta"]["lo"], info["eta"]["hi"]) == (0.01, 5.0)
    assert info["algorithms"]["choices"] == ("SGD + GD", "SGD", "GD")


def test_runs_need_distinct_names():

    run = FIG2.runs[0]
    with pytest.raises(ValueError, match="runs: names must differ"):
        FIG2.replace(runs=(run, run))


# ----------------------------------------------------------------------------- bad input (issue 8, section 4)
def test_an_int_field_rejects_a_fraction_and_equal_numbers_give_one_key():

    for make in (lambda: bouncing.Config(steps=1000.5), lambda: bouncing.Config.from_dict({"steps": 1000.5})):
        with pytest.raises(ValueError, match=r"^steps=1000\.5 is not a whole number: expected an integer in "
                                             r"\[10, 20000\]$"):
            make()
    whole = bouncing.Config.from_dict({"steps": 1000.0, "eta": 1})  # e.g. from a URL
    assert whole == bouncing.Config(steps=1000, eta=1.0) and type(whole.steps) is int and type(whole.eta) is float
    assert whole.key("bouncing") == bouncing.Config(steps=1000, eta=1.0).key("bouncing")
    assert whole.to_dict()["steps"] == 1000 and '"steps": 1000,' in __import__("json").dumps(whole.to_dict())
    with pytest.raises(ValueError, match=r"^steps='1000' is not a number: expected an integer in \[1, 1000001\]$"):
        DiagonalConfig.from_dict({"steps": "1000"})


def test_type_errors_give_the_allowed_range():
    with pytest.raises(ValueError, match=r"^steps='many' is not a valid int: expected an integer in \[10, 20000\]$"):
        with_settings(bouncing.Config(), {"steps": "many"})
    with pytest.raises(ValueError, match=r"^eta='fast' is not a valid float: expected a number in \[0\.01, 5\.0\]$"):
        with_settings(bouncing.Config(), {"eta": "fast"})
    with pytest.raises(ValueError, match=r"^steps='1000\.5' is not a valid int: expected an integer in \[10, 20000\]$"):
        with_settings(bouncing.Config(), {"steps": "1000.5"})


def test_unicode_digits_are_not_numbers():
    for name, text in (("steps", "１０００"), ("seed", "١٠"), ("eta", "１.１")):
        with pytest.raises(ValueError, match=f"^{name}='{text}' is not a valid"):
            with_settings(bouncing.Config(), {name: text})
    with pytest.raises(ValueError, match="expected runs.K.field"):
        with_settings(diagonal_fig2(), {"runs.１.lr": "0.2"})


def diagonal_fig2():

    return FIG2


def test_a_runs_table_cannot_be_set_as_one_value():
    with pytest.raises(ValueError, match=r"^runs: a runs table is not one value: set one field of run K with "
                                         r"runs\.K\.FIELD=VALUE$"):
        with_settings(diagonal_fig2(), {"runs": "abc"})
    with pytest.raises(ValueError, match="runs: expected a list of runs, got 'abc'"):
        type(diagonal_fig2()).from_dict({"runs": "abc"})


def test_a_run_fields_error_names_its_run():
    c = diagonal_fig2()
    with pytest.raises(ValueError, match=r"^runs\.2\.lr=1000\.0 is outside the allowed range \[1e-05, 100\.0\]$"):
        with_settings(c, {"runs.2.lr": "1000"})
    with pytest.raises(ValueError, match=r"^runs\.3\.batch_size='two' is not a valid int: expected an integer in "):
        with_settings(c, {"runs.3.batch_size": "two"})
    data = c.to_dict()
    data["runs"][1]["lr"] = float("nan")  # a URL's NaN is named, not replaced by a default
    with pytest.raises(ValueError, match=r"^runs\.1\.lr=nan is not a number: expected a number in \[1e-05, 100\.0\]$"):
        type(c).from_dict(data)
    data = c.to_dict()
    data["runs"][0]["lrr"] = 0.1
    with pytest.raises(ValueError, match=r"unknown field\(s\) runs\.0\.lrr"):
        type(c).from_dict(data)
    with pytest.raises(ValueError, match=r"^'runs\.7\.lr': there are only 4 runs \(K from 0 to 3\)$"):
        with_settings(c, {"runs.7.lr": "0.1"})


def test_an_experiment_without_a_runs_table_says_so():
    with pytest.raises(ValueError, match=r"^'runs\.0\.eta': this experiment has no runs table$"):
        with_settings(bouncing.Config(), {"runs.0.eta": "1.0"})


def test_bool_fields_take_only_true_or_false():
    """Decided: a config (from code or a URL's JSON) takes only true/false; the CLI's text also takes yes/no/1/0."""
    c = diagonal_fig2()
    for value in (1, 0, "yes", None):
        with pytest.raises(ValueError, match=f"^plane={value!r} is not true or false$"):
            c.replace(plane=value)
        with pytest.raises(ValueError, match=f"^plane={value!r} is not true or false$"):
            type(c).from_dict({"plane": value})
    assert with_settings(c, {"plane": "yes"}).plane is True and with_settings(c, {"plane": "0"}).plane is False
    with pytest.raises(ValueError, match=r"^plane='maybe' is not a valid bool: expected true or false$"):
        with_settings(c, {"plane": "maybe"})
    with pytest.raises(ValueError, match=r"^runs\.0\.name=5 is not text"):
        type(c).from_dict({"runs": [{"name": 5}]})


def test_an_empty_preset_name_is_an_error_not_the_default():
    from engine import registry

    with pytest.raises(ValueError, match=r"^unknown preset '' for bouncing: expected one of prop3, below, above$"):
        registry.preset("bouncing", "")
    assert registry.preset("bouncing")[0] == "prop3"

