"""The reproduction as a background job (the Reproduction page's button): every figure's seeds, the cached ones at
once and the missing ones computed, with progress; at the end the report is written where the page reads it."""

from __future__ import annotations

from dataclasses import dataclass

from engine.core.config import Config, Preset, param
from engine.reproduce import report
from engine.reproduce.reproduction import MAX_SEEDS, plan, reproduce

TITLE = "Reproduction: every claim of the paper as a rate over seeds"
USES_STORE = True  # the job manager hands run() its result store: every seed is cached under its own key


@dataclass(frozen=True)
class ReproduceConfig(Config):
    seeds: int = param(10, 1, MAX_SEEDS, step=1, help="seeds per figure, the preset's own first")
    only: str = param("", help="figures, comma separated ('' = all)")
    resnet: str = param("skip", choices=("skip", "cpu-demo", "gpu"), help="the ResNet rows: skip (GPU-hours "
                        "only), cpu-demo or gpu")
    scheduler: str = param("", help="address of a Dask scheduler (tcp://HOST:8786); '' = local processes")
    workers: int = param(0, 0, 256, step=1, help="local worker processes (0 = one per core)")
    json_path: str = param("", help="where the report is written ('' = benchmarks/results/reproduction.json)")

    def keys(self) -> list[str] | None:
        return [k.strip() for k in self.only.split(",") if k.strip()] or None

    def check(self) -> None:
        plan(self.keys(), self.seeds, self.resnet)  # raises ValueError naming the problem


Config = ReproduceConfig
PRESETS = {"all": Preset(ReproduceConfig(), "every small-model figure over 10 seeds")}


def run(c: ReproduceConfig, rec, workdir=None, store=None) -> None:
    """Run what is missing; extras: 'report' (the report, once written). Progress counts finished seeds."""
    if store is None:
        from engine.store import Store

        store = Store()

    def progress(done: int, total: int, key: str) -> None:
        if not rec.stop_requested:  # (a stop is raised below, once the workers are stopped)
            rec.progress(done / total, f"{done} of {total} seeds ({key})")

    command = f"python -m engine reproduce --seeds {c.seeds}" + (f" --only {c.only}" if c.only else "")
    result = reproduce(plan(c.keys(), c.seeds, c.resnet), c.seeds, store, command, scheduler=c.scheduler or None,
                       workers=c.workers or None, on_progress=progress, should_stop=lambda: rec.stop_requested)
    rec.progress(1.0)  # raises Cancelled after a stop: the finished seeds stay cached
    report.write(result, c.json_path or report.default_path())
    rec.snapshot(None, "report", result)
