"""Command line: `python -m engine list`, `python -m engine run EXPERIMENT --preset NAME ...` and
`python -m engine sweep EXPERIMENT --preset NAME [--axis FIELD=LO:HI:N|V1,V2,...]...`.

Runs and sweeps go through the same job manager and disk cache as the app; `run --json OUT` writes
{"experiment", "preset", "runs": [{"name", "status", "config", "final", "history"}]}, `sweep --json OUT` writes
{"experiment", "preset", "axes": [{"field", "values"}], "seeds", "cells": [...]}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


def _parse_sets(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected field=value")
        name, value = item.split("=", 1)
        out[name.strip()] = value.strip()
    return out


def cmd_list() -> int:
    from engine import registry

    for name in registry.names():
        module = registry.get(name)
        print(f"{name}: {module.TITLE}")
        for preset_name, p in module.PRESETS.items():
            print(f"  --preset {preset_name:<14} {p.description}")
    return 0


def summary_table(view: dict) -> str:
    """Runs x final metrics as an aligned text table."""
    metrics = []
    for r in view["runs"]:
        for k in r["final"]:
            if k not in metrics and k != "lr":
                metrics.append(k)
    rows = [["run", "status", *metrics]]
    for r in view["runs"]:
        cells = []
        for m in metrics:
            v = r["final"].get(m)
            cells.append("-" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v)))
        rows.append([r["name"], r["status"], *cells])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows)


def _check_json_target(path: str) -> None:
    """ValueError unless a file can be written at `path` (checked by opening it; a file it created is removed)."""
    import os

    if os.path.isdir(path):
        raise ValueError(f"--json {path}: is a folder, not a file")
    existed = os.path.exists(path)
    try:
        with open(path, "a"):
            pass
    except OSError as exc:
        raise ValueError(f"--json {path}: cannot be written ({exc.strerror or exc})") from None
    if not existed:
        os.unlink(path)


def _check_cache_dir(path: str) -> None:
    """ValueError unless `path` is (or can be made) a folder the cache can write into."""
    import os
    import tempfile

    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"--cache-dir {path}: is a file, not a folder")
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ValueError(f"--cache-dir {path}: cannot be written ({exc.strerror or exc})") from None


def cmd_run(args: argparse.Namespace) -> int:
    from engine import registry
    from engine.core.config import with_settings
    from engine.core.recording import export
    from engine.jobs import JobManager
    from engine.store import Store

    # everything that can be checked is checked before any work: exit 2 and one line
    preset_name, config = registry.preset(args.experiment, args.preset)
    config = with_settings(config, _parse_sets(args.set))
    if args.device != "auto":
        if "device" not in config.to_dict():
            print(f"note: {args.experiment} runs on the CPU (numpy); --device is ignored", file=sys.stderr)
        else:
            config = config.replace(device=args.device)
    if args.json:
        _check_json_target(args.json)
    if args.cache_dir:
        _check_cache_dir(args.cache_dir)
    manager = JobManager(Store(args.cache_dir) if args.cache_dir else None)
    if args.no_cache or manager.find(args.experiment, config) is None:  # a stored result needs nothing here
        problem = registry.preflight(args.experiment, config)
        if problem:
            raise ValueError(problem)
    job = manager.submit(args.experiment, config, preset=preset_name, use_cache=not args.no_cache,
                         restart=args.no_cache)
    with _log_to_file(manager.store) as log_file:  # a failed job's traceback: to a file, not the terminal
        view = follow(job, f"{args.experiment}/{preset_name}", args.quiet)
    if not args.quiet:
        print(summary_table(view))
        source = "from the cache" if job.from_cache else f"in {view['elapsed']:.2f} s"
        print(f"status: {view['status']} ({source}){' - ' + view['message'] if view['message'] else ''}")
    if view["status"] == "failed" and log_file:
        print(f"details of what failed: {log_file}", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(export(view), fh)
    return 0 if view["status"] == "done" else 1


def follow(job, desc: str, quiet: bool) -> dict:
    """Show a progress bar until the job ends (Ctrl-C cancels it); returns its final view."""
    from tqdm import tqdm

    bar = tqdm(total=1000, desc=desc, file=sys.stderr, disable=quiet,
               bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}")
    try:
        while not job.finished:
            view = job.view()
            bar.n = int(view["progress"] * 1000)
            bar.set_postfix_str(view["message"][:48], refresh=False)
            bar.refresh()
            time.sleep(0.05)
    except KeyboardInterrupt as exc:
        interrupt = getattr(exc, "exit_code", 130)
        job.cancel()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if job.wait(0.1):
                    break
            except KeyboardInterrupt:  # pressed again: the stop is under way already
                pass
    else:
        interrupt = 0
    bar.n = int(job.view()["progress"] * 1000)
    bar.close()
    return dict(job.view(), interrupt=interrupt)


def cells_table(export: dict) -> str:
    """One line per grid point: the axis values, status, seeds diverged (and stuck), each metric's median
    [p10, p90] over the surviving seeds."""
    fields = [a["field"] for a in export["axes"]]
    stuck = export.get("stuck_above") is not None
    rows = [[*fields, "status", "diverged", *(["stuck"] if stuck else []), *export["metrics"]]]
    for cell in export["cells"]:
        if cell is None:
            continue
        line = [f"{cell['point'][f]:g}" for f in fields] + [cell["status"], f"{cell['diverged']}/{cell['runs']}"]
        if stuck:
            line.append(f"{cell.get('stuck', 0)}/{cell['runs']}")
        for m in export["metrics"]:
            s = cell["metrics"].get(m, {})
            line.append("-" if s.get("median") is None else f"{s['median']:.4g} [{s['p10']:.3g}, {s['p90']:.3g}]")
        rows.append(line)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows)


class Interrupted(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (the exit status says which: 128 + the signal's number)."""

    exit_code = 128 + 15


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While the body runs (in the main thread), SIGTERM raises `Interrupted` like Ctrl-C's KeyboardInterrupt."""
    import signal

    def handler(signum, frame):
        raise Interrupted()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _log_to_file(store) -> Iterator[str]:
    """While the body runs, the engine's log (a failed job's traceback, a failed point) goes to `engine.log` beside
    the cache instead of the terminal; yields its path ('' when it cannot be written: the log stays as it was)."""
    import logging
    import os
    import tempfile

    folder = store.dir if os.access(store.dir, os.W_OK) else tempfile.gettempdir()
    path = os.path.join(folder, "engine.log")
    try:
        handler: logging.Handler = logging.FileHandler(path)
    except OSError:
        yield ""
        return
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    engine_log = logging.getLogger("engine")
    engine_log.addHandler(handler)
    propagate, engine_log.propagate = engine_log.propagate, False
    try:
        yield path
    finally:
        engine_log.removeHandler(handler)
        engine_log.propagate = propagate
        handler.close()


def _write_json(path: str, data: dict) -> None:
    """Write `data` to `path` through a temporary file beside it, so a failed write (a full disk) leaves any old
    file whole; OSError otherwise."""
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=".sweep-", suffix=".json.tmp", dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def sweep_options(args: argparse.Namespace) -> dict:
    """The sweep's own command-line values, checked (ValueError in one line)."""
    import math

    seeds, run = _whole_number("--seeds", args.seeds), _whole_number("--run", args.run)
    if seeds is not None and seeds < 1:
        raise ValueError(f"--seeds {seeds}: expected 1 or more")
    if args.stuck_above is not None and not math.isfinite(args.stuck_above):
        raise ValueError(f"--stuck-above {args.stuck_above}: expected a finite train loss")
    if args.worker_wait < 0 or not math.isfinite(args.worker_wait):
        raise ValueError(f"--worker-wait {args.worker_wait}: expected seconds (0 or more)")
    for text in args.axis:
        if not text.isascii():
            raise ValueError(f"--axis {text!r}: numbers are ASCII digits only")
    metrics = [m.strip() for m in args.metric.split(",") if m.strip()] if args.metric is not None else None
    if metrics is not None and not metrics:
        raise ValueError(f"--metric {args.metric!r}: name at least one metric")
    return dict(axes=args.axis or None, seeds=seeds, metrics=metrics, run=run, stuck_above=args.stuck_above)


def _whole_number(option: str, text: str | None) -> int | None:
    """A whole-number option's value: ASCII digits only, as --set takes them (ValueError in one line)."""
    if text is None:
        return None
    if not (text.isascii() and text.strip().lstrip("+-").isdigit()):
        raise ValueError(f"{option} {text!r}: expected a whole number (ASCII digits)")
    return int(text)


def cmd_sweep(args: argparse.Namespace) -> int:
    """`sweep`: Ctrl-C or SIGTERM stop it (exit 130 / 143), keeping every finished point."""
    with _sigterm_as_interrupt():
        return _checked_sweep(args)


def _checked_sweep(args: argparse.Namespace) -> int:
    import os

    from engine.core.config import with_settings
    from engine.store import Store
    from engine.sweeps import grid as sweeps

    # everything that can be checked is checked before any work: exit 2 and one line
    options = sweep_options(args)
    plan = sweeps.build(args.experiment, args.preset, **options)
    if args.set:
        plan = sweeps.build(args.experiment, args.preset, base=with_settings(plan.base, _parse_sets(args.set)),
                            **options)
    scheduler = args.scheduler if args.scheduler is not None else os.environ.get("SPARSE_SGD_SCHEDULER", "")
    if args.json:
        _check_json_target(args.json)
    if args.cache_dir:
        _check_cache_dir(args.cache_dir)
    if args.workers < 0:
        raise ValueError(f"--workers={args.workers}: expected 0 (one per core) or more")
    store = Store(args.cache_dir) if args.cache_dir else Store()
    if store.warning:  # e.g. a locked or unwritable cache: the sweep runs, uncached
        print(f"warning: {store.warning}", file=sys.stderr)
    with _log_to_file(store) as log_file:
        return _sweep(args, plan, scheduler, store, log_file)


def _sweep(args: argparse.Namespace, plan, scheduler: str, store, log_file: str) -> int:
    """The rest of `cmd_sweep`: run the checked sweep and report what this invocation did."""
    from engine.jobs import JobManager
    from engine.sweeps import cluster
    from engine.sweeps import grid as sweeps
    from engine.sweeps.experiment import job_config

    config = job_config(plan, scheduler, args.workers, not args.no_cache, args.worker_wait)
    manager = JobManager(store)
    if args.no_cache or manager.find("sweep", config) is None:  # a stored sweep needs neither data nor a cluster
        if not scheduler:  # (a cluster's nodes have their own CUDA and data: checked there, point by point)
            problem = sweeps.preflight(plan)
            if problem:
                raise ValueError(problem)
        else:  # ValueError in one line: no scheduler there, a node without this engine, no worker with the data
            cluster.connect(scheduler, experiment=plan.experiment, config=plan.configs()[0].to_dict()).close()
    job = manager.submit("sweep", config, preset=args.preset, use_cache=not args.no_cache)
    view = follow(job, f"sweep {args.experiment}/{args.preset} ({plan.size} points x {plan.seeds} seeds)",
                  args.quiet)
    result = plan.export(view["extras"].get("cells", []))
    stats = view["extras"].get("stats", {})
    if job.from_cache:  # this invocation computed nothing: the whole sweep was stored
        stats = dict(computed=0, cached=plan.size, failed=0, notes=[])
    if not args.quiet:
        print(cells_table(result))
        where = "a stored sweep" if job.from_cache else f"in {view['elapsed']:.1f} s"
        print(f"status: {view['status']} ({where}): {stats.get('computed', 0)} points computed, "
              f"{stats.get('cached', 0)} from the cache, {stats.get('failed', 0)} failed"
              + (f" - {view['message']}" if view["status"] != "done" and view["message"] else ""))
        for note in stats.get("notes", []):
            print(f"note: {note}")
    if view.get("interrupt"):
        stored = stats.get("computed", 0) + stats.get("cached", 0)
        print(f"interrupted: {stored} of {plan.size} points are stored; run the same command again to compute only "
              f"the {plan.size - stored} left", file=sys.stderr)
        return view["interrupt"]
    if store.warning:
        print(f"warning: {store.warning}", file=sys.stderr)
    if view["status"] == "failed" and log_file:
        print(f"details of what failed: {log_file}", file=sys.stderr)
    if args.json:
        try:
            _write_json(args.json, result)
        except OSError as exc:
            print(f"error: --json {args.json}: could not be written ({exc.strerror or exc}); the points are in the "
                  f"cache, so the same command writes it again without computing them", file=sys.stderr)
            return 1
    return 0 if view["status"] == "done" and not stats.get("failed") else 1


def cmd_cache(args: argparse.Namespace) -> int:
    """`cache info` (what is stored where, per experiment, and made by which code and libraries), `cache gc` (drop
    results no lookup can hit, stale work, orphan files; keep work/ under its limit) and `cache clear`
    (everything). A damaged cache is reported, never a crash."""
    from engine.store import WORK_LIMIT, Store

    limit = int(args.work_limit * 2**30) if args.work_limit is not None else WORK_LIMIT
    store = Store(args.cache_dir, work_limit=limit)
    if args.action == "gc":
        removed = store.gc()
        print(f"removed {removed['results']} results of other code or libraries, {removed['work_folders']} work "
              f"folders, {removed['tmp_files']} leftover temporary files")
    elif args.action == "clear":
        store.clear(work=True)
        print(f"cleared {store.dir}: results, work folders and corrupt copies")
    info = store.info()
    if args.action == "info" or not args.quiet:
        print(f"cache folder: {info['path']}\n"
              f"results: {info['entries']} ({info['bytes'] / 1e6:.1f} MB), {info['stale']} made by other code or "
              f"libraries (no lookup hits them; `cache gc` drops them)")
        for name, entry in sorted(info["experiments"].items()):
            print(f"  {name}: {entry['current']} current, {entry['stale']} stale")
            for state in entry["states"]:
                libs = ", ".join(f"{k} {v}" for k, v in sorted(state.get("libraries", {}).items()))
                device = f", device {state['device']}" if "device" in state else ""
                print(f"    made by code {state.get('code', '?')} with {libs}{device}")
        print(f"work folders: {info['work_folders']} ({info['work_bytes'] / 1e6:.1f} MB, limit "
              f"{info['work_limit'] / 2**30:.1f} GB)")
        if info["corrupt_copies"]:
            print(f"damaged databases set aside: {', '.join(info['corrupt_copies'])}")
    if store.warning:
        print(f"warning: {store.warning}", file=sys.stderr)
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Every figure's preset over --seeds seeds, every claim's rate with its interval: the JSON report (and, with
    --readme, the README's table). Exit 1 when a point failed."""
    import logging
    import os

    from tqdm import tqdm

    from engine.reproduce import report
    from engine.reproduce.figures import gpu_hours
    from engine.reproduce.reproduction import plan, reproduce
    from engine.store import Store

    keys = [k.strip() for k in args.only.split(",") if k.strip()] if args.only else None
    figures = plan(keys, args.seeds, args.resnet)
    if args.workers < 0:
        raise ValueError(f"--workers={args.workers}: expected 0 (one per core) or more")
    path = args.json
    if path is None:
        path = str(report.default_path())
        os.makedirs(os.path.dirname(path), exist_ok=True)
    _check_json_target(path)
    if args.readme:
        _check_readme(args.readme)
    if args.cache_dir:
        _check_cache_dir(args.cache_dir)
    scheduler = args.scheduler or os.environ.get("SPARSE_SGD_SCHEDULER", "") or None
    if scheduler and figures["run"]:
        _check_scheduler(scheduler)
    for f in [*figures["skipped"], *(f for f in figures["run"] if f.family == "resnet")]:
        if f.key == "cpu-demo":
            print("cpu-demo: the CPU stand-in for Fig. 7, minutes per seed on two cores; starting", file=sys.stderr)
            continue
        started = "skipped: no GPU here (--resnet cpu-demo runs the CPU demo)" if f in figures["skipped"] else \
            "starting"
        print(f"{f.key}: about {gpu_hours(f, args.seeds):.1f} GPU-hours at {args.seeds} seeds (assumed epoch "
              f"times, not measured); {started}", file=sys.stderr)
    bar = tqdm(total=0, desc="reproduce", unit="point", file=sys.stderr, disable=args.quiet)
    handler = logging.StreamHandler(sys.stderr)
    handler.emit = lambda record: bar.write(handler.format(record), file=sys.stderr)  # lines above the bar
    log = logging.getLogger("engine.reproduce")
    if not args.quiet:
        log.addHandler(handler)
        log.setLevel(logging.INFO)

    def progress(done: int, total: int, key: str) -> None:
        bar.total = total
        bar.set_postfix_str(key, refresh=False)
        bar.update(done - bar.n)

    command = f"python -m engine reproduce --seeds {args.seeds}" + "".join(
        f" --{name} {value}" for name, value in (("only", args.only), ("resnet", args.resnet),
                                                 ("workers", args.workers or None)) if value and value != "auto")
    try:
        result = reproduce(figures, args.seeds, Store(args.cache_dir) if args.cache_dir else Store(),
                           command, scheduler=scheduler, workers=args.workers or None,
                           use_cache=not args.no_cache, on_progress=progress)
    except KeyboardInterrupt:
        print("cancelled: the finished seeds stay cached, a rerun resumes", file=sys.stderr)
        return 1
    finally:
        bar.close()
        log.removeHandler(handler)
    report.write(result, path)
    if args.readme:
        report.update_readme(result, args.readme)
    if not args.quiet:
        print(report.markdown(result))
        print(f"wrote {path} in {result['wall_s']:.1f} s ({result['points']['computed']} points computed, "
              f"{result['points']['cached']} from the cache, {result['points']['failed']} failed)")
    return 0 if not result["points"]["failed"] else 1


def _check_scheduler(address: str) -> None:
    """ValueError unless a Dask scheduler answers at `address`."""
    try:
        from distributed import Client

        with Client(address, timeout="5s"):
            pass
    except Exception as exc:  # distributed raises OSError, TimeoutError or ValueError (a malformed address)
        raise ValueError(f"--scheduler {address}: no Dask scheduler answers there ({exc})") from None


def _check_readme(path: str) -> None:
    """ValueError unless `path` is a README with the reproduction table's markers."""
    from engine.reproduce import report

    try:
        text = open(path).read()
    except OSError as exc:
        raise ValueError(f"--readme {path}: cannot be read ({exc.strerror or exc})") from None
    if report.README_START not in text or report.README_END not in text:
        raise ValueError(f"--readme {path}: no '{report.README_START}' ... '{report.README_END}' markers")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="experiments and their presets")
    run = sub.add_parser("run", help="run an experiment preset")
    run.add_argument("experiment")
    run.add_argument("--preset", default=None, help="preset name (default: the experiment's first)")
    run.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                     help="override a config field; runs.K.FIELD=VALUE for run K")
    run.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    run.add_argument("--json", default=None, metavar="OUT", help="write the result as JSON")
    run.add_argument("--no-cache", action="store_true", help="recompute from scratch, even if the result is cached")
    run.add_argument("--cache-dir", default=None, help="cache folder (default $SPARSE_SGD_CACHE or cache/)")
    run.add_argument("--quiet", action="store_true", help="no progress bar or table")
    sweep = sub.add_parser("sweep", help="run a grid of settings x seeds (a phase diagram)")
    sweep.add_argument("experiment")
    sweep.add_argument("--preset", required=True, help="an experiment preset (then --axis gives the grid) or a "
                       "sweep preset map-... (its axes, seeds and metrics; --axis / --seeds override them)")
    sweep.add_argument("--axis", action="append", default=[], metavar="FIELD=LO:HI:N|V1,V2,...",
                       help="a setting to sweep (a field or runs.K.field), at most two")
    sweep.add_argument("--seeds", default=None, help="seeds per point")
    sweep.add_argument("--metric", default=None, help="metrics of the cells, comma separated")
    sweep.add_argument("--run", default=None, help="the run (index K) whose metrics the cells show "
                       "(default: the run of a runs.K axis, else the last)")
    sweep.add_argument("--stuck-above", type=float, default=None, help="count a seed as stuck when its final "
                       "train loss is above this (Fig. 9)")
    sweep.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="change the base config")
    sweep.add_argument("--scheduler", default=None, help="Dask scheduler address tcp://HOST:8786 (default "
                       "$SPARSE_SGD_SCHEDULER; none: local worker processes)")
    sweep.add_argument("--workers", type=int, default=0, help="local worker processes (default: one per core)")
    sweep.add_argument("--worker-wait", type=float, default=120.0, metavar="SECONDS", help="on a Dask cluster: how "
                       "long to wait for a worker when none is left before stopping (default 120)")
    sweep.add_argument("--json", default=None, metavar="OUT", help="write the cells as JSON")
    sweep.add_argument("--no-cache", action="store_true", help="recompute every point")
    sweep.add_argument("--cache-dir", default=None, help="cache folder (default $SPARSE_SGD_CACHE or cache/)")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar or table")
    cache = sub.add_parser("cache", help="the result cache: info, gc (drop stale entries and work), clear")
    cache.add_argument("action", choices=("info", "gc", "clear"))
    cache.add_argument("--cache-dir", default=None, help="cache folder (default $SPARSE_SGD_CACHE or cache/)")
    cache.add_argument("--work-limit", type=float, default=None, metavar="GB",
                       help="gc: size limit of the work folders (default 4 GB)")
    cache.add_argument("--quiet", action="store_true", help="gc/clear: no summary of what remains")
    reproduce = sub.add_parser("reproduce", help="every claim of the paper as a rate over seeds (a JSON report)")
    reproduce.add_argument("--seeds", type=int, default=10, help="seeds per figure, the preset's own first "
                           "(default 10)")
    reproduce.add_argument("--only", default=None, help="figures, comma separated (e.g. fig2,fig5; default all)")
    reproduce.add_argument("--resnet", default="auto", help="auto (gpu when CUDA is here, else skip) | skip | "
                           "cpu-demo (the CPU stand-in) | gpu (the full presets)")
    reproduce.add_argument("--scheduler", default=None, help="Dask scheduler address tcp://HOST:8786 (default "
                           "$SPARSE_SGD_SCHEDULER; none: local worker processes)")
    reproduce.add_argument("--workers", type=int, default=0, help="local worker processes (default: one per core)")
    reproduce.add_argument("--json", default=None, metavar="OUT", help="where to write the report (default "
                           "benchmarks/results/reproduction.json)")
    reproduce.add_argument("--readme", default=None, metavar="README", help="also write the table into this README "
                           "(between its reproduction-table markers)")
    reproduce.add_argument("--no-cache", action="store_true", help="recompute every seed")
    reproduce.add_argument("--cache-dir", default=None, help="cache folder (default $SPARSE_SGD_CACHE or cache/)")
    reproduce.add_argument("--quiet", action="store_true", help="no progress bar or table")
    args = parser.parse_args(argv)
    commands = {"list": lambda a: cmd_list(), "run": cmd_run, "sweep": cmd_sweep, "cache": cmd_cache,
                "reproduce": cmd_reproduce}
    try:
        return commands[args.command](args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # before any work started
        print("interrupted before any work started", file=sys.stderr)
        return getattr(exc, "exit_code", 130)


if __name__ == "__main__":
    sys.exit(main())
