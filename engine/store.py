"""On-disk result cache (diskcache) keyed by experiment + config + the code and libraries that compute it (the
config's `state`, engine.core.version), and the jobs' work folders.

The store never crashes a run and never serves a wrong result:
- entries are data: zlib-compressed JSON (`DataDisk`); a row in any other form, e.g. a pickle planted in the
  database, is refused unread;
- a hit is a well-formed finished result whose own experiment and config give, with today's code and
  libraries, the key asked for; anything else (another code or library version included) is a miss;
- a corrupt database (or a `results` that is not a folder) is moved aside to `results.corrupt-<time>` and a new
  one started; a cache that cannot be written (read-only folder, full disk) leaves runs working. Both show in
  `Store.warning` / `Store.status()`, for the app's sidebar and the CLI.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sqlite3
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

import diskcache
from diskcache.core import MODE_BINARY, MODE_RAW, UNKNOWN

from engine import registry

log = logging.getLogger(__name__)
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "cache"
LOCK_WAIT_SECONDS = 5.0  # how long a locked database is waited for before going on uncached (with a warning)
WORK_LIMIT = 4 * 2**30  # bytes of checkpoints kept under work/ (oldest folders go first)
STALE_TMP_SECONDS = 3600  # a temporary file older than this is left over from a crash
WORK_MAX_AGE = 14 * 86400  # saved work of a cancelled job untouched this long is dropped by gc
ABOUT_FILE = "about.json"  # in each work folder: the experiment and config whose checkpoints it holds
_VALUE_FILE = re.compile(r"[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{28}\.val")  # diskcache's own value file names
_CORRUPT = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
_UNUSABLE = ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_FULL", "SQLITE_IOERR", "SQLITE_BUSY", "SQLITE_LOCKED",
             "SQLITE_PERM", "SQLITE_NOMEM", "SQLITE_NOLFS", "SQLITE_AUTH")  # the file may be fine: do not move it
_RESULT_FIELDS = dict(experiment=str, config=dict, status=str, message=str, runs=list, extras=dict,
                      progress=(int, float), started=(int, float), elapsed=(int, float))
_RUN_FIELDS = dict(name=str, label=str, status=str, message=str, config=dict, history=dict, final=dict,
                   snapshots=dict)


def cache_dir() -> Path:
    """`$SPARSE_SGD_CACHE` if set, else `cache/` beside the engine."""
    return Path(os.environ.get("SPARSE_SGD_CACHE") or DEFAULT_DIR)


class DataDisk(diskcache.Disk):
    """diskcache serialization that holds only data: string keys, values as zlib-compressed JSON (bytes are
    stored as given). A row in another form (a pickled key or value, a value file outside the cache) raises
    ValueError unread, and is never deleted outside the cache folder."""

    def put(self, key):
        if type(key) is not str:
            raise TypeError(f"result keys are strings, not {type(key).__name__}")
        return key, True

    def get(self, key, raw):
        if not raw or type(key) is not str:
            raise ValueError("a key that is not a plain string")
        return key

    def store(self, value, read, key=UNKNOWN):
        if read:
            raise TypeError("values are JSON data, not files")
        blob = value if type(value) is bytes else zlib.compress(json.dumps(value).encode(), 1)
        return super().store(blob, False, key)

    def fetch(self, mode, filename, value, read):
        if read or mode not in (MODE_RAW, MODE_BINARY):
            raise ValueError(f"a value stored in mode {mode} (only JSON data is read)")
        if mode == MODE_BINARY and not (isinstance(filename, str) and _VALUE_FILE.fullmatch(filename)):
            raise ValueError("a value file outside the cache")
        blob = super().fetch(mode, filename, value, False)
        if type(blob) is not bytes:
            raise ValueError("a value that is not JSON data")
        return json.loads(zlib.decompress(blob))

    def remove(self, file_path):
        if isinstance(file_path, str) and _VALUE_FILE.fullmatch(file_path):
            super().remove(file_path)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _is_corrupt(exc: BaseException) -> bool:
    """Whether an error says the database file itself is damaged (not locked, read-only or full)."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith(_CORRUPT) or any(s in str(exc) for s in ("malformed", "not a database"))


def _is_unusable(exc: BaseException) -> bool:
    """Whether an error says the cache cannot be opened or written here (read-only, missing, full, locked)."""
    if isinstance(exc, (OSError, diskcache.Timeout)):
        return True
    name = getattr(exc, "sqlite_errorname", "") or ""
    return isinstance(exc, sqlite3.DatabaseError) and name.startswith(_UNUSABLE)


def _folder_size(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        try:
            total += p.lstat().st_size if p.is_file() or p.is_symlink() else 0
        except OSError:
            pass
    return total


def _last_change(path: Path) -> float:
    """The newest modification time of a folder or anything in it."""
    times = [path.lstat().st_mtime]
    for p in path.rglob("*"):
        try:
            times.append(p.lstat().st_mtime)
        except OSError:
            pass
    return max(times)


def well_formed(result: object) -> bool:
    """Whether `result` has every field a finished Result has (docs/design.md), with the right types."""
    if not isinstance(result, dict) or result.get("status") != "done":
        return False
    if not all(isinstance(result.get(k), t) and not isinstance(result.get(k), bool) for k, t in _RESULT_FIELDS.items()):
        return False
    for run in result["runs"]:
        if not isinstance(run, dict) or "seed" not in run or not all(isinstance(run.get(k), t)
                                                                     for k, t in _RUN_FIELDS.items()):
            return False
        hist = run["history"]
        steps = hist.get("step")
        if not isinstance(steps, list) or not all(isinstance(c, list) and len(c) == len(steps) for c in hist.values()):
            return False
        if not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                   for column in hist.values() for v in column):
            return False
    return _runs_match_config(result)


def _runs_match_config(result: dict) -> bool:
    """Whether a result holds one run per run of its config's runs table and seed (by the run's own config name):
    a result cut short, or runs of another config, is no result of this one."""
    table = result["config"].get("runs")
    if not isinstance(table, list):
        return True  # no runs table: the experiment decides its runs
    seeds = result["config"].get("seeds", 1)
    if not all(isinstance(r, dict) for r in table) or not isinstance(seeds, int) or isinstance(seeds, bool):
        return False
    expected = Counter({r.get("name"): seeds for r in table})
    return Counter(run["config"].get("name") for run in result["runs"]) == expected


def _config_of(about: object):
    """The Config an {"experiment", "config"} record names (None when it names no valid config)."""
    try:
        return registry.get(about["experiment"]).Config.from_dict(about["config"])
    except Exception:  # an unknown experiment or a config that does not validate
        return None


def key_of(result: dict) -> str | None:
    """The cache key, with today's code and libraries, of the experiment and config a result records (None when
    they are no valid config)."""
    config = _config_of(result)
    return None if config is None else config.key(result["experiment"])


def _wait_for_lock(db: Path) -> None:
    """sqlite3.OperationalError ('database is locked') when another process holds the database's write lock for
    LOCK_WAIT_SECONDS (diskcache's own open would wait 60 s, then fail the same way)."""
    if not db.is_file():
        return
    try:
        con = sqlite3.connect(str(db), timeout=LOCK_WAIT_SECONDS, isolation_level=None)
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute("ROLLBACK")
        finally:
            con.close()
    except sqlite3.Error as exc:
        if "locked" in str(exc):
            raise
        # anything else (read-only, damaged) is diskcache's to meet and the store's to report, as before


class Store:
    """Finished results and per-job work folders (for resumable checkpoints) under one directory.

    Never raises on a damaged or unwritable cache: `warning` says what is wrong (None when all is well)."""

    def __init__(self, directory: str | Path | None = None, work_limit: int = WORK_LIMIT):
        self.dir = Path(directory) if directory else cache_dir()
        self.work_limit = work_limit
        self._problems: dict[str, str] = {}  # kind ('open', 'write', 'corrupt', 'work') -> message
        self._lock = threading.RLock()
        self._cache: diskcache.Cache | None = None
        self._open()

    # ---- health ----
    @property
    def warning(self) -> str | None:
        """What is wrong with the cache, as one line for the sidebar or stderr; None when all is well."""
        problems = list(self._problems.values())
        return "; ".join(problems) if problems else None

    def status(self) -> str:
        """One line: how many results are stored where, then the warning if any."""
        s = self.stats()
        line = f"{s['entries']} results, {s['bytes'] / 1e6:.1f} MB in {s['path']}"
        return f"{line} - {s['warning']}" if s["warning"] else line

    def _problem(self, kind: str, message: str | None) -> None:
        if message is None:
            self._problems.pop(kind, None)
        elif self._problems.get(kind) != message:
            self._problems[kind] = message
            log.warning("%s", message)

    def _open(self) -> None:
        """Open (or create) the results database; a corrupt one is moved aside, an unwritable one disables
        caching."""
        with self._lock:
            results = self.dir / "results"
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
                if results.exists() and not results.is_dir():
                    self._set_aside(results, "results is a file, not a folder")
                _wait_for_lock(results / diskcache.core.DBNAME)
                self._cache = diskcache.Cache(str(results), disk=DataDisk, timeout=LOCK_WAIT_SECONDS)
                self._problem("open", None)
                self._check_settings()
                return
            except Exception as exc:
                error = exc
            if not _is_unusable(error):  # a damaged file, a foreign schema or settings: start a new one
                try:
                    self._set_aside(results, f"the result cache was unreadable ({_describe(error)})")
                    self._cache = diskcache.Cache(str(results), disk=DataDisk, timeout=LOCK_WAIT_SECONDS)
                    return
                except Exception as exc:
                    error = exc
            self._cache = None
            self._problem("open", f"results are not being cached: the cache folder {self.dir} cannot be used "
                                  f"({_describe(error)})")

    def _check_settings(self) -> None:
        """Reset a size setting of the database that is not a size (diskcache would fail every write on it)."""
        for name in ("size_limit", "cull_limit"):
            value = getattr(self._cache, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (1 if name == "size_limit" else 0):
                default = diskcache.DEFAULT_SETTINGS[name]
                self._cache.reset(name, default)
                self._problem("settings", f"the cache's setting {name}={value!r} is not a size: reset to {default}")

    def _set_aside(self, results: Path, why: str) -> None:
        """Move a damaged results database out of the way (kept for inspection) and say so."""
        if self._cache is not None:
            try:
                self._cache.close()
            except Exception:
                pass
            self._cache = None
        aside = results.with_name(f"results.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        n = 1
        while aside.exists():
            aside, n = results.with_name(f"results.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{n}"), n + 1
        results.rename(aside)
        self._problem("corrupt", f"{why}: moved aside to {aside.name}, a new one was started")

    def _failed(self, exc: BaseException, doing: str) -> None:
        """Handle an error of the open database: a corrupt one is replaced, others become the warning."""
        if _is_corrupt(exc):
            with self._lock:
                try:
                    self._set_aside(self.dir / "results", f"the result cache was corrupt ({_describe(exc)})")
                except OSError as move:
                    self._cache = None
                    self._problem("open", f"results are not being cached: the corrupt cache in {self.dir} could "
                                          f"not be moved aside ({_describe(move)})")
                    return
                self._open()
        elif doing == "write":
            reason = "the disk is full" if "full" in str(exc) or getattr(exc, "errno", None) == 28 else _describe(exc)
            self._problem("write", f"results are not being cached: {reason} ({self.dir})")
        else:
            self._problem("read", f"results could not be read from the cache ({_describe(exc)}): computing them "
                                  f"again ({self.dir})")

    # ---- results ----
    def get(self, key: str) -> dict | None:
        """The stored result for `key`, or None: missing, unreadable, from another engine version, lacking
        fields, or recorded for another experiment or config than the one `key` names."""
        cache = self._cache
        if cache is None:
            return None
        try:
            entry = cache.get(key)
        except (ValueError, zlib.error, UnicodeDecodeError):  # not JSON data: a miss
            return None
        except Exception as exc:
            self._failed(exc, "read")
            return None
        if not isinstance(entry, dict):
            return None
        result = entry.get("result")
        if not well_formed(result) or key_of(result) != key:
            return None
        return result

    def put(self, key: str, result: dict) -> bool:
        """Store a finished result; False (and `warning` says why) when it could not be written."""
        for _ in range(2):  # a second time into the fresh database when the first one was corrupt
            cache = self._cache
            if cache is None:
                return False
            try:
                config = _config_of(result)
                state = config.state() if config is not None else None
                cache.set(key, dict(state=state, result=result), tag=result.get("experiment"))
            except (TypeError, ValueError):
                log.warning("result %s is not JSON data: not cached", key, exc_info=True)
                return False
            except Exception as exc:
                self._failed(exc, "write")
                if not _is_corrupt(exc):
                    return False
                continue
            self._problem("write", None)
            return True
        return False

    def clear(self, work: bool = False) -> None:
        """Drop every stored result (with `work`, also every work folder and the corrupt copies set aside)."""
        if self._cache is not None:
            try:
                self._cache.clear()
            except Exception as exc:
                self._failed(exc, "write")
        if work:
            shutil.rmtree(self.dir / "work", ignore_errors=True)
            for aside in self.corrupt_copies():
                shutil.rmtree(aside, ignore_errors=True)
            self._problem("corrupt", None)

    # ---- work folders ----
    def workdir(self, key: str, about: dict | None = None) -> Path | None:
        """A folder where a long job keeps its resumable state (model/optimizer checkpoints), or None when the
        cache folder cannot be written (the job then runs without checkpoints). `about` ({"experiment",
        "config"}) is kept beside the checkpoints, so `gc` can tell whether the key is still current. Older
        folders go first when work/ grows past the size limit."""
        path = self.dir / "work" / key
        try:
            path.mkdir(parents=True, exist_ok=True)
            marker = path / ABOUT_FILE
            if about is not None and not marker.exists():
                marker.write_text(json.dumps(about))
        except OSError as exc:
            self._problem("work", f"checkpoints are not being saved: {self.dir / 'work'} cannot be written "
                                  f"({_describe(exc)})")
            return None
        self._problem("work", None)
        self._limit_work(keep=key)
        return path

    def discard_work(self, key: str) -> None:
        """Delete a job's saved work (its next run starts from scratch)."""
        shutil.rmtree(self.dir / "work" / key, ignore_errors=True)

    def _work_folders(self) -> list[Path]:
        work = self.dir / "work"
        try:
            return [p for p in work.iterdir() if p.is_dir() and not p.is_symlink()]
        except OSError:
            return []

    def _limit_work(self, keep: str | None = None, protect=None) -> list[str]:
        """Delete the least recently changed work folders until work/ fits the size limit, except `keep` and those
        for which `protect(folder)` holds; their keys."""
        folders = []
        for p in self._work_folders():
            try:
                folders.append((_last_change(p), _folder_size(p), p))
            except OSError:
                pass
        total = sum(size for _, size, _ in folders)
        removed = []
        for _, size, p in sorted(folders, key=lambda f: f[0]):
            if total <= self.work_limit:
                break
            if p.name == keep or (protect is not None and protect(p)):
                continue
            shutil.rmtree(p, ignore_errors=True)
            total -= size
            removed.append(p.name)
        return removed

    # ---- housekeeping ----
    def corrupt_copies(self) -> list[Path]:
        """Damaged databases set aside (`results.corrupt-*`), oldest first."""
        try:
            return sorted(self.dir.glob("results.corrupt-*"))
        except OSError:
            return []

    def stats(self) -> dict:
        """Number of stored results, bytes on disk, the folder, and the warning (None when all is well)."""
        entries = size = 0
        if self._cache is not None:
            try:
                entries, size = len(self._cache), self._cache.volume()
            except Exception as exc:
                self._failed(exc, "read")
        return dict(entries=entries, bytes=size, path=str(self.dir), warning=self.warning)

    def summary(self) -> dict[str, dict]:
        """Per experiment: how many results of today's code are stored and the seconds they took to compute
        (what clearing the cache would throw away)."""
        out: dict[str, dict] = {}
        for row in self.entries():
            if row["current"]:
                entry = out.setdefault(row["experiment"], dict(results=0, seconds=0.0))
                entry["results"] += 1
                entry["seconds"] += row["seconds"]
        return out

    def entries(self) -> list[dict]:
        """One row per stored entry: key, experiment, the code/library state that made it, the seconds it took, and
        whether it is current (its key rebuilds with today's code and libraries, so a lookup can hit it)."""
        rows = []
        cache = self._cache
        if cache is None:
            return rows
        try:
            for key in list(cache.iterkeys()):
                try:
                    entry = cache.get(key)
                except (ValueError, zlib.error, UnicodeDecodeError):
                    entry = None
                result = entry.get("result") if isinstance(entry, dict) else None
                ok = well_formed(result)
                rows.append(dict(key=key, experiment=result["experiment"] if ok else None,
                                 state=entry.get("state") if isinstance(entry, dict) else None,
                                 seconds=float(result.get("elapsed") or 0.0) if ok else 0.0,
                                 current=ok and key_of(result) == key))
        except Exception as exc:
            self._failed(exc, "read")
        return rows

    def info(self) -> dict:
        """`stats()` plus, per experiment, the results stored and which are current (with the code/library states
        that made them); entries no lookup can hit any more (`stale`); work folders and their bytes; corrupt
        copies."""
        out = self.stats()
        experiments: dict[str, dict] = {}
        stale = 0
        for row in self.entries():
            if row["experiment"] is None or not row["current"]:
                stale += 1
                if row["experiment"] is None:
                    continue
            entry = experiments.setdefault(row["experiment"], dict(current=0, stale=0, states=[]))
            entry["current" if row["current"] else "stale"] += 1
            if row["state"] is not None and row["state"] not in entry["states"]:
                entry["states"].append(row["state"])
        folders = self._work_folders()
        out.update(experiments=experiments, stale=stale, work_folders=len(folders),
                   work_bytes=sum(_folder_size(p) for p in folders), work_limit=self.work_limit,
                   corrupt_copies=[p.name for p in self.corrupt_copies()])
        return out

    def _current_work(self, folder: Path) -> bool:
        """Whether a work folder belongs to a config whose key is still current (so its checkpoints can resume)."""
        try:
            about = json.loads((folder / ABOUT_FILE).read_text())
        except (OSError, ValueError):
            return False
        config = _config_of(about)
        return config is not None and config.key(about["experiment"]) == folder.name

    def gc(self, now: float | None = None) -> dict:
        """Purge results no lookup can hit any more (made by other code or libraries, or unreadable) and orphan
        value files; delete work folders whose key is no longer current, of finished results, without a
        checkpoint, or untouched for `WORK_MAX_AGE` (a cancelled job never resumed), and leftover temporary files;
        then keep work/ under its size limit with what is left. A work folder whose key is current and that may still
        resume is never deleted (only a new long job, when work/ is over its limit, evicts the least recently used
        folders, `workdir`). Returns what went: {results, work_folders, tmp_files}."""
        now = time.time() if now is None else now
        removed = dict(results=0, work_folders=0, tmp_files=0)
        if self._cache is not None:
            try:
                for row in self.entries():
                    if not row["current"] and self._cache.delete(row["key"]):
                        removed["results"] += 1
                self._cache.check(fix=True)  # value files no row points to, and the counts
            except Exception as exc:
                self._failed(exc, "write")
        for folder in self._work_folders():
            try:
                checkpoints = []
                for p in folder.iterdir():
                    if p.name.endswith(".tmp") and now - p.lstat().st_mtime > STALE_TMP_SECONDS:
                        p.unlink(missing_ok=True)
                        removed["tmp_files"] += 1
                    elif p.name != ABOUT_FILE:
                        checkpoints.append(p)
                age = now - _last_change(folder)
            except OSError:
                continue
            if (not self._current_work(folder) or self.get(folder.name) is not None or age > WORK_MAX_AGE
                    or (not checkpoints and age > STALE_TMP_SECONDS)):
                shutil.rmtree(folder, ignore_errors=True)
                removed["work_folders"] += 1
        removed["work_folders"] += len(self._limit_work(protect=self._current_work))
        return removed
