"""Golden digests of the small-model presets: sha256 of what a run computes, to be compared with the stored
ones in tests/golden/digests.json (tests/test_determinism.py does, under each OpenBLAS kernel).

Each preset runs as it is (its own checkpoints, through its experiment's ordinary `run()`). Digested:
- `states`: the training loops' states at every checkpoint (u * v and the died flags of the diagonal nets;
  the ReLU nets' parameters, alive and died flags), in order; bouncing's theta history;
- `final_params`: the last state of each run (the final parameters);
- `exact`: every recorded history column that no BLAS call computes (steps, step sizes, ||u*v||_0, kinks,
  theta, feature sparsity...), as float64, and each run's status and message.
Losses, rank(phi) and the toy's label noise go through BLAS/LAPACK, whose kernels may differ in the last bits
(see the test), so their final values are stored as numbers, not digested.

Usage: python -m tests.golden_digests [EXPERIMENT:PRESET ...]   print the digests as JSON
       python -m tests.golden_digests --write                   rewrite tests/golden/digests.json
"""

from __future__ import annotations

import datetime
import hashlib
import json
import platform
import sys
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from engine import registry
from engine.core.recording import Recorder
from engine.diagonal import sim as diagonal_sim
from engine.relu import nets as rn

GOLDEN = Path(__file__).resolve().parent / "golden" / "digests.json"
PRESETS = ["bouncing:prop3", "bouncing:below", "bouncing:above", "diagonal:fig2", "diagonal:fig8", "diagonal:fig3",
           "diagonal:sde", "relu1d:fig4", "relu1d:fig9", "teacher_student:fig5", "teacher_student:fig6"]
# computed through BLAS/LAPACK (bouncing's label-noise columns come from the residuals' dot product r @ r)
BLAS_METRICS = ("train_loss", "test_loss", "ntk_rank", "label_noise", "label_noise_mean", "two_loss",
                "two_loss_mean")

_states: list[bytes] = []
_last: dict[str, bytes] = {}
_advance = diagonal_sim.Simulator.advance
_train = rn.train


def _advance_and_record(self, stops):
    u, v = _advance(self, stops)
    state = np.ascontiguousarray(u * v)
    _states.append(state.tobytes() + self.died.tobytes())
    _last["params"] = state.tobytes()
    return u, v


def _train_and_record(*args, **kwargs):
    for step, params, alive, died in _train(*args, **kwargs):
        _states.append(np.int64(step).tobytes() + params.tobytes() + alive.tobytes() + died.tobytes())
        _last["params"] = np.ascontiguousarray(params, dtype=np.float64).tobytes()
        yield step, params, alive, died


diagonal_sim.Simulator.advance = _advance_and_record
rn.train = _train_and_record


def _column(values) -> bytes:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64).tobytes()


def digest(name: str, preset: str) -> dict:
    """The digests of one preset's run, and the final values of its BLAS-computed metrics."""
    _states.clear()
    _last.clear()
    _, config = registry.preset(name, preset)
    rec = Recorder(name, config.to_dict())
    with threadpool_limits(1):  # as a job runs (engine/jobs.py); also the fastest on two cores
        registry.get(name).run(config, rec, None)
    runs = rec.view()["runs"]
    exact = hashlib.sha256()
    for r in runs:
        exact.update(f"{r['name']}|{r['status']}|{r['message']}".encode())
        for column in sorted(r["history"]):
            if column not in BLAS_METRICS:
                exact.update(column.encode() + _column(r["history"][column]))
    if not _states:  # the toy model: its state is theta, logged at every step
        for r in runs:
            _states.append(_column(r["history"]["theta"]))
        _last["params"] = _column([r["history"]["theta"][-1] for r in runs])
    return dict(states=hashlib.sha256(b"".join(_states)).hexdigest(),
                final_params=hashlib.sha256(_last["params"]).hexdigest(),
                exact=exact.hexdigest(),
                blas_final={r["name"]: {m: r["final"][m] for m in BLAS_METRICS if r["final"].get(m) is not None}
                            for r in runs})


def machine() -> dict:
    """Where the digests were made: the CPU (name, family, model, vector extensions), Python, numpy, OpenBLAS."""
    import os

    from threadpoolctl import threadpool_info

    info = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    flags = info.get("flags", "").split()
    vector = [name for flag, name in (("pni", "sse3"), ("avx", "avx"), ("fma", "fma"), ("avx2", "avx2"),
                                      ("avx512f", "avx512f")) if flag in flags]
    blas = [f"{lib['internal_api']} {lib['version']} {lib.get('architecture')}" for lib in threadpool_info()
            if lib["user_api"] == "blas"]
    return dict(cpu=info.get("model name", platform.processor()), cpu_family=info.get("cpu family"),
                cpu_model=info.get("model"), vector=vector,
                machine=platform.machine(), python=platform.python_version(), numpy=np.__version__, blas=blas,
                openblas_coretype=os.environ.get("OPENBLAS_CORETYPE", "unset"),
                date=datetime.date.today().isoformat())


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        table = dict(made_on=machine(), presets={item: digest(*item.split(":")) for item in PRESETS})
        GOLDEN.write_text(json.dumps(table, indent=1) + "\n")
    else:
        print(json.dumps({item: digest(*item.split(":")) for item in sys.argv[1:] or PRESETS}))
