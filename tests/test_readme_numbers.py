"""README's measured numbers are the ones the benchmark commands wrote under benchmarks/results/ (issue 16, section
3), at README's rounding; README's commands write only files that git ignores."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
RESULTS = ROOT / "benchmarks" / "results"


def results(name: str) -> dict:
    record = json.loads((RESULTS / f"{name}.json").read_text())
    assert {"command", "date", "machine"} <= set(record) and record["machine"]["cpu"], name
    return record["results"]


def speed_section() -> str:
    start = README.index("## Speed")
    return " ".join(README[start:README.index("\n## ", start)].split())


def test_the_fig2_timing_and_ratio_are_the_benchmark_file():
    fig2 = results("diagonal_fig2")
    m = re.search(r"Fig\. 2 end to end \(.*?\) in ([\d.]+) s as a whole CLI process, (\d+)x a straightforward numpy "
                  r"version", speed_section())
    assert m, "README's Speed section no longer states Fig. 2's time and ratio in the tested form"
    assert float(m.group(1)) == round(fig2["engine_best_s"], 1)
    assert int(m.group(2)) == round(fig2["ratio_1_thread"])


def test_the_relu_figures_timings_and_ratios_are_the_benchmark_file():
    relu = results("relu_figs")
    m = re.search(r"Fig\. 4 / 5 / 6 of the ReLU nets in ([\d.]+) / ([\d.]+) / ([\d.]+) s, (\d+) / (\d+) / (\d+)x "
                  r"their straightforward torch versions", speed_section())
    assert m, "README's Speed section no longer states Fig. 4/5/6's times and ratios in the tested form"
    figs = ("fig4", "fig5", "fig6")
    assert [float(x) for x in m.groups()[:3]] == [round(relu[f]["engine_best_s"], 1) for f in figs]
    assert [int(x) for x in m.groups()[3:]] == [round(relu[f]["ratio"]) for f in figs]


@pytest.mark.parametrize("name", ["map.json", "fig4.json", "resnet.json", "out.json"])
def test_files_written_by_readme_commands_are_ignored_by_git(name):
    assert name in README
    ignored = subprocess.run(["git", "check-ignore", "-q", name], cwd=ROOT)
    assert ignored.returncode == 0, f"{name} (written by a README command) is not in .gitignore"
