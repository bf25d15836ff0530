"""Configs: bounds named in errors, dict round trip, --set parsing, stable cache keys."""

import pytest

from engine.config import field_info, with_settings
from engine.experiments import bouncing


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
    from engine.experiments import diagonal

    run = diagonal.FIG2.runs[0]
    with pytest.raises(ValueError, match="runs: names must differ"):
        diagonal.FIG2.replace(runs=(run, run))
