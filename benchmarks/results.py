"""Benchmark results as JSON under benchmarks/results/, with the machine, the versions and the date, so that every
number README quotes comes from a file a command wrote (tests/test_readme_numbers.py checks README against them)."""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    """The CPU, its core count and the load, the Python and the versions of the libraries that set the speed."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else \
        platform.processor()
    versions = {}
    for name in ("numpy", "numba", "torch", "scipy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return dict(cpu=cpu, cores=os.cpu_count(), platform=platform.platform(), python=platform.python_version(),
                versions=versions, load_average=round(os.getloadavg()[0], 2))


def write(name: str, results: dict) -> Path:
    """Write benchmarks/results/NAME.json: the command line, the date, the machine and `results`."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    record = dict(command=" ".join(["python", *sys.argv]), date=datetime.datetime.now(datetime.UTC)
                  .isoformat(timespec="seconds"), machine=machine(), results=results)
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {path.relative_to(RESULTS.parent.parent)}")
    return path
