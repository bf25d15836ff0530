"""The result store: keys carry a version derived from the engine's sources; a damaged, foreign, planted or
unwritable cache is a miss or a warning, never a crash or a wrong hit; housekeeping keeps it small."""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
import zlib
from pathlib import Path

import diskcache
import numpy as np
import pytest

from engine import registry
from engine.core.recording import Recorder
from engine.jobs import JobManager
from engine.store import Store, key_of
from engine.toy import bouncing

ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- faults of the cache itself
def finished(config, experiment: str = "bouncing", loss: float = 1.0) -> dict:
    """A well-formed finished result for `config` (one run, one checkpoint), as a job stores it."""
    rec = Recorder(experiment, config.to_dict())
    run = rec.add_run("SGD")
    rec.log(run, 0, train_loss=loss)
    rec.close("done")
    return rec.view()


def configs(n: int) -> list:
    base = bouncing.PRESETS["prop3"].config
    return [base.replace(steps=200 + k) for k in range(n)]


def damage(db: Path, how: str) -> None:
    """Random bytes, a truncated file, or pages overwritten past the header (a malformed database)."""
    data = bytearray(db.read_bytes())
    rng = random.Random(0)
    if how == "random bytes":
        db.write_bytes(rng.randbytes(len(data)))
    elif how == "truncated":
        db.write_bytes(bytes(data[:len(data) // 3]))
    else:
        for offset in range(2 * 4096, len(data), 4096):
            data[offset:offset + 4096] = rng.randbytes(4096)
        db.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["random bytes", "truncated", "malformed", "results is a file"])
def test_a_corrupt_database_is_moved_aside_and_a_new_one_serves(tmp_path, how):
    store = Store(tmp_path)
    keys = [c.key("bouncing") for c in configs(40)]
    for c, key in zip(configs(40), keys):
        store.put(key, finished(c))
    store._cache.close()
    if how == "results is a file":
        shutil.rmtree(tmp_path / "results")
        (tmp_path / "results").write_text("not a folder")
    else:
        damage(tmp_path / "results" / "cache.db", how)

    store = Store(tmp_path)  # no exception, whatever the file holds
    hits = [store.get(key) for key in keys]  # a damaged page shows up here at the latest
    assert all(hit is None or hit["config"] == c.to_dict() for hit, c in zip(hits, configs(40)))
    assert "moved aside to results.corrupt-" in store.warning and "a new one was started" in store.warning
    assert [p.name.startswith("results.corrupt-") for p in tmp_path.iterdir() if p.name != "results"] == [True]
    c = configs(41)[-1]
    assert store.put(c.key("bouncing"), finished(c)) and store.get(c.key("bouncing"))["config"] == c.to_dict()
    assert store.stats()["entries"] >= 1 and "moved aside" in store.status()


def test_every_presets_stored_result_names_its_own_key():
    # A hit must record the config asked for: the store rebuilds the key from the stored experiment and config,
    # so every config has to come back from its dict with the same key (else its results would never be reused).
    for name in registry.names():
        for preset in registry.get(name).PRESETS.values():
            c = preset.config
            assert key_of(dict(experiment=name, config=c.to_dict())) == c.key(name), name


def test_a_foreign_or_incomplete_entry_is_a_miss(tmp_path):
    store = Store(tmp_path)
    mine, other = configs(2)
    key = mine.key("bouncing")
    store.put(key, finished(other))  # a well-formed result, but of another config
    assert store.get(key) is None
    store.put(key, finished(mine, experiment="diagonal"))  # ... or of another experiment
    assert store.get(key) is None
    lacking = finished(mine)
    del lacking["runs"][0]["history"]
    for bad in ({"runs": []}, lacking, {**finished(mine), "status": "cancelled"}):
        store.put(key, bad)
        assert store.get(key) is None
        assert JobManager(store, blas_threads=None).find("bouncing", mine) is None  # no crash, no hit
    store.put(key, finished(mine))
    assert store.get(key)["config"] == mine.to_dict()
    assert JobManager(store, blas_threads=None).find("bouncing", mine).from_cache


class Planted:
    """Unpickling this creates a file: what a planted cache entry could do."""

    def __init__(self, marker: Path, padding: int = 0):
        self.marker, self.padding = marker, padding

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_results_are_json_data_and_a_planted_pickle_never_runs(tmp_path):
    small, large = configs(2)
    marker = tmp_path / "pwned"
    planter = diskcache.Cache(str(tmp_path / "cache" / "results"))  # diskcache's default: pickles
    planter.set(small.key("bouncing"), Planted(marker))
    planter.set(large.key("bouncing"), [Planted(marker), "x" * 100_000])  # big: a pickle in a value file
    planter.close()
    store = Store(tmp_path / "cache")
    assert store.get(small.key("bouncing")) is None and store.get(large.key("bouncing")) is None
    assert not marker.exists()
    # What the store writes reads back as plain JSON with nothing but zlib and json.
    store.put(small.key("bouncing"), finished(small))
    with sqlite3.connect(tmp_path / "cache" / "results" / "cache.db") as db:
        (mode, value), = db.execute("SELECT mode, value FROM Cache WHERE key = ?", (small.key("bouncing"),))
    assert mode == diskcache.core.MODE_RAW
    entry = json.loads(zlib.decompress(value))
    assert entry["result"]["config"] == small.to_dict() and entry["state"] == small.state()


def test_a_read_only_cache_leaves_runs_working_with_a_warning(tmp_path, monkeypatch):
    store = Store(tmp_path)
    c = configs(1)[0].replace(steps=300)
    store._cache.close()
    real = sqlite3.connect

    def read_only(path, *args, **kwargs):  # what sqlite gives in a read-only folder, even to root
        return real(f"file:{path}?mode=ro", *args, uri=True, **kwargs)

    monkeypatch.setattr(diskcache.core.sqlite3, "connect", read_only)
    tmp_path.chmod(0o555)  # (binds users other than root)
    try:
        store = Store(tmp_path)
        assert store.warning.startswith("results are not being cached")
        job = JobManager(store, blas_threads=None).submit("bouncing", c)
        assert job.wait(60) and job.status == "done" and job.view()["runs"][0]["final"]["train_loss"] is not None
        assert store.get(job.key) is None and store.stats()["entries"] == 0
    finally:
        tmp_path.chmod(0o755)


FULL_DISK = """
import resource, signal, sys
from engine.toy import bouncing
from engine.jobs import JobManager
from engine.store import Store, key_of
store = Store(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
job = JobManager(store).submit("bouncing", bouncing.PRESETS["prop3"].config.replace(steps=3000))
job.wait(60)
print(job.status, store.get(job.key) is None, store.warning, sep="|")
"""


def test_a_full_disk_leaves_runs_working_with_a_warning(tmp_path):
    out = subprocess.run([sys.executable, "-c", FULL_DISK, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    status, missing, warning = out.stdout.strip().split("|")
    assert status == "done" and missing == "True" and warning.startswith("results are not being cached")


# ----------------------------------------------------------------------------- housekeeping
def test_gc_purges_other_versions_and_stale_or_finished_work(tmp_path, monkeypatch):
    store = Store(tmp_path)
    old, current, done = configs(3)
    monkeypatch.setattr("engine.core.version.library_versions", lambda names: {n: "0.0-older" for n in names})
    store.put(old.key("bouncing"), finished(old))  # made with another numpy: no lookup can hit it today
    monkeypatch.undo()
    store.put(done.key("bouncing"), finished(done))
    info = store.info()
    assert info["stale"] == 1 and info["entries"] == 2
    assert info["experiments"]["bouncing"]["current"] == 1 and info["experiments"]["bouncing"]["stale"] == 1
    assert {s["libraries"]["numpy"] for s in info["experiments"]["bouncing"]["states"]} == {"0.0-older",
                                                                                           np.__version__}

    def work(key: str, about: dict | None, files: dict[str, int], age: float = 0) -> Path:
        folder = tmp_path / "work" / key
        folder.mkdir(parents=True)
        if about:
            (folder / "about.json").write_text(json.dumps(about))
        for name, size in files.items():
            (folder / name).write_bytes(b"\0" * size)
        for p in [*folder.iterdir(), folder]:
            os.utime(p, (p.stat().st_mtime - age,) * 2)
        return folder

    def about(config) -> dict:
        return dict(experiment="bouncing", config=config.to_dict())

    now = time.time()
    a, b, c, d = (current.replace(steps=300 + k) for k in range(4))
    resumable = work(a.key("bouncing"), about(a), {"run0-e0001.pt": 10, "run0-e0001.json": 10,
                                                   "run0-e0002.pt.123.abc.tmp": 10})
    crashed = work(b.key("bouncing"), about(b), {"run0-e0001.pt": 10, "run0-e0001.pt.9.x.tmp": 10}, age=7200)
    foreign = work("made-by-older-code", about(a), {"run0-e0001.pt": 10})  # its key no longer rebuilds
    unlabelled = work("no-about", None, {"run0-e0001.pt": 10})
    finished_work = work(done.key("bouncing"), about(done), {"run0-e0003.pt": 10})
    empty = work(c.key("bouncing"), about(c), {}, age=7200)
    abandoned = work(d.key("bouncing"), about(d), {"run0-e0001.pt": 10}, age=30 * 86400)

    removed = store.gc(now=now)
    assert removed == dict(results=1, work_folders=5, tmp_files=1)
    assert store.get(done.key("bouncing")) is not None and store.info()["stale"] == 0
    assert resumable.exists() and (resumable / "run0-e0002.pt.123.abc.tmp").exists()  # a write in progress
    assert crashed.exists() and sorted(p.name for p in crashed.iterdir()) == ["about.json", "run0-e0001.pt"]
    assert not any(p.exists() for p in (foreign, unlabelled, finished_work, empty, abandoned))
    store.work_limit = 0  # over the size limit, gc still keeps the work of current keys that can resume
    store.gc(now=now)
    assert resumable.exists() and crashed.exists()


def test_work_folders_stay_under_the_size_limit_oldest_first(tmp_path):
    store = Store(tmp_path, work_limit=25_000)
    for k, key in enumerate(["first", "second", "third"]):
        folder = store.workdir(key)
        (folder / "run0-e0001.pt").write_bytes(b"\0" * 10_000)
        for p in (folder, *folder.iterdir()):
            os.utime(p, (1_000_000 + k,) * 2)
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["first", "second", "third"]
    store.workdir("fourth")  # a new job's folder: the oldest one makes room
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["fourth", "second", "third"]
    assert store.info()["work_folders"] == 3 and store.info()["work_bytes"] >= 20_000
    store.work_limit = 0
    store.gc()
    assert [p.name for p in (tmp_path / "work").iterdir()] == []
