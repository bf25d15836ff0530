"""Command line: `python -m engine list` and `python -m engine run EXPERIMENT --preset NAME ...`.

Runs go through the same job manager and disk cache as the app; `--json OUT` writes
{"experiment", "preset", "runs": [{"name", "status", "config", "final", "history"}]}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def _parse_sets(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected field=value")
        name, value = item.split("=", 1)
        out[name.strip()] = value.strip()
    return out


def cmd_list() -> int:
    from engine import experiments

    for name in experiments.names():
        module = experiments.get(name)
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


def cmd_run(args: argparse.Namespace) -> int:
    from engine import experiments
    from engine.config import with_settings
    from engine.jobs import JobManager
    from engine.recording import export
    from engine.store import Store

    preset_name, config = experiments.preset(args.experiment, args.preset)
    config = with_settings(config, _parse_sets(args.set))
    if args.device != "auto":
        if "device" not in config.to_dict():
            print(f"note: {args.experiment} runs on the CPU (numpy); --device is ignored", file=sys.stderr)
        else:
            config = config.replace(device=args.device)
    manager = JobManager(Store(args.cache_dir) if args.cache_dir else None)
    job = manager.submit(args.experiment, config, preset=preset_name, use_cache=not args.no_cache,
                         restart=args.no_cache)
    from tqdm import tqdm

    bar = tqdm(total=1000, desc=f"{args.experiment}/{preset_name}", file=sys.stderr, disable=args.quiet,
               bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}")
    try:
        while not job.finished:
            view = job.view()
            bar.n = int(view["progress"] * 1000)
            bar.set_postfix_str(view["message"][:40], refresh=False)
            bar.refresh()
            time.sleep(0.05)
    except KeyboardInterrupt:
        job.cancel()
        job.wait(10)
    bar.n = int(job.view()["progress"] * 1000)
    bar.close()
    view = job.view()
    if not args.quiet:
        print(summary_table(view))
        source = "from the cache" if job.from_cache else f"in {view['elapsed']:.2f} s"
        print(f"status: {view['status']} ({source}){' - ' + view['message'] if view['message'] else ''}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(export(view), fh)
    return 0 if view["status"] == "done" else 1


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
    args = parser.parse_args(argv)
    try:
        return cmd_list() if args.command == "list" else cmd_run(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
