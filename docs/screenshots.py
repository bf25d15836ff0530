"""Regenerate the README's pictures: start the app, run each page's preset in headless Chromium, save PNGs.

    python docs/screenshots.py            # all pages
    python docs/screenshots.py diagonal   # one page
"""

import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.app_server import CHROMIUM_ARGS, serve  # noqa: E402

# page url path -> (query string, the button that starts it (None: the page trains on open), text when done)
SHOTS = {
    "toy_1d": ("", None, "SGD is GD with label noise"),
    "diagonal": ("", "Run", "Expected (paper) vs obtained"),
    "relu_1d": ("", "Run", "Expected (paper) vs obtained"),
    "teacher_student": ("", "Run", "Expected (paper) vs obtained"),
    "resnet": ("", "Run", "Done"),
    "sweeps": ("", "Run sweep", "Done"),
}


def main(names: list[str]) -> None:
    with serve(timeout=120) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for name in names:
            query, button, done = SHOTS[name]
            page = browser.new_page(viewport={"width": 1400, "height": 1500})
            page.goto(f"{url}/{name}{query}")
            page.wait_for_selector("[data-testid='stApp']")
            if button:
                page.get_by_role("button", name=button, exact=True).click()
            page.get_by_text(done, exact=False).first.wait_for(timeout=1_800_000)
            time.sleep(2)
            page.screenshot(path=str(ROOT / "docs" / f"{name}.png"), full_page=False)
            print("wrote", ROOT / "docs" / f"{name}.png")
            page.close()
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1:] or [n for n in SHOTS if (ROOT / "pages" / f"{n}.py").exists()])
