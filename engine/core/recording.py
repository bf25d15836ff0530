"""The live record of one job: metric histories per run, snapshots, progress and a stop flag.

An experiment's `run(config, rec)` writes into a Recorder from a worker thread; pages and the
CLI read consistent copies with `view()` while it trains. The finished record is the job's
Result (JSON-serializable, see docs/design.md).
"""

from __future__ import annotations

import copy
import math
import threading
import time
from typing import Any

RUN_STATUSES = ("running", "done", "diverged", "cancelled", "failed")


def _plain(value: Any) -> Any:
    """Numbers as Python floats/ints with non-finite values as None (JSON has no NaN)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class Cancelled(Exception):
    """Raised inside a run when the user asked it to stop."""


class Recorder:
    """Thread-safe buffer that one running job fills and any number of readers copy."""

    def __init__(self, experiment: str, config: dict, preset: str | None = None):
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.data: dict[str, Any] = dict(experiment=experiment, preset=preset, config=config, status="running",
                                         message="", progress=0.0, runs=[], extras={}, started=time.time(),
                                         elapsed=0.0)

    # ---- written by the experiment (worker thread) ----
    def add_run(self, name: str, label: str | None = None, seed: int | None = None, spec: dict | None = None) -> int:
        """Declare a run; returns its index for `log` and `finish_run`."""
        with self._lock:
            self.data["runs"].append(dict(name=name, label=label or name, seed=seed, config=spec or {},
                                          status="running", message="", history={"step": []}, final={},
                                          snapshots={}))
            return len(self.data["runs"]) - 1

    def log(self, run: int, step: int, **metrics: float) -> None:
        """Append one checkpoint row to a run's history (a metric missing from a row is None)."""
        with self._lock:
            hist = self.data["runs"][run]["history"]
            n = len(hist["step"])
            hist["step"].append(int(step))
            for key, value in metrics.items():
                column = hist.setdefault(key, [None] * n)
                column.append(_plain(float(value)) if value is not None else None)
            for column in hist.values():
                if len(column) < n + 1:
                    column.append(None)

    def snapshot(self, run: int | None, key: str, value: Any, step: int | None = None) -> None:
        """Store a snapshot (predictor curve, neuron positions...) for a run, or for the job if run is None.
        With `step`, snapshots accumulate as a list of {"step", "value"}."""
        value = _plain(value)
        with self._lock:
            target = self.data["extras"] if run is None else self.data["runs"][run]["snapshots"]
            if step is None:
                target[key] = value
            else:
                target.setdefault(key, []).append(dict(step=int(step), value=value))

    def finish_run(self, run: int, status: str, message: str = "", final: dict | None = None) -> None:
        """Close a run with a status and its final metric values (default: last logged values)."""
        assert status in RUN_STATUSES, status
        with self._lock:
            r = self.data["runs"][run]
            r["status"], r["message"] = status, message
            if final is None:
                final = {k: next((v for v in reversed(col) if v is not None), None)
                         for k, col in r["history"].items() if k != "step"}
            r["final"] = _plain(final)

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Report progress in [0, 1]; raises Cancelled if a stop was requested."""
        with self._lock:
            self.data["progress"] = float(min(max(fraction, 0.0), 1.0))
            self.data["elapsed"] = time.time() - self.data["started"]
            if message is not None:
                self.data["message"] = message
        if self._stop.is_set():
            raise Cancelled()

    # ---- control ----
    def request_stop(self) -> None:
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        """Whether a stop was asked for (for work that must stop helpers before raising Cancelled)."""
        return self._stop.is_set()

    def close(self, status: str, message: str = "") -> None:
        """End the job: running runs take the job's status (cancelled/failed) or 'done'."""
        with self._lock:
            self.data["status"], self.data["elapsed"] = status, time.time() - self.data["started"]
            if message:
                self.data["message"] = message
            if status == "done":
                self.data["progress"] = 1.0
        for i, r in enumerate(self.data["runs"]):
            if r["status"] == "running":
                self.finish_run(i, "done" if status == "done" else status, "" if status == "done" else message)

    # ---- read by pages / CLI ----
    def view(self) -> dict:
        """A consistent deep copy of the record so far."""
        with self._lock:
            return copy.deepcopy(self.data)

    @classmethod
    def from_result(cls, result: dict) -> Recorder:
        """A closed recorder holding a stored result (for cache hits)."""
        rec = cls(result["experiment"], result["config"], result.get("preset"))
        rec.data = copy.deepcopy(result)
        return rec


def export(view: dict) -> dict:
    """The JSON contract of docs/design.md from a job's record: {"experiment", "preset", "runs": [{"name",
    "status", "config", "final", "history", ...}], ...}."""
    runs = [dict(name=r["name"], label=r["label"], seed=r["seed"], status=r["status"], message=r["message"],
                 config=r["config"], final=r["final"], history=r["history"], snapshots=r["snapshots"])
            for r in view["runs"]]
    return dict(experiment=view["experiment"], preset=view.get("preset"), status=view["status"],
                config=view["config"], runs=runs, extras=view.get("extras", {}))
