"""The reproduction as data (benchmarks/results/reproduction.json) and as the README's table.

Schema (version 1): {"schema", "created", "command", "seeds", "engine_version", "machine", "libraries",
"where" (local processes or a Dask scheduler), "wall_s", "points" ({computed, cached, failed}),
"figures": [{key, figure, section, experiment, preset, kind, seed_field, seeds, points, note, sweep_map,
gpu_hours, ...}], "claims": [{figure_key, figure, section, claim, whole, seeds, holds, rate, interval, holds_on,
fails_on, not_run, obtained, value, threshold}]}. A figure's kind is "checked" (claims evaluated on every seed),
"ran" (run over seeds, no claim registered), "shown" (no quantitative claim: not run) or "skipped" (a ResNet on a
machine without a GPU: its GPU-hours are given). A claim's rate is holds / seeds over the seeds where it was
evaluated; seeds that did not run (a failed point) are named in not_run, not counted.
"""

from __future__ import annotations

import json
import os
import platform
import time
from importlib import metadata
from pathlib import Path

from engine.core.version import engine_version
from engine.reproduce.figures import Figure
from engine.reproduce.stats import spread, wilson

SCHEMA = 1
DEFAULT_PATH = Path(__file__).resolve().parent.parent.parent / "benchmarks" / "results" / "reproduction.json"
WHOLE = "all of this figure's claims at once"
LIBRARIES = ("numpy", "numba", "torch", "scipy", "joblib", "dask", "distributed", "diskcache")
README_START, README_END = "<!-- reproduction table: start -->", "<!-- reproduction table: end -->"


def default_path() -> Path:
    """`$SPARSE_SGD_REPRODUCTION` if set, else benchmarks/results/reproduction.json."""
    return Path(os.environ.get("SPARSE_SGD_REPRODUCTION") or DEFAULT_PATH)


def claim_rows(figure: Figure, points: list[dict]) -> list[dict]:
    """One row per claim of the figure (in the criteria's order), then the whole figure, over its seeds."""
    order: list[str] = []
    for p in points:
        for c in p["checks"]:
            if c["claim"] not in order:
                order.append(c["claim"])
    rows = []
    for claim in [*order, WHOLE] if order else []:
        seen = []  # (seed, ok, obtained, value, threshold)
        for p in points:
            if claim == WHOLE:
                if p["holds"] is not None:
                    seen.append((p["seed"], p["holds"], None, None, None))
                continue
            c = next((c for c in p["checks"] if c["claim"] == claim), None)
            if c is not None:
                seen.append((p["seed"], c["ok"], c["obtained"], c["value"], c["threshold"]))
        holds = sum(ok for _, ok, *_ in seen)
        lo, hi = wilson(holds, len(seen))
        thresholds = [t for *_, t in seen if t is not None]
        rows.append(dict(figure_key=figure.key, figure=figure.label, section=figure.section, claim=claim,
                         whole=claim == WHOLE, seeds=len(seen), holds=holds,
                         rate=holds / len(seen) if seen else None, interval=[lo, hi],
                         holds_on=[s for s, ok, *_ in seen if ok], fails_on=[s for s, ok, *_ in seen if not ok],
                         not_run=[p["seed"] for p in points if p["status"] != "done"],
                         obtained={str(s): text for s, _, text, *_ in seen if text is not None},
                         value=spread([v for *_, v, _ in seen]), threshold=thresholds[0] if thresholds else None))
    return rows


def figure_entry(figure: Figure, kind: str, out: dict | None = None, gpu_hours: float | None = None) -> dict:
    """A figure's entry of the JSON (its seed records when it ran)."""
    entry = dict(key=figure.key, figure=figure.label, section=figure.section, experiment=figure.experiment,
                 preset=figure.preset, kind=kind, seed_field=figure.seed_field, note=figure.note,
                 sweep_map=figure.sweep_map or None, gpu_hours=gpu_hours, seeds=[], points=[])
    if out is not None:
        entry.update(seeds=[p["seed"] for p in out["points"]], points=out["points"], computed=out["computed"],
                     cached=out["cached"], failed=out["failed"], notes=out["notes"], wall_s=out["wall_s"])
    return entry


def machine() -> dict:
    """Where the reproduction ran, and how busy the machine was when it finished (1/5/15-minute load averages:
    other work on the same cores slows the reproduction down)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return dict(host=platform.node(), platform=platform.platform(), processor=platform.machine(), cpus=cpus,
                python=platform.python_version(), blas_coretype=os.environ.get("OPENBLAS_CORETYPE"),
                load_average=[round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None)


def libraries() -> dict:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def build(figures: list[dict], rows: list[dict], seeds: int, command: str, where: str, wall: float) -> dict:
    """The whole report."""
    totals = {k: sum(f.get(k, 0) for f in figures) for k in ("computed", "cached", "failed")}
    return dict(schema=SCHEMA, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), command=command,
                seeds=seeds, engine_version=engine_version(), machine=machine(), libraries=libraries(), where=where,
                wall_s=round(wall, 2), points=totals, figures=figures, claims=rows)


def write(report: dict, path: str | Path) -> Path:
    """Write the report as JSON (through a temporary file: a crash leaves the old file whole)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
    tmp.replace(path)
    return path


def read(path: str | Path) -> dict:
    """A stored report; ValueError naming the problem when it is missing or not a report."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no reproduction stored yet (python -m engine reproduce writes it)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable reproduction ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("claims"), list):
        raise ValueError(f"{path}: not a reproduction report of schema {SCHEMA}")
    return data


# ----------------------------------------------------------------------------- the README's table
def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.0f}%"


def markdown(report: dict) -> str:
    """The README table: one row per claim (the whole figure in bold), then the figures shown or skipped."""
    lines = ["| Figure | Claim | Holds | Rate [95% interval] | Fails on seeds |", "|---|---|---|---|---|"]
    for r in report["claims"]:
        lo, hi = r["interval"]
        claim = f"**{r['claim']}**" if r["whole"] else r["claim"].replace("|", "\\|")
        fails = ", ".join(map(str, r["fails_on"])) or "none"
        if r["not_run"]:
            fails += "; did not run: " + ", ".join(map(str, r["not_run"]))
        lines.append(f"| {r['figure']} | {claim} | {r['holds']}/{r['seeds']} | {percent(r['rate'])} "
                     f"[{percent(lo)}, {percent(hi)}] | {fails} |")
    checked = {r["figure_key"] for r in report["claims"]}
    for f in report["figures"]:
        if f["kind"] == "checked" and f["key"] not in checked:
            lines.append(f"| {f['figure']} | no seed ran: " + "; ".join(
                f"{p['seed']}: {p['message'] or p['status']}" for p in f["points"]) + " | - | - | - |")
        elif f["kind"] == "shown":
            lines.append(f"| {f['figure']} | shown, no quantitative claim: {f['note']} | - | - | - |")
        elif f["kind"] == "ran":
            done = sum(p["status"] == "done" for p in f["points"])
            lines.append(f"| {f['figure']} | ran on {done} of {len(f['points'])} seeds, no claim checked: "
                         f"{f['note']} | - | - | - |")
        elif f["kind"] == "skipped":
            lines.append(f"| {f['figure']} | not run here (needs a GPU: about {f['gpu_hours']:.0f} GPU-hours at "
                         f"{report['seeds']} seeds): {f['note']} | - | - | - |")
    return "\n".join(lines)


def readme_block(report: dict) -> str:
    """The table with the command and the time it took, between the README's markers."""
    m = report["machine"]
    return (f"{README_START}\n{markdown(report)}\n\n"
            f"`{report['command']}`: {report['seeds']} seeds per figure, {report['points']['computed']} points "
            f"computed and {report['points']['cached']} from the cache in {report['wall_s']:.0f} s on {m['cpus']} "
            f"CPU cores ({report['where']}; load average {_load(m)} at the end), engine {report['engine_version']}, "
            f"{report['created']}.\n{README_END}")


def _load(machine: dict) -> str:
    load = machine.get("load_average")
    return "unknown" if not load else f"{load[0]:.1f}"


def update_readme(report: dict, path: str | Path) -> None:
    """Replace the table between the README's markers (ValueError when the markers are missing)."""
    path = Path(path)
    text = path.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"{path}: no '{README_START}' ... '{README_END}' markers to put the table between")
    path.write_text(text[:start] + readme_block(report) + text[end + len(README_END):])
