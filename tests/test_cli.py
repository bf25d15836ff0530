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


def test_a_corrupt_cache_does_not_stop_a_run_and_the_cache_command_reports_and_cleans(tmp_path):
    cache = tmp_path / "cache"
    (cache / "results").mkdir(parents=True)
    (cache / "results" / "cache.db").write_bytes(b"not a database" * 1000)
    out = cli("run", "bouncing", "--preset", "prop3", "--set", "steps=300", "--cache-dir", str(cache))
    assert out.returncode == 0 and "status: done" in out.stdout and "Traceback" not in out.stderr
    assert "the result cache was unreadable (file is not a database): moved aside to results.corrupt-" in out.stderr
    info = cli("cache", "info", "--cache-dir", str(cache))
    assert info.returncode == 0 and "Traceback" not in info.stderr
    assert "results: 1 (" in info.stdout and "damaged databases set aside: results.corrupt-" in info.stdout
    stale = cache / "work" / "from-older-code"
    stale.mkdir(parents=True)
    (stale / "about.json").write_text('{"experiment": "bouncing", "config": {}}')  # its key is not this one
    (stale / "run0-e0001.pt").write_bytes(b"\0" * 100)
    gc = cli("cache", "gc", "--cache-dir", str(cache))
    assert gc.returncode == 0 and "1 work folders" in gc.stdout and not stale.exists()
    assert "results: 1 (" in gc.stdout and "bouncing: 1 current, 0 stale" in gc.stdout  # today's result stays
    clear = cli("cache", "clear", "--cache-dir", str(cache))
    assert clear.returncode == 0 and "results: 0 (" in clear.stdout and "set aside" not in clear.stdout
    again = cli("run", "bouncing", "--preset", "prop3", "--set", "steps=300", "--cache-dir", str(cache))
    assert "from the cache" not in again.stdout and again.returncode == 0


def _one_line_error(out, text: str) -> None:
    """Exit 2, one line on stderr that says `text`, and no work done (no progress, table or status)."""
    assert out.returncode == 2, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and text in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""


def test_bad_values_are_one_line_errors_naming_field_range_or_run():
    _one_line_error(cli("run", "bouncing", "--preset", ""), "unknown preset '' for bouncing")
    _one_line_error(cli("run", "diagonal", "--set", "runs=abc"), "runs: a runs table is not one value")
    _one_line_error(cli("run", "bouncing", "--set", "steps=1000.5"),
                    "error: steps='1000.5' is not a valid int: expected an integer in [10, 20000]")
    _one_line_error(cli("run", "bouncing", "--set", "steps=１０００"), "steps='１０００' is not a valid int")
    _one_line_error(cli("run", "diagonal", "--set", "runs.2.lr=1000"),
                    "error: runs.2.lr=1000.0 is outside the allowed range [1e-05, 100.0]")
    _one_line_error(cli("run", "bouncing", "--set", "runs.0.eta=1"), "this experiment has no runs table")
    _one_line_error(cli("run", "diagonal", "--set", "seeds=20", "--set", "steps=1000001"),
                    "error: steps x runs x seeds = 1,000,001 x 4 x 20 = 80,000,080 is above the limit of "
                    "40,000,000 per job: use fewer steps, runs or seeds")


def test_what_would_stop_a_run_is_checked_before_it_starts(tmp_path, monkeypatch):
    import pytest
    import torch

    (tmp_path / "a-file").write_text("")
    _one_line_error(cli("run", "bouncing", "--json", str(tmp_path / "a-file" / "out.json")),
                    f"error: --json {tmp_path / 'a-file' / 'out.json'}: cannot be written (Not a directory)")
    _one_line_error(cli("run", "bouncing", "--json", str(tmp_path)), "is a folder, not a file")
    _one_line_error(cli("run", "bouncing", "--cache-dir", str(tmp_path / "a-file")), "is a file, not a folder")
    _one_line_error(cli("run", "bouncing", "--cache-dir", str(tmp_path / "a-file" / "cache")),
                    "cannot be written (Not a directory)")
    assert not list(tmp_path.glob("*.json"))
    monkeypatch.setenv("SPARSE_SGD_DATA", str(tmp_path / "data"))  # an empty data root
    (tmp_path / "data").mkdir()
    _one_line_error(cli("run", "resnet", "--preset", "fig7-plain", "--device", "cpu"),
                    "error: CIFAR-10 is not on disk in the data root: download it")
    _one_line_error(cli("run", "resnet", "--preset", "cpu-demo", "--set", "dataset=cifar100", "--set",
                        "data_dir=../..", "--device", "cpu"), "error: data_dir='../..' is outside the data root")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: --device cuda is honoured")
    _one_line_error(cli("run", "relu1d", "--device", "cuda"),
                    "error: device='cuda' but no CUDA device is available here: use device=auto or cpu")
    _one_line_error(cli("run", "resnet", "--preset", "cpu-demo", "--device", "cuda"), "no CUDA device is available")
