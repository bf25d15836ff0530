"""One reproduction: which figures run, how (seeds, where, the ResNets' mode), and the report they make."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from engine import registry
from engine.reproduce import report
from engine.reproduce.figures import CPU_DEMO, Figure, by_key, gpu_hours
from engine.reproduce.runner import Progress, run_figures
from engine.sweeps.execute import default_workers

RESNET_MODES = ("auto", "skip", "cpu-demo", "gpu")
MAX_SEEDS = 100


def resnet_mode(mode: str) -> str:
    """'gpu' or 'skip' for 'auto' (whether CUDA is here), else the mode asked for."""
    if mode not in RESNET_MODES:
        raise ValueError(f"--resnet {mode!r}: expected one of {', '.join(RESNET_MODES)}")
    if mode != "auto":
        return mode
    if not os.path.exists("/proc/driver/nvidia/version"):  # no NVIDIA driver: no need to load torch to ask
        return "skip"
    try:
        import torch
    except ImportError:
        return "skip"
    return "gpu" if torch.cuda.is_available() else "skip"


def plan(keys: list[str] | None, seeds: int, mode: str) -> dict[str, list[Figure]]:
    """The figures by what happens to them: 'run' (over seeds), 'shown' (no quantitative claim, not run),
    'skipped' (ResNets without a GPU). ValueError for bad arguments or a ResNet preset that cannot run here."""
    if not 1 <= seeds <= MAX_SEEDS:
        raise ValueError(f"--seeds {seeds}: expected 1 to {MAX_SEEDS}")
    mode = resnet_mode(mode)
    out: dict[str, list[Figure]] = dict(run=[], shown=[], skipped=[])
    for f in by_key(keys):
        if f.family == "resnet" and f is not CPU_DEMO and mode != "gpu":
            out["skipped"].append(f)
        elif f.note and f.family != "resnet":
            out["shown"].append(f)
        else:
            out["run"].append(f)
    if mode == "cpu-demo" and CPU_DEMO not in out["run"]:
        out["run"].append(CPU_DEMO)
    for f in out["run"]:
        if f.family == "resnet":
            problem = registry.preflight(f.experiment, registry.preset(f.experiment, f.preset)[1])
            if problem:
                raise ValueError(f"{f.key}: {problem}")
    return out


def reproduce(figures: dict[str, list[Figure]], seeds: int, store, command: str, scheduler: str | None = None,
              workers: int | None = None, use_cache: bool = True, on_progress: Progress | None = None,
              should_stop: Callable[[], bool] = lambda: False) -> dict:
    """Run the planned figures over `seeds` seeds, check their claims, and return the report (engine.reproduce.report
    describes it)."""
    start = time.perf_counter()
    ran = run_figures(figures["run"], seeds, store, scheduler=scheduler, workers=workers, use_cache=use_cache,
                      on_progress=on_progress, should_stop=should_stop)
    entries, rows = [], []
    order = [f.key for f in by_key(None)] + [CPU_DEMO.key]
    everything = sorted((f for group in figures.values() for f in group), key=lambda f: order.index(f.key))
    for f in everything:
        if f.key in ran:
            kind = "checked" if f.checked else "ran"
            entries.append(report.figure_entry(f, kind, ran[f.key]))
            rows += report.claim_rows(f, ran[f.key]["points"])
        elif f in figures["skipped"]:
            entries.append(report.figure_entry(f, "skipped", gpu_hours=round(gpu_hours(f, seeds), 1)))
        else:
            entries.append(report.figure_entry(f, "shown"))
    where = f"Dask scheduler {scheduler}" if scheduler else f"{workers or default_workers()} local worker processes"
    return report.build(entries, rows, seeds, command, where, time.perf_counter() - start)
