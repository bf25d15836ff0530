"""The experiments by name: one module per experiment, in its family's package, imported only when used.

Each module defines `TITLE`, a `Config` (engine.core.config.Config), `PRESETS` (name -> Preset, the
first is the default), `run(config, rec, workdir)` and optionally `lane(config)` ('quick' jobs
run on a small pool of worker threads, 'long' jobs queue one at a time, e.g. on the one GPU),
`CHECKPOINTS = True` (its jobs get a work folder to save resumable state in; others get None) and
`preflight(config)` (what would stop the config from running here, e.g. missing data).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType

from engine.core.claims import Check
from engine.core.config import Config

MODULES = {
    "bouncing": "engine.toy.bouncing",
    "diagonal": "engine.diagonal.experiment",
    "diagonal_edge": "engine.diagonal.edge",
    "resnet": "engine.resnet.experiment",
    "relu1d": "engine.relu.relu1d",
    "teacher_student": "engine.relu.teacher_student",
    "sweep": "engine.sweeps.experiment",
    "reproduce": "engine.reproduce.experiment",
}


def names() -> list[str]:
    """Names of all experiments."""
    return list(MODULES)


def get(name: str) -> ModuleType:
    """The experiment module called `name`; ValueError for an unknown name."""
    if name not in MODULES:
        raise ValueError(f"unknown experiment {name!r}: expected one of {', '.join(MODULES)}")
    return importlib.import_module(MODULES[name])


def preset(name: str, preset_name: str | None = None) -> tuple[str, Config]:
    """(preset name, config) of an experiment's preset (its default when None)."""
    module = get(name)
    if preset_name is None:
        preset_name = next(iter(module.PRESETS))
    if preset_name not in module.PRESETS:
        raise ValueError(f"unknown preset {preset_name!r} for {name}: expected one of {', '.join(module.PRESETS)}")
    return preset_name, module.PRESETS[preset_name].config


def lane(name: str, config: Config) -> str:
    """'quick' or 'long' (queued one at a time)."""
    module = get(name)
    return module.lane(config) if hasattr(module, "lane") else "quick"


def preflight(name: str, config: Config) -> str | None:
    """What would stop `config` of experiment `name` from running on this machine, as one line (None when
    nothing would): a CUDA device asked for where there is none, or the experiment's own check (e.g. a data set
    that is not on disk). Cheap: pages call it before offering Run, the CLI before submitting."""
    if getattr(config, "device", None) == "cuda" and not _cuda_available():
        return "device='cuda' but no CUDA device is available here: use device=auto or cpu"
    check = getattr(get(name), "preflight", None)
    return check(config) if check is not None else None


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def claims_for(experiment: str, preset: str | None, config: dict) -> Callable[[list[dict]], list[Check]] | None:
    """The checks of a preset's figure, as a function of one seed's runs (None when the preset has none): each
    experiment module lists its own in `CLAIMS` (preset -> f(runs, config))."""
    check = getattr(get(experiment), "CLAIMS", {}).get(preset)
    return None if check is None else (lambda runs: check(runs, config))
