"""The paper's claims as checks (engine/core/claims.py): each criterion flips when what it checks fails."""

from __future__ import annotations

import copy

from engine.core import claims
from engine.diagonal.claims import diagonal_large_steps
from engine.relu.claims import relu_kinks, relu_over_regularized, teacher_alignment


def run(label: str, status: str = "done", config: dict | None = None, **final) -> dict:
    steps = list(range(0, 1001, 10))
    return dict(label=label, status=status, config=config or {}, final=final, seed=1,
                history=dict(step=steps, train_loss=[10**-1.5] * len(steps)))


def fig2_runs() -> list[dict]:
    small = run("small", config=dict(algorithm="SGD", decay_at=1.0), test_loss=1e-2, l0_norm=200, ntk_rank=200)
    large = [run(f"large {s}", config=dict(algorithm="SGD", decay_at=s), test_loss=t, l0_norm=l0, ntk_rank=r)
             for s, t, l0, r in ((0.1, 5e-4, 150, 170), (0.3, 4e-4, 90, 120), (0.5, 3e-4, 72, 100))]
    return [small, *large]


def test_fig2_checks_hold_on_the_papers_numbers_and_each_fails_alone():
    runs = fig2_runs()
    assert claims.holds(diagonal_large_steps(runs, 1000, 200))
    broken = {
        0: lambda rs: rs[2].update(status="diverged"),
        1: lambda rs: rs[1]["history"].update(train_loss=[1.0] * 101),                 # no plateau at 10^-1.5
        2: lambda rs: rs[3]["final"].update(test_loss=5e-3),                           # only 2x better
        3: lambda rs: rs[3]["final"].update(l0_norm=95),                               # 50% not sparser than 30%
        4: lambda rs: rs[0]["final"].update(l0_norm=150),                              # the small step sparsified
        5: lambda rs: rs[3]["final"].update(ntk_rank=200),                             # rank not lower
    }
    for index, breaks in broken.items():
        rs = copy.deepcopy(runs)
        breaks(rs)
        checks = diagonal_large_steps(rs, 1000, 200)
        assert not checks[index].ok and [c.ok for i, c in enumerate(checks) if i != index] == [True] * 5, index


def test_relu_and_teacher_checks():
    short = run("2%", train_loss=1e-4, kinks=50, ntk_rank=80, feature_sparsity=0.25)
    long = run("50%", train_loss=5e-4, kinks=15, ntk_rank=30, feature_sparsity=0.1)
    assert claims.holds(relu_kinks([short, long]))
    assert not claims.holds(relu_kinks([short, run("50%", train_loss=0.3, kinks=5, ntk_rank=9,
                                                          feature_sparsity=0.05)]))
    stuck = run("50%", train_loss=0.3)
    assert claims.holds(relu_over_regularized([short, stuck]))
    assert not claims.holds(relu_over_regularized([short, long]))
    small = run("small", test_loss=6e-4, alignment=0.4)
    large = [run(f"large {k}", test_loss=2e-4, alignment=0.9) for k in range(3)]
    assert claims.holds(teacher_alignment([small, *large]))
    assert not claims.holds(teacher_alignment([small, *large[:2], run("x", "diverged", test_loss=1e-4,
                                                                             alignment=1.0)]))
