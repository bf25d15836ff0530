"""A ResNet run watched in the browser against the same run from the CLI: does the page slow training down?

Measured (2026-12-02, 2-core AMD EPYC, the machine in its ~2x slower state, see README.md here): the cpu-demo
preset with 3 epochs took 63 s from the CLI; in the app, with the ResNet page open in headless Chromium, 292 s
while the page redrew every 0.5 s (the redraw holds the GIL that the training thread needs too), and 61 s
once long-lane jobs redraw every 3 s (ui/jobs.py REFRESH_LONG).

    python benchmarks/watched_run.py --epochs 3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.app_server import CHROMIUM_ARGS, serve  # noqa: E402


def cli_seconds(epochs: int) -> float:
    """Wall seconds of `python -m engine run resnet --preset cpu-demo --set epochs=N --no-cache`."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "engine", "run", "resnet", "--preset", "cpu-demo", "--set",
                    f"epochs={epochs}", "--no-cache", "--quiet", "--cache-dir", tempfile.mkdtemp()], cwd=ROOT,
                   check=True)
    return time.perf_counter() - t


def app_seconds(epochs: int) -> float:
    """Seconds from pressing Run on the ResNet page (kept open in Chromium) to its Done message."""
    with serve() as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.goto(f"{url}/resnet?resnet_epochs={epochs}")
        page.wait_for_selector("[data-testid='stApp']")
        page.get_by_role("button", name="Run", exact=True).click()
        t = time.perf_counter()
        page.get_by_text("Done", exact=False).first.wait_for(timeout=3_600_000)
        browser.close()
        return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()[0]:.2f}")
    print(f"CLI: {cli_seconds(args.epochs):.1f} s")
    print(f"app, page open: {app_seconds(args.epochs):.1f} s")


if __name__ == "__main__":
    main()
