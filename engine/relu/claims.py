"""The paper's claims on ReLU nets (Fig. 4, 9 in 1D; Fig. 5, 6 teacher-student), checked on one seed's runs;
thresholds from the paper's text (docs/experiments.md), not from a measured run."""

from __future__ import annotations

from engine.core.claims import Check, fewer, final, survive

FIT_LOSS = 1e-2    # a ReLU run "fits" its data below this train loss
STUCK_LOSS = 0.1   # and is stuck (over-regularized, Fig. 9) above this one


def relu_kinks(runs: list[dict]) -> list[Check]:
    """Fig. 4: both runs fit (train loss < 1e-2); the long warmup (last run) ends with fewer kinks, a lower
    rank(phi) and a lower feature sparsity than the short one (first run)."""
    if len(runs) < 2:
        return []
    short, long = runs[0], runs[-1]
    fits = [final(r, "train_loss") for r in (short, long)]
    return [survive(runs),
            Check(f"both runs fit (train loss < {FIT_LOSS:g})", ", ".join(f"{v:.2g}" for v in fits),
                  all(v < FIT_LOSS for v in fits)),
            fewer(long, short, "kinks", "kinks"), fewer(long, short, "ntk_rank", "rank φ(X)"),
            fewer(long, short, "feature_sparsity", "feature sparsity")]


def relu_over_regularized(runs: list[dict]) -> list[Check]:
    """Fig. 9: with a larger warmup the long run no longer fits (train loss stuck above 0.1) while the short one
    does (below 1e-2)."""
    if len(runs) < 2:
        return []
    short, long = final(runs[0], "train_loss"), final(runs[-1], "train_loss")
    return [survive(runs),
            Check(f"the short warmup fits (train loss < {FIT_LOSS:g})", f"{short:.2g}", short < FIT_LOSS),
            Check(f"the long warmup is stuck (train loss > {STUCK_LOSS:g})", f"{long:.2g}", long > STUCK_LOSS)]


def teacher_alignment(runs: list[dict]) -> list[Check]:
    """Fig. 5: every large-step run (all but the first) survives, ends with a lower test loss and more neurons
    aligned with the teacher than the small step (first run)."""
    if len(runs) < 2:
        return []
    small, large = runs[0], runs[1:]
    tests = [final(r, "test_loss") for r in large]
    aligned = [final(r, "alignment") for r in large]
    return [survive(runs),
            Check("large steps: lower test loss than the small step",
                  ", ".join(f"{v:.2g}" for v in tests) + f" vs {final(small, 'test_loss'):.2g}",
                  all(v < final(small, "test_loss") for v in tests)),
            Check("large steps: more neurons aligned with the teacher",
                  ", ".join(f"{v:.2f}" for v in aligned) + f" vs {final(small, 'alignment'):.2f}",
                  all(v > final(small, "alignment") for v in aligned))]


def teacher_three_layers(runs: list[dict]) -> list[Check]:
    """Fig. 6: the longest large-step phase (last run) ends with a lower test loss and sparser features in both
    hidden layers than the constant small step (first run)."""
    if len(runs) < 2:
        return []
    first, last = runs[0], runs[-1]
    return [survive(runs), fewer(last, first, "test_loss", "test loss"),
            fewer(last, first, "feature_sparsity_l1", "feature sparsity, layer 1"),
            fewer(last, first, "feature_sparsity_l2", "feature sparsity, layer 2")]


# The checks of each preset's figure: preset -> f(one seed's runs, the config as a dict).
RELU1D = {"fig4": lambda runs, c: relu_kinks(runs), "fig9": lambda runs, c: relu_over_regularized(runs)}
TEACHER_STUDENT = {"fig5": lambda runs, c: teacher_alignment(runs), "fig6": lambda runs, c: teacher_three_layers(runs)}
