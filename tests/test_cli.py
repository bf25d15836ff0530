"""The headless CLI: list, run with --json/--set, and one-line errors for bad input."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_list_names_every_experiment_and_preset():
    out = cli("list")
    assert out.returncode == 0
    for text in ("bouncing", "--preset prop3", "diagonal", "--preset fig2", "--preset fig8", "--preset fig3"):
        assert text in out.stdout


def test_run_writes_the_json_contract_and_a_summary(tmp_path):
    target = tmp_path / "out.json"
    out = cli("run", "bouncing", "--preset", "prop3", "--set", "steps=300", "--json", str(target), "--no-cache")
    assert out.returncode == 0, out.stderr
    assert "SGD" in out.stdout and "train_loss" in out.stdout and "status: done" in out.stdout
    data = json.loads(target.read_text())
    assert data["experiment"] == "bouncing" and data["preset"] == "prop3"
    run = data["runs"][0]
    assert {"name", "status", "config", "final", "history"} <= set(run)
    assert len(run["history"]["step"]) == 301 and len(run["history"]["theta"]) == 301
    assert data["config"]["steps"] == 300
    # the second time it comes from the disk cache
    again = cli("run", "bouncing", "--preset", "prop3", "--set", "steps=300")
    assert "from the cache" in again.stdout


def test_bad_input_exits_nonzero_with_one_line():
    bad_preset = cli("run", "bouncing", "--preset", "nope")
    assert bad_preset.returncode == 2
    assert bad_preset.stderr.strip() == "error: unknown preset 'nope' for bouncing: expected one of prop3, below, above"
    bad_value = cli("run", "bouncing", "--set", "eta=99")
    assert bad_value.returncode == 2
    assert bad_value.stderr.strip() == "error: eta=99.0 is outside the allowed range [0.01, 5.0]"
    bad_field = cli("run", "bouncing", "--set", "etta=1")
    assert bad_field.returncode == 2 and "unknown field 'etta'" in bad_field.stderr
    assert len(bad_field.stderr.strip().splitlines()) == 1
    bad_experiment = cli("run", "nothing")
    assert bad_experiment.returncode == 2 and "unknown experiment 'nothing'" in bad_experiment.stderr
