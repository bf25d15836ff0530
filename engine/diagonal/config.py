"""Diagonal linear networks' settings: a run of the runs table, the config with its bounds, and the paper's
presets (Fig. 2, 3, 8 and the SDE of Eq. 8)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from engine.core.config import Config, Preset, check_runs, check_work, param
from engine.diagonal.sim import ALGORITHMS

TITLE = "Diagonal linear networks: loss stabilization and sparse features (Fig. 2, 3, 8)"
LOSS_LIMIT = 1e10          # a run whose train loss exceeds this has diverged
METRIC_GROUP = 24          # checkpoints per metrics task
MAX_PENDING = 16           # metrics tasks queued before training waits for them
PLANE_MAX_D = 200          # Fig. 3's plane (a 60 x 60 loss grid, every path stored) is drawn up to this d
MAX_RUNS = 8               # runs in one job's table
MAX_WORK = 40_000_000      # steps x runs x seeds of one job: Fig. 2/8 at 20 seeds are 8-10 million (30 s here)


# ----------------------------------------------------------------------------- config
@dataclass(frozen=True)
class DiagonalRun(Config):
    name: str = param("run", help="name of the run (legend)")
    algorithm: str = param("SGD", choices=ALGORITHMS, help="SGD (mini-batch), GD (full batch) or SDE (Eq. 8)")
    lr: float = param(0.25, 1e-5, 100.0, step=0.001, log=True, label="step size η",
                      help="step size eta (SDE: time step dt = eta)")
    decay_at: float = param(1.0, 0.0, 1.0, step=0.05, help="fraction of training at which eta is divided "
                            "by decay_factor (1 = no decay)")
    decay_factor: float = param(1.0, 1.0, 1000.0, step=0.1, help="eta is divided by this at decay_at")
    batch_size: int = param(1, 1, 2000, step=1, help="SGD mini-batch size (sampled with replacement); "
                            "SDE: divides the noise covariance like SGD's")
    noise_level: float = param(0.03, 0.0, 10.0, step=0.005, help="SDE only: the loss level L it is "
                               "stabilized at; noise delta = 2 L / (n batch_size)")
    sam_rho: float = param(0.0, 0.0, 10.0, step=0.01, label="SAM radius ρ",
                           help="sharpness-aware minimization: each step takes the gradient at w + rho a / ||a||, "
                           "a the gradient at w (0 = no SAM; SGD and GD)")
    sam: str = param("n-SAM", choices=("n-SAM", "1-SAM"), label="SAM variant",
                     help="n-SAM: one perturbation per batch (its mean gradient); 1-SAM: one per sample")
    step_rule: str = param("gradient", choices=("gradient", "normalized"), label="step rule",
                           help="normalized: the step is eta g / ||g|| (normalized GD / SGD)")
    weight_decay: float = param(0.0, 0.0, 10.0, step=0.001, label="weight decay λ",
                                help="adds lambda (u, v) to the gradient: the loss + lambda / 2 ||(u, v)||^2")

    def check(self) -> None:
        changed = self.sam_rho > 0 or self.step_rule != "gradient" or self.weight_decay > 0
        if self.algorithm == "SDE" and changed:
            raise ValueError(f"run {self.name!r}: SAM, the normalized step and weight decay apply to SGD and GD, "
                             "not to the SDE")


def _run(name: str, algorithm: str, lr: float, at: float = 1.0, factor: float = 1.0) -> DiagonalRun:
    return DiagonalRun(name, algorithm, lr, at, factor)


_FIG2_RUNS = (
    _run("small step", "SGD", 0.25),
    _run("large, decay at 10%", "SGD", 0.282, 0.1, 4.8),
    _run("large, decay at 30%", "SGD", 0.282, 0.3, 3.4),
    _run("large, decay at 50%", "SGD", 0.282, 0.5, 1.5))


@dataclass(frozen=True)
class DiagonalConfig(Config):
    n: int = param(80, 2, 2000, step=1, help="training samples")
    d: int = param(200, 1, 1000, step=1, help="dimension (u, v have d entries each)")
    r: int = param(20, 1, 1000, step=1, help="nonzero coordinates of beta*")
    n_test: int = param(1000, 1, 5000, step=100, help="test samples")
    init_scale: float = param(0.1, 1e-4, 10.0, step=0.01, log=True, help="u0 = init_scale * 1, v0 = 0")
    steps: int = param(100_001, 1, 1_000_001, step=1000, help="training steps")
    data_seed: int = param(0, 0, 2**32 - 1, step=1, help="seed of np.random.RandomState drawing X, X_test, "
                           "beta*, the fresh inputs of rank(phi) (0 = the authors' data)")
    seeds: int = param(1, 1, 20, step=1, help="repeat every run over this many sampling seeds")
    first_seed: int = param(1, 0, 2**31 - 1, step=1, help="sampling seed of the first repeat (SGD's sample "
                            "stream, the SDE's noise)")
    checkpoints: int = param(200, 2, 2000, step=10, help="evenly spaced checkpoints after the first 100 steps")
    rank_tau: float = param(1e-15, 1e-16, 1e-2, log=True, help="rank(phi) counts s_i / s_max > rank_tau")
    plane: bool = param(False, help="Fig. 3: project the paths (first seed) on the plane through the init "
                        "spanned by w_flow - w_init and w* - w_init, with the train loss drawn on it; "
                        "w_flow = end point of the smallest-step GD run")
    sharpness: bool = param(False, label="track sharpness λ_max",
                            help="log the top eigenvalue of the training loss's Hessian (lambda_max, against "
                            "2/eta) and its trace at every checkpoint (exact to 1e-10 relative; costs about "
                            "as much as the training itself on Fig. 2)")
    runs: tuple[DiagonalRun, ...] = field(default=_FIG2_RUNS)
    run_type: ClassVar = DiagonalRun

    def check(self) -> None:
        if self.r > self.d:
            raise ValueError(f"r={self.r} must not exceed d={self.d}: beta* has r nonzero coordinates out of d")
        check_runs(self, MAX_RUNS)
        check_work(MAX_WORK, steps=self.steps, runs=len(self.runs), seeds=self.seeds)


Config = DiagonalConfig

# The large steps sit at the edge of stability, so a run's survival depends on the sampling seed; the notes give
# the rates over seeds 1-10 (tests/test_diagonal.py asserts them with a margin) and each preset opens on a seed
# that shows the figure.
FIG2 = DiagonalConfig(first_seed=6)
FIG8 = DiagonalConfig(n=40, d=100, r=20, runs=(
    _run("GD, small step", "GD", 2.0),
    _run("GD large, decay at 10%", "GD", 3.53, 0.1, 4.8),
    _run("GD large, decay at 30%", "GD", 3.53, 0.3, 3.4),
    _run("GD large, decay at 50%", "GD", 3.53, 0.5, 1.5),
    _run("SGD large, decay at 50%", "SGD", 0.262, 0.5, 20.0)))
FIG3 = DiagonalConfig(n=20, d=30, r=3, steps=10_001, first_seed=2, plane=True, runs=(
    _run("gradient flow", "GD", 0.03),
    _run("GD, large step", "GD", 3.0, 0.5, 3.0),
    _run("SGD, large step", "SGD", 0.6, 0.5, 3.0)))
SDE_DEMO = DiagonalConfig(runs=(
    _run("GD, no noise", "GD", 0.282, 0.5, 1.5),
    _run("SGD", "SGD", 0.282, 0.5, 1.5),
    DiagonalRun("SDE (Eq. 8)", "SDE", 0.282, 0.5, 1.5, 1, 0.03)))

SAM_DEMO = DiagonalConfig(n=40, d=100, r=20, runs=(
    _run("SGD, small step", "SGD", 0.1),
    DiagonalRun("SGD, small step + SAM ρ = 0.05", "SGD", 0.1, sam_rho=0.05),
    _run("SGD large, decay at 50%", "SGD", 0.262, 0.5, 20.0),
    _run("GD", "GD", 2.0),
    DiagonalRun("GD + 1-SAM ρ = 0.02", "GD", 2.0, sam_rho=0.02, sam="1-SAM")))
VARIANTS_DEMO = DiagonalConfig(n=40, d=100, r=20, runs=(
    _run("GD", "GD", 2.0),
    DiagonalRun("GD + weight decay λ = 0.01", "GD", 2.0, weight_decay=0.01),
    DiagonalRun("normalized GD, decay at 50%", "GD", 0.2, 0.5, 100.0, step_rule="normalized"),
    DiagonalRun("normalized SGD, decay at 50%", "SGD", 0.2, 0.5, 100.0, step_rule="normalized"),
    _run("SGD large, decay at 50%", "SGD", 0.262, 0.5, 20.0)))

PRESETS = {
    "fig2": Preset(FIG2, "Fig. 2: SGD, small step 0.25 vs large step 0.282 decayed at 10/30/50% (authors' data, "
                   "sampling seed 6). The large steps' loss stabilizes near 10^-1.5; the longer the large-step "
                   "phase, the sparser u*v, the lower rank(phi), and the test loss ends >= 10x below the small "
                   "step's. 0.282 sits at the edge of stability: over sampling seeds 1-10 all four runs survive in "
                   "8 and the whole figure holds in 7 (seed 1, the authors' own, survives but its 30% run "
                   "generalizes only 1.3x better)."),
    "fig8": Preset(FIG8, "Fig. 8: full-batch GD (2.0, and 3.53 decayed at 10/30/50%) stabilizes too but stays "
                   "dense and generalizes worse than SGD, which sparsifies. SGD runs at 0.262, not the paper's "
                   "0.272: on this data 0.272 lies past the edge of stability and survives at 1 of sampling seeds "
                   "1-10, 0.262 at 10 of 10."),
    "fig3": Preset(FIG3, "Fig. 3: gradient flow (GD 0.03), GD 3.0 and SGD 0.6 (both /3 at 50%) on a small "
                   "problem, drawn on the plane through the init spanned by w_flow and w*: GD and SGD take "
                   "different paths."),
    "sde": Preset(SDE_DEMO, "Beyond the paper: the SDE of Eq. 8 (GD plus a constant label noise at the loss level "
                  "0.03, near where SGD's loss stabilizes) beside SGD and noiseless GD, all at 0.282 decayed at 50%. "
                  "The noise alone sparsifies u*v (GD stays dense); the SDE's loss stays at its noise level."),
    "sam": Preset(SAM_DEMO, "Beyond the paper: sharpness-aware minimization (SAM) on Fig. 8's data, beside plain SGD, "
                  "large-step SGD and GD. At sampling seed 1, SAM (ρ = 0.05) turns the small step's dense "
                  "solution (rank φ(X) 100, test loss 0.13) into a lower-rank one (68) that generalizes better "
                  "(0.05), like the large steps (rank 46, 0.09). With GD, 1-SAM (ρ = 0.02) drops ‖u ⊙ v‖₀ from 100 "
                  "to 70, but its train loss stays at 0.008 (SAM's fixed points are not minima) and its test loss "
                  "at 0.41 (GD: 0.17)."),
    "variants": Preset(VARIANTS_DEMO, "Beyond the paper: weight decay and normalized steps on Fig. 8's data. Weight "
                       "decay on (u, v) is an ℓ1 penalty on β = u ⊙ v (min of (u² + v²)/2 over u ⊙ v = β is |β|): "
                       "GD with λ = 0.01 ends sparse (‖u ⊙ v‖₀ 42 vs 100) and generalizes better (test loss 0.086 "
                       "vs 0.17), at a train loss near 0.02. Normalized GD (step 0.2 g/‖g‖, /100 at 50%) stays "
                       "dense (97) and generalizes worst (0.44); normalized SGD with the same schedule sparsifies "
                       "(38) and ends with the lowest test loss here (0.019; sampling seed 1)."),
    "sharpness": Preset(FIG8.replace(sharpness=True),
                        "Fig. 8's runs with the sharpness tracked: the top eigenvalue λ_max of the full-batch "
                        "Hessian against 2/η. The large GD steps stabilize with λ_max above 2/η (about 1.45x: GD "
                        "bounces instead of converging) and below the new 2/η after the decay; SGD's full-batch "
                        "λ_max stays far below 2/η (its steps follow one sample's curvature, whose mean is the "
                        "trace)."),
}

