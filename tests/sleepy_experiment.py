"""A tiny experiment for job-manager tests: logs a checkpoint every `delay` seconds."""

from dataclasses import dataclass

from engine.core.config import Config, Preset, param

TITLE = "test experiment"


@dataclass(frozen=True)
class SleepyConfig(Config):
    steps: int = param(5, 1, 1000)
    delay: float = param(0.01, 0.0, 5.0)
    diverge_at: int = param(-1, -1, 1000, help="step at which the run blows up (-1: never)")
    fail: bool = param(False)
    lane_name: str = param("quick", choices=("quick", "long"))
    tag: int = param(0, 0, 10**6)
    fail_tag: int = param(-1, -1, 10**6, help="raise at once when tag equals this (a failing sweep point)")


Config = SleepyConfig
PRESETS = {"default": Preset(SleepyConfig(), "five quick steps")}
STARTED = []


def lane(c: SleepyConfig) -> str:
    return c.lane_name


def run(c: SleepyConfig, rec, workdir=None) -> None:
    import time

    STARTED.append(c.tag)
    if c.tag == c.fail_tag:
        raise RuntimeError(f"boom at tag {c.tag}")
    i = rec.add_run("only")
    for t in range(c.steps):
        if c.fail and t == 2:
            raise RuntimeError("boom")
        loss = float("inf") if t == c.diverge_at else 1.0 / (t + 1)
        rec.log(i, t, train_loss=loss)
        if loss == float("inf"):
            rec.finish_run(i, "diverged", f"diverged at step {t}")
            return
        rec.progress((t + 1) / c.steps)
        time.sleep(c.delay)


def preflight(c: SleepyConfig) -> str | None:
    """The machine check `run` does: here, fail_tag 1000000 stands for a point whose data is not on this machine."""
    return "its data is not on this machine (fail_tag=1000000)" if c.fail_tag == 10**6 else None
