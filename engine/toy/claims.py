"""Prop. 3 (Sec. 2.2) checked on one seed's runs of the toy model: for a step size inside the interval and
0 < theta_0 < theta*, SGD's loss stays between the level sets delta_1 < F < delta_2 at every step t > 0 (Eq. 5), and
after some time T the iterates alternate sides of theta* (Eq. 6). The paper gives T only as a constant of the
appendix: here T is half the run. delta_1, delta_2 are bouncing.loss_bounds (Prop. 7's eps0^2 theta*^2 and
0.17 theta*^2)."""

from __future__ import annotations

import numpy as np

from engine.core.claims import Check


def bouncing_prop3(runs: list[dict], config: dict) -> list[Check]:
    """The SGD run's checks; none when the config is outside Prop. 3's hypotheses (no SGD run, eta outside the
    interval, theta_0 outside (0, theta*))."""
    from engine.toy.bouncing import BouncingConfig, loss_bounds, prop3_interval

    c = BouncingConfig.from_dict(config)
    lo, hi = prop3_interval(c)
    sgd = [r for r in runs if r["label"] == "SGD"]
    if not sgd or not lo < c.eta < hi or not 0 < c.theta0 < c.theta_star:
        return []
    run = sgd[0]
    theta = np.asarray([np.nan if v is None else v for v in run["history"]["theta"]], dtype=float)
    loss = np.asarray([np.nan if v is None else v for v in run["history"]["train_loss"]], dtype=float)[1:]
    low, high = loss_bounds(c)
    inside = bool(len(loss) and np.all((loss > low) & (loss < high)))
    side = np.sign(theta[len(theta) // 2:] - c.theta_star)
    alternates = bool(len(side) > 1 and np.all(side != 0) and np.all(side[1:] == -side[:-1]))
    return [Check("SGD survives", run["status"], run["status"] == "done"),
            Check(f"F stays in ({low:.2g}, {high:.2g}) at every step t > 0 (Eq. 5)",
                  f"{np.nanmin(loss):.3g} to {np.nanmax(loss):.3g}" if np.isfinite(loss).any() else "-", inside),
            Check("the iterates alternate sides of θ* over the second half of the run (Eq. 6)",
                  f"{int(np.sum(side[1:] == -side[:-1]))} of {len(side) - 1} steps cross θ*", alternates)]


CLAIMS = {"prop3": bouncing_prop3}
