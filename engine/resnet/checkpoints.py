"""A ResNet run's saved epochs: tensors loaded with weights_only beside a JSON record, written atomically, the last
two kept, read back with checks; and a saved history replayed into the recorder."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from engine.core.recording import RUN_STATUSES, Recorder


# ----------------------------------------------------------------------------- checkpoints
def to_cpu(obj):
    """A copy of a (nested) state with every tensor on the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


# Epoch E of run k is two files in the job's work folder: run{k}-e{E:04d}.pt holds only tensors (model, optimizer,
# RNG state; read with weights_only=True) and run{k}-e{E:04d}.json the epoch, the history so far and the sha256 of
# the .pt. The .json is written last, so it commits the pair. A finished run keeps only run{k}-done.json.
KEEP_CHECKPOINTS = 2
CHECKPOINT_FORMAT = 1


def _atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file unique to this process and call: a crash leaves the old
    file, and two processes saving the same checkpoint never write into each other's file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _epochs_saved(prefix: Path) -> list[int]:
    """Epochs with a file of run `prefix` (e.g. work/run0) in its folder, oldest first."""
    pattern = re.compile(rf"{re.escape(prefix.name)}-e(\d+)\.(?:pt|json)")
    try:
        names = [p.name for p in prefix.parent.iterdir()]
    except OSError:
        return []
    return sorted({int(m.group(1)) for n in names if (m := pattern.fullmatch(n))})


def write_checkpoint(prefix: Path, epoch: int, record: dict, tensors: dict | None) -> None:
    """Save run `prefix` at `epoch`: its record (history, snapshots) as JSON and `tensors` (None: the run is
    finished, only its record is kept) with weights_only-loadable torch.save; older epochs beyond the last
    KEEP_CHECKPOINTS are deleted."""
    meta = dict(format=CHECKPOINT_FORMAT, epoch=epoch, done=tensors is None, run=record)
    if tensors is None:
        _atomic_write(prefix.with_name(f"{prefix.name}-done.json"), json.dumps(meta).encode())
        keep = set()
    else:
        buffer = io.BytesIO()
        torch.save(tensors, buffer)
        blob = buffer.getvalue()
        stem = prefix.with_name(f"{prefix.name}-e{epoch:04d}")
        _atomic_write(stem.with_suffix(".pt"), blob)
        meta["sha256"] = hashlib.sha256(blob).hexdigest()
        _atomic_write(stem.with_suffix(".json"), json.dumps(meta).encode())
        committed = [e for e in _epochs_saved(prefix) if prefix.with_name(f"{prefix.name}-e{e:04d}.json").exists()]
        keep = set(committed[-KEEP_CHECKPOINTS:]) | {epoch}
    for e in _epochs_saved(prefix):
        if e not in keep:
            for suffix in (".json", ".pt"):
                prefix.with_name(f"{prefix.name}-e{e:04d}{suffix}").unlink(missing_ok=True)


def _record_ok(run: object) -> bool:
    """Whether a saved run record can be replayed into a recorder as it is (so a bad one changes nothing)."""
    if not isinstance(run, dict) or run.get("status") not in RUN_STATUSES or not isinstance(run.get("message"), str):
        return False
    hist, snaps = run.get("history"), run.get("snapshots")
    if not isinstance(hist, dict) or not isinstance(snaps, dict) or not isinstance(hist.get("step"), list):
        return False
    return None not in hist["step"] and all(
        isinstance(col, list) and len(col) == len(hist["step"])
        and all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in col)
        for col in hist.values())


def read_checkpoint(json_path: Path) -> dict:
    """One saved state: {epoch, done, run} and, for an unfinished run, {model, opt, gen}. Raises (ValueError,
    OSError, pickle errors) when the files are damaged, do not match, or hold anything but tensors and data."""
    meta = json.loads(json_path.read_text())
    if not (isinstance(meta, dict) and meta.get("format") == CHECKPOINT_FORMAT and type(meta.get("epoch")) is int
            and isinstance(meta.get("done"), bool) and _record_ok(meta.get("run"))):
        raise ValueError("not a checkpoint record")
    if meta["done"]:
        return meta
    blob = json_path.with_suffix(".pt").read_bytes()
    if hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
        raise ValueError("the weights file is damaged (checksum mismatch)")
    tensors = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    if not isinstance(tensors, dict) or not {"model", "opt", "gen"} <= set(tensors):
        raise ValueError("the weights file lacks model, optimizer or RNG state")
    return {**meta, **tensors}


def saved_states(prefix: Path) -> Iterator[tuple[str, Callable[[], dict]]]:
    """Run `prefix`'s saved states, newest first (its finished record, then epochs): (label, load), where load()
    returns `read_checkpoint`'s state or raises."""
    done = prefix.with_name(f"{prefix.name}-done.json")
    if done.exists():
        yield "the finished run's record", lambda: read_checkpoint(done)
    for e in reversed(_epochs_saved(prefix)):
        path = prefix.with_name(f"{prefix.name}-e{e:04d}.json")
        yield f"epoch {e}", lambda path=path: read_checkpoint(path)


def why_failed(exc: BaseException) -> str:
    """A short reason for a failed save or load (the first line of the error)."""
    if isinstance(exc, pickle.UnpicklingError):
        return "it holds more than tensors and plain data: not loaded"
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else (str(exc) or type(exc).__name__)
    return text.strip().splitlines()[0][:160] if text.strip() else type(exc).__name__


def replay(rec: Recorder, run: int, saved: dict) -> None:
    """Put a saved run's history and snapshots back into the recorder."""
    hist = saved["history"]
    for i, step in enumerate(hist["step"]):
        rec.log(run, step, **{k: col[i] for k, col in hist.items() if k != "step"})
    for key, value in saved["snapshots"].items():
        if isinstance(value, list) and value and isinstance(value[0], dict) and set(value[0]) == {"step", "value"}:
            for item in value:
                rec.snapshot(run, key, item["value"], step=item["step"])
        else:
            rec.snapshot(run, key, value)


