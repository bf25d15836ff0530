"""`python -m engine` with the test experiment `sleepy` (tests/sleepy_experiment.py) registered, for tests that
run the CLI in a subprocess and signal it: `python tests/sweep_cli.py sweep sleepy --preset default ...`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import registry  # noqa: E402
from engine.__main__ import main  # noqa: E402
from engine.sweeps import grid  # noqa: E402

registry.MODULES["sleepy"] = "tests.sleepy_experiment"
grid.METRICS["sleepy"] = ("train_loss",)

if __name__ == "__main__":
    sys.exit(main())
