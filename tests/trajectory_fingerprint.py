"""Print a fingerprint of the training trajectories of some presets, as JSON (run by tests/test_determinism.py
in subprocesses under different BLAS kernels).

The presets run through their experiment's ordinary `run()` (with 20 checkpoints after the first 100 steps,
to save the metrics' time); the states the training loops hand back (u * v of the diagonal nets, the ReLU nets'
parameters, at every checkpoint) are hashed on the way, with each run's status and divergence step.
Usage: python -m tests.trajectory_fingerprint EXPERIMENT:PRESET ...
"""

from __future__ import annotations

import hashlib
import json
import sys

import numpy as np

from engine import registry
from engine.core.recording import Recorder
from engine.diagonal import sim as diagonal_sim
from engine.relu import nets as rn

digest = hashlib.sha256()
_advance = diagonal_sim.Simulator.advance
_train = rn.train


def advance(self, stops):
    u, v = _advance(self, stops)
    digest.update(np.ascontiguousarray(u * v).tobytes())
    digest.update(self.died.tobytes())
    return u, v


def train(*args, **kwargs):
    for step, params, alive, died in _train(*args, **kwargs):
        digest.update(np.int64(step).tobytes() + params.tobytes() + alive.tobytes() + died.tobytes())
        yield step, params, alive, died


diagonal_sim.Simulator.advance = advance
rn.train = train


def fingerprint(name: str, preset: str) -> dict:
    """sha256 of the trajectories, and each run's status and message (which names a divergence step)."""
    global digest
    digest = hashlib.sha256()
    _, config = registry.preset(name, preset)
    config = config.replace(checkpoints=20)  # trajectories do not depend on where they are recorded; metrics cost
    rec = Recorder(name, config.to_dict())
    registry.get(name).run(config, rec, None)
    runs = rec.view()["runs"]
    return dict(trajectories=digest.hexdigest(), runs=[[r["name"], r["status"], r["message"]] for r in runs],
                final={r["name"]: r["final"] for r in runs})


if __name__ == "__main__":
    print(json.dumps({item: fingerprint(*item.split(":")) for item in sys.argv[1:]}))
