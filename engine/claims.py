"""The paper's claims, checked on a result: one set of criteria for the fidelity tests, the sweeps' success
rates and the pages' "expected vs obtained" box.

Each check takes the runs of one seed (run dicts of a Result, in config order) and returns a list of
`Check(claim, obtained, ok)`; `by_seed` splits a multi-seed result. Thresholds come from the paper's text
(EXPERIMENTS.md "Expected"), not from a measured run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Check:
    """One claim of the paper, what the result shows, and whether it holds."""

    claim: str
    obtained: str
    ok: bool


def by_seed(runs: list[dict]) -> dict[int | None, list[dict]]:
    """Runs grouped by sampling seed, each group in config order."""
    out: dict[int | None, list[dict]] = {}
    for r in runs:
        out.setdefault(r.get("seed"), []).append(r)
    return out


def _final(run: dict, metric: str) -> float:
    value = run["final"].get(metric)
    return float("nan") if value is None else float(value)


def _survive(runs: list[dict]) -> Check:
    bad = [r["label"] for r in runs if r["status"] != "done"]
    return Check("every run survives (no divergence)", "all done" if not bad else "diverged: " + ", ".join(bad),
                 not bad)


def _plateau(run: dict, decay: int, lo: float = -2.5, hi: float = -0.5) -> float | None:
    """log10 of the median train loss over [0.2 decay, decay): the stabilized level of a large-step phase."""
    step = np.asarray(run["history"]["step"])
    loss = np.asarray([np.nan if v is None else v for v in run["history"].get("train_loss", [])], dtype=float)
    window = (step >= 0.2 * decay) & (step < decay)
    if not window.any() or not np.isfinite(loss[window]).any():
        return None
    return float(np.log10(np.nanmedian(loss[window])))


def diagonal_large_steps(runs: list[dict], steps: int, d: int, ratio: float = 10.0) -> list[Check]:
    """Fig. 2 (O1-O3): the large-step runs' train loss stabilizes near 10^-1.5 (within a decade) until their
    decay; ||u*v||_0 ends lower for a longer large-step phase while the small step stays dense (>= 95% of d);
    rank(phi) of the longest phase ends below the small step's; every large-step run ends with a test loss at
    least `ratio` x below the small step's. Small step = the run without decay, large = the decayed SGD runs
    in order of decay time."""
    small = [r for r in runs if r["config"].get("decay_at", 1) >= 1]
    large = sorted((r for r in runs if r["config"].get("decay_at", 1) < 1 and r["config"].get("algorithm") == "SGD"),
                   key=lambda r: r["config"]["decay_at"])
    if len(small) != 1 or len(large) < 2:
        return []
    small = small[0]
    checks = [_survive(runs)]
    levels = [_plateau(r, int(r["config"]["decay_at"] * steps)) for r in large]
    shown = ", ".join("-" if v is None else f"10^{v:.2f}" for v in levels)
    checks.append(Check("large steps: train loss stabilizes at 10^-1.5 ± 1 before the decay", shown,
                        all(v is not None and -2.5 <= v <= -0.5 for v in levels)))
    ratios = [_final(small, "test_loss") / _final(r, "test_loss") for r in large]
    checks.append(Check(f"large steps: test loss ≥ {ratio:g}x below the small step's",
                        ", ".join(f"{x:.0f}x" if np.isfinite(x) else "-" for x in ratios),
                        all(np.isfinite(x) and x >= ratio for x in ratios)))
    l0 = [_final(r, "l0_norm") for r in large]
    checks.append(Check("‖u ⊙ v‖₀ falls as the large-step phase lengthens",
                        f"{_final(small, 'l0_norm'):.0f} (small) → " + " → ".join(f"{v:.0f}" for v in l0),
                        all(a > b for a, b in zip(l0, l0[1:]))))
    checks.append(Check("small step stays dense (‖u ⊙ v‖₀ ≥ 95% of d)", f"{_final(small, 'l0_norm'):.0f} of {d}",
                        _final(small, "l0_norm") >= 0.95 * d))
    checks.append(Check("rank φ(X) of the longest large-step phase ends below the small step's",
                        f"{_final(large[-1], 'ntk_rank'):.0f} vs {_final(small, 'ntk_rank'):.0f}",
                        _final(large[-1], "ntk_rank") < _final(small, "ntk_rank")))
    return checks


def diagonal_gd_vs_sgd(runs: list[dict], d: int) -> list[Check]:
    """Fig. 8: full-batch GD (stabilized or not) stays dense (||u*v||_0 >= 75% of d); SGD with a large step ends
    sparser and with a lower test loss than every GD run."""
    gd = [r for r in runs if r["config"].get("algorithm") == "GD"]
    sgd = [r for r in runs if r["config"].get("algorithm") == "SGD"]
    if not gd or not sgd:
        return []
    checks = [_survive(runs)]
    gd_l0 = [_final(r, "l0_norm") for r in gd]
    checks.append(Check("GD stays dense (‖u ⊙ v‖₀ ≥ 75% of d)", ", ".join(f"{v:.0f}" for v in gd_l0) + f" of {d}",
                        all(v >= 0.75 * d for v in gd_l0)))
    best = sgd[-1]
    checks.append(Check("SGD ends sparser than every GD run",
                        f"{_final(best, 'l0_norm'):.0f} vs ≥ {min(gd_l0):.0f}", _final(best, "l0_norm") < min(gd_l0)))
    gd_test = [_final(r, "test_loss") for r in gd]
    checks.append(Check("SGD generalizes better than every GD run",
                        f"test loss {_final(best, 'test_loss'):.3g} vs ≥ {min(gd_test):.3g}",
                        _final(best, "test_loss") < min(gd_test)))
    return checks


FIT_LOSS = 1e-2    # a ReLU run "fits" its data below this train loss
STUCK_LOSS = 0.1   # and is stuck (over-regularized, Fig. 9) above this one


def _fewer(long: dict, short: dict, metric: str, name: str) -> Check:
    a, b = _final(long, metric), _final(short, metric)
    return Check(f"{name}: the long large-step phase ends lower", f"{a:.3g} vs {b:.3g}", a < b)


def relu_kinks(runs: list[dict]) -> list[Check]:
    """Fig. 4: both runs fit (train loss < 1e-2); the long warmup (last run) ends with fewer kinks, a lower
    rank(phi) and a lower feature sparsity than the short one (first run)."""
    if len(runs) < 2:
        return []
    short, long = runs[0], runs[-1]
    fits = [_final(r, "train_loss") for r in (short, long)]
    return [_survive(runs),
            Check(f"both runs fit (train loss < {FIT_LOSS:g})", ", ".join(f"{v:.2g}" for v in fits),
                  all(v < FIT_LOSS for v in fits)),
            _fewer(long, short, "kinks", "kinks"), _fewer(long, short, "ntk_rank", "rank φ(X)"),
            _fewer(long, short, "feature_sparsity", "feature sparsity")]


def relu_over_regularized(runs: list[dict]) -> list[Check]:
    """Fig. 9: with a larger warmup the long run no longer fits (train loss stuck above 0.1) while the short one
    does (below 1e-2)."""
    if len(runs) < 2:
        return []
    short, long = _final(runs[0], "train_loss"), _final(runs[-1], "train_loss")
    return [_survive(runs),
            Check(f"the short warmup fits (train loss < {FIT_LOSS:g})", f"{short:.2g}", short < FIT_LOSS),
            Check(f"the long warmup is stuck (train loss > {STUCK_LOSS:g})", f"{long:.2g}", long > STUCK_LOSS)]


def teacher_alignment(runs: list[dict]) -> list[Check]:
    """Fig. 5: every large-step run (all but the first) survives, ends with a lower test loss and more neurons
    aligned with the teacher than the small step (first run)."""
    if len(runs) < 2:
        return []
    small, large = runs[0], runs[1:]
    tests = [_final(r, "test_loss") for r in large]
    aligned = [_final(r, "alignment") for r in large]
    return [_survive(runs),
            Check("large steps: lower test loss than the small step",
                  ", ".join(f"{v:.2g}" for v in tests) + f" vs {_final(small, 'test_loss'):.2g}",
                  all(v < _final(small, "test_loss") for v in tests)),
            Check("large steps: more neurons aligned with the teacher",
                  ", ".join(f"{v:.2f}" for v in aligned) + f" vs {_final(small, 'alignment'):.2f}",
                  all(v > _final(small, "alignment") for v in aligned))]


def teacher_three_layers(runs: list[dict]) -> list[Check]:
    """Fig. 6: the longest large-step phase (last run) ends with a lower test loss and sparser features in both
    hidden layers than the constant small step (first run)."""
    if len(runs) < 2:
        return []
    first, last = runs[0], runs[-1]
    return [_survive(runs), _fewer(last, first, "test_loss", "test loss"),
            _fewer(last, first, "feature_sparsity_l1", "feature sparsity, layer 1"),
            _fewer(last, first, "feature_sparsity_l2", "feature sparsity, layer 2")]


def for_preset(experiment: str, preset: str | None, config: dict) -> Callable[[list[dict]], list[Check]] | None:
    """The checks of a preset's figure, as a function of one seed's runs (None when the preset has none)."""
    if experiment == "diagonal" and preset == "fig2":
        return lambda runs: diagonal_large_steps(runs, config["steps"], config["d"])
    if experiment == "diagonal" and preset == "fig8":
        return lambda runs: diagonal_gd_vs_sgd(runs, config["d"])
    return {("relu1d", "fig4"): relu_kinks, ("relu1d", "fig9"): relu_over_regularized,
            ("teacher_student", "fig5"): teacher_alignment,
            ("teacher_student", "fig6"): teacher_three_layers}.get((experiment, preset))


def holds(checks: list[Check]) -> bool:
    """Whether every check holds (and there is at least one)."""
    return bool(checks) and all(c.ok for c in checks)
