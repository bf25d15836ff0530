"""Step-size schedules against hand-computed values (docs/experiments.md conventions)."""

import numpy as np
import pytest

from engine.core import schedules


def test_step_decay_divides_once_at_the_fraction():
    lr = schedules.step_decay(0.282, 10, at=0.3, factor=3.4)
    assert lr[:3].tolist() == [0.282] * 3
    assert lr[3:] == pytest.approx(0.282 / 3.4)
    assert schedules.step_decay(0.25, 10, at=1.0, factor=5).tolist() == [0.25] * 10
    assert schedules.decay_step(100001, 0.1) == 10000


def test_linear_warmup_uses_i_over_n_and_holds_the_decayed_value():
    # lr_i = lr0 + (W - 1) lr0 (i / N)^e for i <= int(s N); then that value / decay
    lr = schedules.linear_warmup(0.0002, 100, factor=200.0, exponent=1.0, at=0.5, decay=3.0)
    assert lr[0] == pytest.approx(0.0002)
    assert lr[10] == pytest.approx(0.0002 + 199 * 0.0002 * 0.10)
    peak = 0.0002 + 199 * 0.0002 * 0.5
    assert lr[49] == pytest.approx(0.0002 + 199 * 0.0002 * 0.49)
    assert lr[50:] == pytest.approx(peak / 3.0)
    sqrt = schedules.linear_warmup(0.04, 100, factor=6.0, exponent=0.5, at=0.3, decay=2.5)
    assert sqrt[25] == pytest.approx(0.04 + 5 * 0.04 * 0.25**0.5)
    assert sqrt[-1] == pytest.approx((0.04 + 5 * 0.04 * 0.3**0.5) / 2.5)


def test_resnet_schedules_by_training_progress():
    t = np.array([0.0, 0.05, 0.1, 0.5, 0.89, 0.95])
    lr = schedules.exp_warmup(0.75, t, at=0.1)
    assert lr[:2] == pytest.approx([0.75, 0.75 * 1.05**5])
    assert lr[2:5] == pytest.approx([0.75 * 1.05**10 / 10] * 3)
    assert lr[5] == pytest.approx(0.75 * 1.05**10 / 100)
    assert schedules.piecewise(0.05, t, at=0.3) == pytest.approx([0.05, 0.05, 0.05, 0.005, 0.005, 0.0005])


def test_checkpoints_are_dense_then_evenly_spaced():
    steps = schedules.checkpoint_steps(100001, dense=100, count=200)
    assert steps[:100].tolist() == list(range(100))
    assert steps[-1] == 100001 and 280 <= len(steps) <= 300
    gaps = np.diff(steps[100:])
    assert gaps.max() - gaps.min() <= 1
