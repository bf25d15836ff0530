"""Sweeps: grids of configs x seeds, each point run by its experiment's own `run()` and cached under its own key.

A sweep is a base config, one or two axes over numeric settings (a field `steps` or a run-table field
`runs.K.lr`) and a number of seeds. Each grid point is an ordinary config of the experiment, with `seeds` set
(the compiled kernels train all seeds of a point at once: one task per point) and the checkpoint density
reduced to what final metrics need. Points run on local joblib worker processes or on an existing Dask
cluster (`engine.sweeps.execute`) and stream back as they finish; a cell summarizes one point's seeds for one run
of the config: the median and 10-90% band of each metric over the seeds that survived, and how many seeds
diverged (or got stuck: final train loss above a threshold).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import typing
from dataclasses import dataclass, field

import numpy as np

from engine import registry
from engine.core import claims
from engine.core.config import Config, check_field
from engine.relu.claims import STUCK_LOSS

MAX_AXES = 2
MAX_POINTS = 1000        # grid points of one sweep
SWEEP_DENSITY = {"checkpoints": 20, "snapshots": 2}  # what final metrics need (and a loss plateau for claims)
METRICS = {  # what a cell can show, per experiment that can be swept
    "bouncing": ("train_loss", "theta", "label_noise_mean", "two_loss_mean", "prop1_error"),
    "diagonal_edge": ("lo", "hi"),
    "diagonal": ("test_loss", "train_loss", "l0_norm", "ntk_rank", "sharpness", "hessian_trace"),
    "relu1d": ("train_loss", "kinks", "feature_sparsity", "ntk_rank", "sharpness", "hessian_trace"),
    "teacher_student": ("test_loss", "train_loss", "alignment", "ntk_rank", "feature_sparsity",
                        "feature_sparsity_l1", "feature_sparsity_l2", "sharpness", "hessian_trace"),
    "resnet": ("test_error", "train_loss", "train_error", "sparsity_block1", "sparsity_block2", "sparsity_block3",
               "sparsity_block4", "avg_test_error", "sharpness"),
}


# ----------------------------------------------------------------------------- axes
@dataclass(frozen=True)
class Axis:
    """A setting and the values it takes: `field` is a config field or `runs.K.field`."""

    field: str
    values: tuple[float, ...]

    def text(self) -> str:
        """FIELD=V1,V2,... (parses back with `parse_axis`)."""
        return f"{self.field}=" + ",".join(_fmt(v) for v in self.values)


def _fmt(value: float) -> str:
    return str(int(value)) if isinstance(value, int) else repr(float(value))


def _field_of(config: Config, name: str) -> tuple[dataclasses.Field, type, str]:
    """(dataclass field, its type, owner prefix) of a field or runs.K.field of config."""
    target, owner = config, ""
    parts = name.split(".")
    if parts[0] == "runs" and len(parts) == 3:
        runs = getattr(config, "runs", None)
        if runs is None:
            raise ValueError(f"axis {name!r}: this experiment has no runs table")
        if not (parts[1].isascii() and parts[1].isdigit()) or int(parts[1]) >= len(runs):
            raise ValueError(f"axis {name!r}: run index {parts[1]} is not one of 0..{len(runs) - 1}")
        target, owner, name = runs[int(parts[1])], f"runs.{parts[1]}.", parts[2]
    elif len(parts) != 1:
        raise ValueError(f"axis {name!r}: expected FIELD or runs.K.FIELD")
    fields = {f.name: f for f in dataclasses.fields(target)}
    if name not in fields:
        raise ValueError(f"axis {owner}{name!r}: unknown field (expected one of {', '.join(sorted(fields))})")
    kind = typing.get_type_hints(type(target))[name]
    if kind not in (int, float) or fields[name].metadata.get("choices"):
        raise ValueError(f"axis {owner}{name}: not a numeric setting, so it cannot be swept")
    return fields[name], kind, owner


def sweepable(config: Config) -> list[str]:
    """The settings a sweep can vary: numeric fields of the config and of each run of its runs table."""
    names = [n for n in config.__dataclass_fields__ if n != "runs"]
    names += [f"runs.{k}.{n}" for k, run in enumerate(getattr(config, "runs", ())) for n in run.__dataclass_fields__]
    out = []
    for name in names:
        try:
            _field_of(config, name)
            out.append(name)
        except ValueError:
            pass
    return out


def parse_axis(config: Config, text: str) -> Axis:
    """`FIELD=LO:HI:N` (N evenly spaced values) or `FIELD=V1,V2,...`, checked against the field's type and
    bounds; ValueError naming the problem otherwise."""
    if "=" not in text:
        raise ValueError(f"--axis {text!r}: expected FIELD=LO:HI:N or FIELD=V1,V2,...")
    name, spec = (s.strip() for s in text.split("=", 1))
    if not text.isascii():  # float('١٠') parses, but it is not what a user typed as a number (as --set)
        raise ValueError(f"--axis {text!r}: fields and numbers are ASCII only")
    f, kind, owner = _field_of(config, name)
    try:
        if ":" in spec:
            lo, hi, count = spec.split(":")
            n = int(count)
            if not 1 <= n <= MAX_POINTS:
                raise ValueError
            raw = np.linspace(float(lo), float(hi), n).tolist()
        else:
            raw = [float(v) for v in spec.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"axis {name}: {spec!r} is not LO:HI:N (N from 1 to {MAX_POINTS}) or a list of numbers") \
            from None
    if not raw or not all(math.isfinite(v) for v in raw):
        raise ValueError(f"axis {name}: {spec!r} gives no finite values")
    values = []
    for v in raw:
        if kind is int:
            if not float(v).is_integer():
                raise ValueError(f"axis {name}: {v:g} is not an integer ({name} takes whole numbers)")
            v = int(v)
        else:
            v = float(f"{v:.12g}")  # 0.21 rather than 0.21000000000000002: one value, one cache key
        check_field(f, v, owner)
        if v not in values:
            values.append(v)
    return Axis(name, tuple(values))


def set_value(config: Config, name: str, value: float) -> Config:
    """config with field `name` (or runs.K.field) set to value (validated)."""
    parts = name.split(".")
    if parts[0] == "runs" and len(parts) == 3:
        runs = list(config.runs)
        k = int(parts[1])
        runs[k] = runs[k].replace(**{parts[2]: value})
        return config.replace(runs=tuple(runs))
    return config.replace(**{name: value})


def get_value(config: Config, name: str):
    parts = name.split(".")
    if parts[0] == "runs" and len(parts) == 3:
        return getattr(config.runs[int(parts[1])], parts[2])
    return getattr(config, name)


# ----------------------------------------------------------------------------- presets
@dataclass(frozen=True)
class Link:
    """A setting that follows an axis: `target` takes mapping[value of `source`], or stays as is."""

    source: str
    target: str
    mapping: tuple[tuple[float, float], ...]

    def apply(self, config: Config) -> Config:
        value = dict(self.mapping).get(get_value(config, self.source))
        return config if value is None else set_value(config, self.target, value)


@dataclass(frozen=True)
class SweepPreset:
    """A phase diagram that shows the paper's message: a base preset (with changes), axes, seeds, metrics."""

    preset: str
    axes: tuple[str, ...]
    seeds: int
    metrics: tuple[str, ...]
    description: str
    changes: dict = field(default_factory=dict)
    links: tuple[Link, ...] = ()
    stuck_above: float | None = None


def _fig2_run() -> dict:
    return dict(name="large step", algorithm="SGD", lr=0.282, decay_at=0.5, decay_factor=1.5, batch_size=1,
                noise_level=0.03)


PRESETS: dict[str, dict[str, SweepPreset]] = {
    "diagonal": {
        "map-fig2": SweepPreset(
            "fig2", ("runs.0.lr=0.2:0.3:11", "runs.0.decay_at=0.1,0.3,0.5,0.7"), 10,
            ("l0_norm", "test_loss", "ntk_rank"),
            "Fig. 2's data, one SGD run per point: large step 0.20-0.30 x decay time (decayed as in Fig. 2: /4.8 at "
            "10%, /3.4 at 30%, /1.5 at 50% and 70%) over sampling seeds 1-10. The sparsifying window sits just "
            "below the edge of stability: ||u*v||_0 and rank fall only for steps near 0.28, where some seeds "
            "diverge, and the longer the large-step phase, the sparser.",
            changes=dict(runs=(_fig2_run(),), first_seed=1),
            links=(Link("runs.0.decay_at", "runs.0.decay_factor", ((0.1, 4.8), (0.3, 3.4), (0.5, 1.5), (0.7, 1.5))),)),
    },
    "relu1d": {
        "map-warmup": SweepPreset(
            "fig4", ("runs.0.warmup_factor=100:400:4", "runs.0.at=0.1,0.3,0.5"), 10,
            ("kinks", "train_loss", "feature_sparsity"),
            "Fig. 4/9's net, one run per point: warmup factor W x large-phase length s over seeds 3-12. Larger and "
            "longer warmups leave fewer kinks (median 36 at W 100, s 10% down to 6 at W 400, s 50%), until the "
            "run over-regularizes: the share of seeds stuck above train loss 0.1 (Fig. 9) rises to 9 of 10 at "
            "the top right.",
            changes=dict(runs=(dict(name="warmup", lr=2e-4, warmup_factor=200.0, warmup_exponent=1.0, at=0.5,
                                    decay=3.0, batch_size=1),)),
            stuck_above=STUCK_LOSS),
    },
    "teacher_student": {
        "map-fig5": SweepPreset(
            "fig5", ("runs.0.lr=0.25:0.5:6", "runs.0.at=0.1,0.3,0.5"), 10, ("test_loss", "alignment"),
            "Fig. 5's setting, one run per point: step size x large-phase length (decayed as in Fig. 5: /2 at 10%, "
            "/4 at 30%, /5 at 50%) over seeds 0-9. The share of inits that diverge rises from 0 of 10 at 0.25 to "
            "7 of 10 at 0.45 and 8 of 10 at 0.5: the paper's 0.455 sits where most inits blow up.",
            changes=dict(runs=(dict(name="large", lr=0.455, warmup_factor=1.0, warmup_exponent=1.0, at=0.3, decay=4.0,
                                    batch_size=1),)),
            links=(Link("runs.0.at", "runs.0.decay", ((0.1, 2.0), (0.3, 4.0), (0.5, 5.0))),)),
    },
    "resnet": {
        "map-cpu-demo": SweepPreset(
            "cpu-demo", ("runs.0.lr=0.25,0.5,0.75", "runs.0.at=0.1,0.3,0.5"), 1, ("test_error", "sparsity_block4"),
            "The CPU demo, one exp-warmup run per point: step size x warmup length (about 3 minutes a point on two "
            "cores; a Dask cluster runs them side by side).",
            changes=dict(runs=(dict(name="large", schedule="exp-warmup", lr=0.75, at=0.3, base=1.05, seed=0),))),
        "map-fig7": SweepPreset(
            "fig7-plain", ("runs.0.lr=0.25,0.5,0.75,1.0", "runs.0.at=0.1,0.3,0.5"), 1,
            ("test_error", "sparsity_block4"),
            "Fig. 7 (plain, CIFAR-10), one exp-warmup run per point: step size x warmup length; for a cluster of GPU "
            "workers (resource GPU=1).",
            changes=dict(runs=(dict(name="large", schedule="exp-warmup", lr=0.75, at=0.3, base=1.05, seed=0),))),
    },
}


def presets(experiment: str) -> dict[str, SweepPreset]:
    """The sweep presets (map-...) of an experiment."""
    return PRESETS.get(experiment, {})


# ----------------------------------------------------------------------------- the sweep
@dataclass(frozen=True)
class Sweep:
    """A base config, its axes and seeds: the grid of point configs, and how a cell summarizes a point."""

    experiment: str
    preset: str
    base: Config
    axes: tuple[Axis, ...]
    seeds: int = 1
    metrics: tuple[str, ...] = ()
    run: int = 0                       # the run of the config whose metrics a cell shows
    stuck_above: float | None = None   # final train loss above this counts as stuck
    links: tuple[Link, ...] = ()

    def __post_init__(self) -> None:
        if self.experiment == "sweep":
            raise ValueError("a sweep's points are experiments, not sweeps")
        if not 1 <= len(self.axes) <= MAX_AXES:
            raise ValueError(f"a sweep takes 1 or {MAX_AXES} axes, got {len(self.axes)}")
        names = [a.field for a in self.axes]
        if len(set(names)) != len(names):
            raise ValueError(f"the axes must differ, got {' and '.join(names)}")
        if self.size > MAX_POINTS:
            raise ValueError(f"the grid has {self.size} points, above the limit of {MAX_POINTS}: use fewer values")
        known = METRICS.get(self.experiment)
        for m in self.metrics:
            if known is not None and m not in known:
                raise ValueError(f"metric {m!r} is not recorded by {self.experiment}: expected one of "
                                 f"{', '.join(known)}")
        runs = getattr(self.base, "runs", ())
        if runs and not 0 <= self.run < len(runs):
            raise ValueError(f"run={self.run}: the config has runs 0..{len(runs) - 1}")
        if not runs and self.run != 0:
            raise ValueError(f"run={self.run}: {self.experiment} has no runs table, so there is no run to choose")
        if self.seeds < 1:
            raise ValueError(f"seeds={self.seeds}: a sweep needs 1 seed or more")
        if self.stuck_above is not None and not (isinstance(self.stuck_above, (int, float))
                                                 and math.isfinite(self.stuck_above)):
            raise ValueError(f"stuck_above={self.stuck_above!r}: expected a finite train loss")
        if "seeds" not in {f.name for f in dataclasses.fields(self.base)} and self.seeds != 1:
            raise ValueError(f"{self.experiment} has no seeds setting: sweep it with one seed")
        self.configs()  # every point validates now, before any work

    @property
    def size(self) -> int:
        return math.prod(len(a.values) for a in self.axes)

    def points(self) -> list[dict]:
        """Every grid point as {field: value}, the first axis varying slowest."""
        return [dict(zip([a.field for a in self.axes], combo, strict=True))
                for combo in itertools.product(*(a.values for a in self.axes))]

    def config(self, point: dict) -> Config:
        """The ordinary experiment config of one grid point (all its seeds), checkpoints thinned."""
        c = self.base
        names = {f.name: f for f in dataclasses.fields(c)}
        if "seeds" in names:
            c = c.replace(seeds=self.seeds)
        for name, value in SWEEP_DENSITY.items():
            if name in names and name not in point:
                lo = names[name].metadata.get("lo") or value
                c = c.replace(**{name: max(int(lo), min(value, getattr(c, name)))})
        for name, value in point.items():
            c = set_value(c, name, value)
        for link in self.links:
            c = link.apply(c)
        return c

    def configs(self) -> list[Config]:
        out = []
        for point in self.points():
            try:
                out.append(self.config(point))
            except ValueError as exc:
                where = ", ".join(f"{k}={_fmt(v)}" for k, v in point.items())
                raise ValueError(f"at {where}: {exc}") from None
        return out

    def run_name(self) -> str | None:
        runs = getattr(self.base, "runs", ())
        return runs[self.run].name if runs else None

    def cell(self, point: dict, result: dict | None, status: str = "done", message: str = "") -> dict:
        """The summary of one point (the JSON contract's cell): for the sweep's run, over its seeds, the
        median / p10 / p90 of each metric over the seeds that survived, and the diverged (and stuck) counts."""
        cell = dict(point=point, status=status, runs=0, diverged=0, metrics={})
        if message:
            cell["message"] = message
        if result is None:
            return cell
        name = self.run_name()
        runs = [r for r in result["runs"] if name is None or r["label"] == name]
        alive = [r for r in runs if r["status"] == "done"]
        cell.update(runs=len(runs), diverged=sum(r["status"] == "diverged" for r in runs))
        if self.stuck_above is not None:
            cell["stuck"] = sum((r["final"].get("train_loss") or 0) > self.stuck_above for r in alive)
        for m in self.metrics:
            values = np.array([r["final"][m] for r in alive if r["final"].get(m) is not None], dtype=float)
            cell["metrics"][m] = (dict(median=float(np.median(values)), p10=float(np.percentile(values, 10)),
                                       p90=float(np.percentile(values, 90))) if len(values) else
                                  dict(median=None, p10=None, p90=None))
        check = registry.claims_for(self.experiment, self.preset, result["config"])
        if check is not None and len(result["config"].get("runs", [])) > 1:  # a whole figure at each point
            cell["holds"] = sum(claims.holds(check(g)) for g in claims.by_seed(result["runs"]).values())
        return cell

    def export(self, cells: list[dict]) -> dict:
        """The JSON contract: {"experiment", "preset", "axes": [{"field", "values"}], "seeds", "cells"}."""
        return dict(experiment=self.experiment, preset=self.preset,
                    axes=[dict(field=a.field, values=list(a.values)) for a in self.axes], seeds=self.seeds,
                    run=self.run_name(), metrics=list(self.metrics), stuck_above=self.stuck_above, cells=cells)


def build(experiment: str, preset: str, axes: list[str] | None = None, seeds: int | None = None,
          metrics: list[str] | None = None, run: int | None = None, stuck_above: float | None = None,
          base: Config | None = None) -> Sweep:
    """A sweep from an experiment preset (with `axes`) or a sweep preset (map-...) whose axes, seeds and
    metrics the arguments override. `base` replaces the preset's config (e.g. a page's current settings)."""
    if not preset:
        raise ValueError("--preset: a preset name is needed")
    registry.get(experiment)  # an unknown name: its own message
    if experiment not in METRICS:
        raise ValueError(f"{experiment} cannot be swept: expected one of {', '.join(METRICS)}")
    sweep_preset = presets(experiment).get(preset)
    if sweep_preset is not None:
        _, config = registry.preset(experiment, sweep_preset.preset)
        changes = dict(sweep_preset.changes)
        if "runs" in changes and config.run_type is not None:
            changes["runs"] = tuple(config.run_type.from_dict(r) for r in changes["runs"])
        config = config.replace(**changes)
        axes = axes or list(sweep_preset.axes)
        seeds = seeds if seeds is not None else sweep_preset.seeds
        metrics = metrics or list(sweep_preset.metrics)
        stuck_above = stuck_above if stuck_above is not None else sweep_preset.stuck_above
        links = sweep_preset.links
    else:
        try:
            _, config = registry.preset(experiment, preset)
        except ValueError:
            names = [*registry.get(experiment).PRESETS, *presets(experiment)]
            raise ValueError(f"unknown preset {preset!r} for {experiment}: expected one of {', '.join(names)}") \
                from None
        links = ()
        if not axes:
            raise ValueError(f"preset {preset!r} is a single configuration: give one or two --axis FIELD=LO:HI:N")
    config = base or config
    if len(axes) > MAX_AXES:
        raise ValueError(f"a sweep takes at most {MAX_AXES} axes, got {len(axes)}")
    parsed = tuple(parse_axis(config, a) for a in axes)
    if run is None:  # the run named by a run-table axis, else the last run (the longest large-step phase)
        indices = [int(a.field.split(".")[1]) for a in parsed if a.field.startswith("runs.")]
        run = indices[0] if indices else max(len(getattr(config, "runs", ())) - 1, 0)
    metrics = list(metrics or METRICS.get(experiment, ())[:2])
    return Sweep(experiment, preset, config, parsed, 1 if seeds is None else seeds, tuple(metrics), run, stuck_above,
                 links)


def preflight(sweep: Sweep) -> str | None:
    """What would stop the sweep's points from running on this machine (the checks `run` does: CUDA, data on
    disk, data_dir inside the data root), as one line, checked once for the grid: the axes are numeric settings,
    which these checks do not read, so every point shares the first one's answer."""
    problem = registry.preflight(sweep.experiment, sweep.configs()[0])
    return f"{problem} (every point of the sweep needs it)" if problem else None


def to_dict(sweep: Sweep) -> dict:
    """Plain data that `from_dict` turns back into the same sweep (for job configs and worker processes)."""
    return dict(experiment=sweep.experiment, preset=sweep.preset, base=sweep.base.to_dict(),
                axes=[a.text() for a in sweep.axes], seeds=sweep.seeds, metrics=list(sweep.metrics), run=sweep.run,
                stuck_above=sweep.stuck_above, links=[dict(source=k.source, target=k.target,
                                                           mapping=[list(p) for p in k.mapping]) for k in sweep.links])


_SWEEP_FIELDS = dict(experiment=str, preset=str, base=dict, axes=list, seeds=int, metrics=list, run=int,
                     stuck_above=(int, float, type(None)), links=list)


def from_dict(data: object) -> Sweep:
    """Inverse of `to_dict`; ValueError naming the first field that is missing or of the wrong type (the data may
    come from a link or a job's JSON)."""
    if not isinstance(data, dict):
        raise ValueError(f"sweep: expected an object with {', '.join(_SWEEP_FIELDS)}, got {type(data).__name__}")
    unknown = sorted(map(str, set(data) - set(_SWEEP_FIELDS)))
    if unknown:
        raise ValueError(f"sweep: unknown field(s) {', '.join(unknown)}")
    missing = [k for k in ("experiment", "preset", "base", "axes") if k not in data]
    if missing:
        raise ValueError(f"sweep: {', '.join(missing)} missing")
    for name, kind in _SWEEP_FIELDS.items():
        if name in data and (not isinstance(data[name], kind) or isinstance(data[name], bool)):
            raise ValueError(f"sweep.{name}: {type(data[name]).__name__} is of the wrong type")
    if not all(isinstance(v, str) for v in [*data["axes"], *data.get("metrics", ())]):
        raise ValueError("sweep.axes and sweep.metrics: expected lists of text")
    try:
        links = tuple(Link(k["source"], k["target"], tuple((float(a), float(b)) for a, b in k["mapping"]))
                      for k in data.get("links", ()))
    except (TypeError, KeyError, ValueError):
        raise ValueError("sweep.links: expected [{source, target, mapping: [[value, value], ...]}]") from None
    if not all(isinstance(k.source, str) and isinstance(k.target, str) for k in links):
        raise ValueError("sweep.links: source and target are field names")
    module = registry.get(data["experiment"])
    base = module.Config.from_dict(data["base"])
    for link in links:  # both ends are numeric settings of the base (ValueError naming one otherwise)
        _field_of(base, link.source)
        _field_of(base, link.target)
    return Sweep(data["experiment"], data["preset"], base, tuple(parse_axis(base, a) for a in data["axes"]),
                 data.get("seeds", 1), tuple(data.get("metrics", ())), data.get("run", 0), data.get("stuck_above"),
                 links)


def dumps(sweep: Sweep) -> str:
    return json.dumps(to_dict(sweep), sort_keys=True, separators=(",", ":"))
