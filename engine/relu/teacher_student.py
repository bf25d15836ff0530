"""Teacher-student ReLU nets: large steps pull the neurons onto the teacher's directions (Sec. 3.2, Fig. 5, 6, 11).

Inputs x ~ N(0, I_d) scaled to the unit sphere; labels from a teacher net; MSE loss (no 1/2), SGD.
Two-layer (Fig. 5): d = 2, n = 15, teacher width 3 (unit rows, output weights +-1), student width 20,
no biases, student init 0.5 N(0,1) and output layer 0. Small steps stay lazy; large steps cluster the
student's first-layer rows along the teacher directions and generalize better.
Three-layer (Fig. 6): d = 5, n = 50, teacher widths [2, 2] (N(0,1) weights), student [10, 10] with
init scale 0.8, biases with PyTorch's default init; longer large-step phases give lower test loss and
sparser features in both hidden layers.
Seeds follow the authors' code (data from np.random seed + 1, teacher from torch seed + 1, student from torch
seed, SGD's samples from np.random seed): the presets' seeds reproduce their printed labels and losses. `seeds`
repeats every run for seed, seed + 1, ..., each with its own data, teacher and init.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from engine.core import exact
from engine.core.config import Config, Preset, check_work, param
from engine.core.sparsity import feature_sparsity
from engine.core.torch_draws import TorchRandom
from engine.relu import nets as rn
from engine.relu.claims import TEACHER_STUDENT as CLAIMS  # noqa: F401 (the registry's)
from engine.relu.runs import (
    SEEDS_HELP,
    SHARPNESS_HELP,
    SeedData,
    check_bounds,
    check_seeds,
    train_runs,
    warmup_run_spec,
)

TITLE = "Teacher-student ReLU nets: neurons align with the teacher (Fig. 5, 6, 11)"
MAX_SNAPSHOT_VALUES = 2_000_000  # neuron coordinates stored per job (snapshots x runs x student_width x d): the
                                 # presets store ~12,000; 2 million are ~60 MB in memory


# ----------------------------------------------------------------------------- config
@dataclass(frozen=True)
class RunSpec(warmup_run_spec(lrs=(0.1, 1e-5, 5.0, 0.005), max_factor=100.0, max_batch=1000)):
    """One SGD schedule: warmup lr -> lr * factor over the first `at` of training, then / decay."""


@dataclass(frozen=True)
class TeacherStudentConfig(Config):
    run_type: ClassVar = RunSpec

    runs: tuple[RunSpec, ...] = (
        RunSpec(name="small step", lr=0.13),
        RunSpec(name="large, decay at 10%", lr=0.455, at=0.1, decay=2.0),
        RunSpec(name="large, decay at 30%", lr=0.455, at=0.3, decay=4.0),
        RunSpec(name="large, decay at 50%", lr=0.455, at=0.5, decay=5.0),
    )
    depth: int = param(2, choices=(2, 3), label="depth (layers)",
                       help="2: one hidden layer, no biases; 3: two hidden layers with biases")
    d: int = param(2, 1, 50, step=1, label="input dimension d", help="input dimension")
    n: int = param(15, 2, 2000, step=1, label="training points n", help="training points")
    n_test: int = param(1000, 10, 10000, step=10, label="test points", help="test points")
    teacher_width: int = param(3, 1, 50, step=1, label="teacher width",
                               help="teacher's hidden width (each hidden layer)")
    student_width: int = param(20, 1, 200, step=1, label="student width m",
                               help="student's hidden width (each hidden layer)")
    teacher_scale: float = param(1.0, 0.01, 10.0, step=0.05, label="teacher weight scale",
                                 help="three-layer teacher: weights N(0,1) * scale")
    init_scale: float = param(0.5, 0.0, 10.0, step=0.05, label="student init scale",
                              help="student hidden layers: weights N(0,1) * scale")
    output_init: float = param(0.0, 0.0, 10.0, step=0.05, label="student output init scale",
                               help="student output layer: weights N(0,1) * scale")
    steps: int = param(14126, 10, 1_000_000, step=1, help="SGD steps (10^4.15 + 1 in Fig. 5)")
    seed: int = param(0, 0, 10**6, step=1, help="seed of data, teacher, init, sampling and phi's fresh inputs")
    seeds: int = param(1, 1, 20, step=1, label="seeds (repeats)", help=SEEDS_HELP)
    dtype: str = param("float32", choices=("float32", "float64"), label="precision", help="training precision")
    device: str = param("auto", choices=("auto", "cpu", "cuda"), help="where to train (auto: CPU, fastest here)")
    checkpoints: int = param(200, 10, 2000, step=10, label="metric checkpoints",
                             help="evenly spaced checkpoints after the first 100 steps")
    corr_threshold: float = param(0.99, 0.5, 1.0, step=0.001, label="correlation threshold c",
                                  help="feature sparsity: correlation threshold c")
    align_degrees: float = param(10.0, 0.5, 90.0, step=0.5, label="alignment angle (°)",
                                 help="alignment: a neuron within this angle of a teacher")
    min_norm: float = param(0.1, 0.0, 1.0, step=0.01, label="alignment: smallest norm (share of the largest)",
                            help="alignment counts neurons with norm >= this * largest")
    sharpness: bool = param(False, label="track sharpness λ_max", help=SHARPNESS_HELP)
    snapshots: int = param(60, 2, 1000, step=1, label="neuron snapshots",
                           help="checkpoints at which neuron positions are stored (first seed)")

    def check(self) -> None:
        check_seeds(self)
        check_bounds(self)
        check_work(MAX_SNAPSHOT_VALUES, snapshots=self.snapshots, runs=len(self.runs), student_width=self.student_width,
                   d=self.d)
        for i, r in enumerate(self.runs):
            if r.batch_size > self.n:
                raise ValueError(f"runs.{i}.batch_size={r.batch_size} is larger than the n={self.n} training points")


Config = TeacherStudentConfig


def _fig6_run(name: str, at: float, decay: float) -> RunSpec:
    return RunSpec(name=name, lr=0.04, warmup_factor=6.0, warmup_exponent=0.5, at=at, decay=decay)


# Step 0.455 sits at the edge of stability (0.455 x the largest ||phi(x)||^2 at init is 0.7-2.4 over seeds 0-15):
# from the authors' seed-0 draws all runs train as in their notebook, but from most other inits the large-step runs
# blow up within ~40 steps, in their code as in this one. Measured with `seeds` (python -m engine run
# teacher_student --preset fig5 --set seeds=20 --set checkpoints=10 --set snapshots=2): over seeds 0-19 the three
# 0.455 runs survive at 5 of 20 (0, 5, 7, 11, 18), and each ends with a lower test loss and a higher alignment than
# the small step at 2 of 20 (0, 11). Fig. 6 (--set seed=5): over seeds 5-24 every run survives, and the 50% run
# ends with a lower test loss and sparser layers than the constant step at 15 of 20; at the other 5 its second
# hidden layer dies (sparsity 0) and its test loss ends higher.
PRESETS = {
    "fig5": Preset(TeacherStudentConfig(),
                   "two-layer, d = 2: small step 0.13 vs 0.455 decayed at 10/30/50%; neurons align with the teacher "
                   "(authors' seed 0; step 0.455 diverges from most other inits: it survives at 5 of seeds 0-19, "
                   "and the figure holds at 2: seeds 0 and 11)"),
    "fig6": Preset(TeacherStudentConfig(
        runs=(RunSpec(name="constant 0.011", lr=0.011), _fig6_run("warmup 10%", 0.1, 3.5),
              _fig6_run("warmup 30%", 0.3, 2.5), _fig6_run("warmup 50%", 0.5, 5.0)),
        depth=3, d=5, n=50, teacher_width=2, student_width=10, init_scale=0.8, output_init=0.8, steps=10001, seed=5),
        "three-layer, d = 5: longer large-step phases give lower test loss and sparser features (the 50% run "
        "against the constant step: at 15 of seeds 5-24; at the other 5 its second layer dies)"),
}


# ----------------------------------------------------------------------------- data and nets
def layouts(c: TeacherStudentConfig) -> tuple[rn.Layout, rn.Layout]:
    """(teacher, student) layouts."""
    biases = c.depth == 3
    return (rn.layout_mlp(c.d, (c.teacher_width,) * (c.depth - 1), biases),
            rn.layout_mlp(c.d, (c.student_width,) * (c.depth - 1), biases))


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows in float32 scaled to unit norm, as the authors' code does it (x / sum(x^2)^0.5 in float32; equal to
    torch's result up to its summation order, a last-bit difference at most). The sums are exactly rounded
    (engine.core.exact), so the data do not depend on the CPU or BLAS kernel."""
    x = np.asarray(x, dtype=np.float32)
    norms = exact.row_norms(x)[:, None].astype(np.float32)
    return (x / norms).astype(np.float64)


def _sphere(rs: np.random.RandomState, count: int, d: int) -> np.ndarray:
    """rs.multivariate_normal(0, I_d, count) (which draws exactly rs.standard_normal((count, d)) for an identity
    covariance, then multiplies by a BLAS identity: tests check it), rows scaled to unit norm (float32)."""
    return _unit_rows(rs.standard_normal((count, d)))


def teacher_outputs(layout: rn.Layout, params: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The teacher's outputs on x as its float32 net computes them, each layer's sums exactly rounded
    (engine.core.exact) instead of BLAS's kernel-dependent float32 sums: the labels, and so every trajectory, are
    the same on every machine."""
    a = np.asarray(x, dtype=np.float32)
    layers = layout.layers(np.asarray(params, dtype=np.float32))
    for k, (w, b) in enumerate(layers):
        z = exact.matmul(a, w.T) + (0.0 if b is None else b.astype(np.float64))
        a = z.astype(np.float32)
        if k < len(layers) - 1:
            a = np.maximum(a, np.float32(0))
    return a[:, 0].astype(np.float64)


def _gaussian_net(layout: rn.Layout, seed: int, scales: list[float]) -> np.ndarray:
    """The authors' init_gaussian after torch.manual_seed(seed): weights N(0,1) * scale per layer, drawn after
    the nn.Linear constructors' draws; biases keep nn.Linear's default U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    rng = TorchRandom(seed)
    biases = [rng.linear(i, o, b)[1] for i, o, b in zip(layout.dims[:-1], layout.dims[1:], layout.biases, strict=True)]
    weights = [np.float32(scale) * rng.randn((o, i)) for i, o, scale in zip(layout.dims[:-1], layout.dims[1:], scales,
                                                                              strict=True)]
    return layout.flatten([(w.astype(np.float64), None if b is None else b.astype(np.float64))
                           for w, b in zip(weights, biases, strict=True)])


def teacher(c: TeacherStudentConfig) -> np.ndarray:
    """Drawn after torch.manual_seed(seed + 1). Two-layer: N(0,1) rows scaled to unit norm, output weights
    sign(N(0,1)); three-layer: N(0,1) * teacher_scale weights, nn.Linear's default biases."""
    layout = layouts(c)[0]
    if c.depth == 2:
        (w, _), (a, _) = layout.layers(_gaussian_net(layout, c.seed + 1, [1.0, 1.0]))
        return layout.flatten([(_unit_rows(w), None), (np.sign(a), None)])
    return _gaussian_net(layout, c.seed + 1, [c.teacher_scale] * c.depth)


def problem(c: TeacherStudentConfig) -> dict:
    """Training and test data, teacher and student params, and the fresh inputs of phi, with the authors' seeds:
    data from np.random.RandomState(seed + 1), teacher from torch seed + 1, student from torch seed (SGD's
    samples from np.random seed: `rn.batch_indices`). Labels are the teacher's float32 outputs. phi is
    evaluated on the first p test inputs (p = number of student parameters), as the authors do, topped up
    with more points from the same distribution when p > n_test."""
    rs = np.random.RandomState(c.seed + 1)
    t_layout, s_layout = layouts(c)
    x, x_test = _sphere(rs, c.n, c.d), _sphere(rs, c.n_test, c.d)
    t = teacher(c)
    student = _gaussian_net(s_layout, c.seed, [c.init_scale] * (c.depth - 1) + [c.output_init])
    fresh = x_test[:s_layout.size]
    if len(fresh) < s_layout.size:
        fresh = np.concatenate([fresh, _sphere(np.random.RandomState([c.seed, 2]), s_layout.size - len(fresh), c.d)])

    return dict(x=x, y=teacher_outputs(t_layout, t, x), x_test=x_test, y_test=teacher_outputs(t_layout, t, x_test),
                teacher=t, student=student,
                directions=t_layout.layers(t)[0][0], fresh=fresh)


def projection_basis(directions: np.ndarray, neurons: np.ndarray) -> np.ndarray:
    """(d, 2) orthonormal basis of the plane of the first two teacher directions (completed by the
    student neurons' principal directions when the teacher has fewer)."""
    pcs = np.linalg.svd(neurons - neurons.mean(0), full_matrices=False)[2]
    q = np.linalg.qr(np.concatenate([directions[:2], pcs, np.eye(neurons.shape[1])]).T)[0]
    return q[:, :2]


def alignment(neurons: np.ndarray, directions: np.ndarray, degrees: float, min_norm: float) -> np.ndarray:
    """Share of the student neurons (first-layer rows, (C, m, d)) with a norm of at least min_norm times the
    largest that lie within `degrees` of a teacher direction (first-layer rows of the teacher)."""
    norms = np.linalg.norm(neurons, axis=-1)
    big = norms >= min_norm * norms.max(-1, keepdims=True)
    unit = neurons / np.maximum(norms, 1e-300)[..., None]
    t = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    close = (unit @ t.T).max(-1) >= np.cos(np.radians(degrees))
    return (close & big).sum(-1) / np.maximum(big.sum(-1), 1)


def metrics(params: np.ndarray, p: dict, c: TeacherStudentConfig) -> list[dict]:
    """Per param set: train/test loss, NTK rank on the fresh inputs, feature sparsity per hidden layer, alignment."""
    layout = layouts(c)[1]
    pres, acts = rn.forward(layout, params, p["x"])
    loss = ((pres[-1][..., 0] - p["y"]) ** 2).mean(-1)
    test = ((rn.predict(layout, params, p["x_test"]) - p["y_test"]) ** 2).mean(-1)
    ranks = rn.ntk_ranks(layout, params, p["fresh"])
    w1 = layout.layers(params)[0][0]
    align = alignment(w1, p["directions"], c.align_degrees, c.min_norm)
    names = ["feature_sparsity"] if c.depth == 2 else [f"feature_sparsity_l{k}" for k in range(1, c.depth)]
    rows = []
    for i in range(len(params)):
        sparsity = [feature_sparsity(a[i], c.corr_threshold) for a in acts[1:]]
        rows.append(dict(train_loss=loss[i], test_loss=test[i], ntk_rank=ranks[i], alignment=align[i],
                         **dict(zip(names, sparsity, strict=True))))
    return rows


# ----------------------------------------------------------------------------- run
def run(c: TeacherStudentConfig, rec, workdir=None) -> None:
    """Train all runs from one student init per seed, on that seed's data and teacher; log metrics at every
    checkpoint and the first seed's neuron snapshots."""
    seeds = range(c.seed, c.seed + c.seeds)
    problems = [problem(c.replace(seed=s)) for s in seeds]
    layout = layouts(c)[1]
    first = problems[0]
    w_init = layout.layers(first["student"])[0][0]
    basis = projection_basis(first["directions"], w_init)
    rec.snapshot(None, "teacher", dict(directions=first["directions"], projection=first["directions"] @ basis,
                                       basis=basis, d=c.d))
    rec.snapshot(None, "neurons_init", dict(w=w_init, projection=w_init @ basis))

    def neurons(q: np.ndarray, s: SeedData) -> dict:
        (w, _), (out, _) = layout.layers(q)[:2]
        return dict(w=w, projection=w @ basis, out_norm=np.linalg.norm(out, axis=0))

    data = [SeedData(s, p["x"], p["y"], p["student"], p) for s, p in zip(seeds, problems, strict=True)]
    train_runs(c, rec, layout, data, lambda params, s: metrics(params, s.extra, c), ("neurons", neurons))
