"""ResNet experiment settings: the runs table, the config with its bounds, the paper's presets (Fig. 1, 7, 12,
13, 14) and the step-size schedule of a run."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from engine.core import schedules
from engine.core.config import Config, Preset, check_runs, check_work, param
from engine.resnet import cifar
from engine.resnet.model import DEPTHS

SCHEDULES = ("constant", "exp-warmup", "step", "cosine")
AVERAGES = ("none", "ema", "swa")  # weight averaging, evaluated beside the run's own weights
SETTINGS = {"plain": dict(momentum=0.0, weight_decay=0.0, augment=False),
            "sota": dict(momentum=0.9, weight_decay=5e-4, augment=True)}
SPARSITY_THRESHOLD, SPARSITY_UNITS = 0.95, 1000
PRECISIONS, MEMORY_FORMATS, SWITCH = ("auto", "float32", "bf16"), ("auto", "contiguous", "channels_last"), \
    ("auto", "on", "off")
CPU_MIN_WIDTH = 16  # channels_last or torch.compile on a CPU: see fast_path
FILTER_LAYERS = ("conv1", "layers.1.0.conv1")  # the stem and the first conv of super-block 2 (Fig. 12)
MAX_RUNS = 8        # runs in one job's table
MAX_WORK = 2_400    # epochs x runs x seeds of one job: Fig. 7/13 (100 x 4) at five seeds is 2,000



# ----------------------------------------------------------------------------- config
@dataclass(frozen=True)
class RunSpec(Config):
    name: str = param("small", help="run name shown in legends")
    schedule: str = param("constant", choices=SCHEDULES,
                          help="constant; exp-warmup: lr 1.05^(100 t) until s, /10 until 0.9, /100; step: lr until s, "
                               "/10 until 0.9, /100; cosine: lr (1 + cos(pi t)) / 2")
    lr: float = param(0.01, 1e-5, 10.0, step=0.001, log=True, label="step size η",
                      help="step size (the start of the warmup for exp-warmup)")
    at: float = param(1.0, 0.0, 1.0, step=0.05, label="decay time s",
                      help="warmup end / first decay, as a fraction s of training")
    base: float = param(1.05, 1.0, 1.2, step=0.005, label="warmup base", help="exp-warmup growth: lr * base^(100 t)")
    seed: int = param(0, 0, 10**6, step=1, help="seed of the init, the batch order and the augmentation")
    label_noise: float = param(0.0, 0.0, 1.0, step=0.01, label="label noise",
                               help="label-noise SGD: the share of each batch's labels replaced by a class drawn "
                                    "uniformly at random (0 = plain SGD)")


def _runs(small: float, large: float, large_schedule: str) -> tuple[RunSpec, ...]:
    """The paper's group: a small constant step and a large one decayed at 10/30/50%."""
    return (RunSpec("small", "constant", small),
            *(RunSpec(f"large, {int(s * 100)}%", large_schedule, large, s) for s in (0.1, 0.3, 0.5)))


@dataclass(frozen=True)
class ResNetConfig(Config):
    dataset: str = param("cifar10", choices=cifar.DATASETS, help="cifar10 | cifar100 (from the data folder) | digits "
                                                                 "(bundled with scikit-learn, offline)")
    data_dir: str = param("", label="data folder",
                          help="folder holding CIFAR, inside the data root ('' = the root itself)")
    model: str = param("resnet18", choices=tuple(DEPTHS), help="ResNet-18 [2,2,2,2] or ResNet-34 [3,4,6,3]")
    width: int = param(64, 2, 128, step=2, label="width (channels of super-block 1)",
                       help="channels of the stem and super-block 1 (doubling after)")
    setting: str = param("plain", choices=tuple(SETTINGS), label="setting",
                         help="plain: no momentum, weight decay or augmentation; "
                              "sota: momentum 0.9, wd 5e-4, crop + flip")
    epochs: int = param(100, 1, 400, step=1, help="epochs per run")
    batch_size: int = param(256, 8, 2048, step=8, label="batch size", help="SGD batch size")
    eval_every: int = param(200, 1, 100_000, step=10, label="evaluate every (iterations)",
                            help="iterations between metric checkpoints")
    seeds: int = param(1, 1, 5, step=1, label="seeds (repeats)", help="seeds per run (seed, seed+1, ...)")
    sparsity_images: int = param(10_000, 64, 50_000, step=64, label="images for feature sparsity",
                                 help="training images for feature sparsity")
    train_eval_batches: int = param(4, 1, 64, step=1, label="batches for the train loss",
                                    help="batches for the train loss / error checkpoints")
    device: str = param("auto", choices=("auto", "cpu", "cuda"), help="auto = CUDA when present")
    precision: str = param("auto", choices=PRECISIONS, label="precision",
                           help="bf16: autocast the forward to bfloat16 (weights, optimizer and loss stay float32); "
                                "auto = bf16 on CUDA, float32 on a CPU")
    memory_format: str = param("auto", choices=MEMORY_FORMATS, label="memory format",
                               help="layout of the images and conv weights; auto = channels_last on CUDA, "
                                    "contiguous on a CPU")
    fused_sgd: str = param("auto", choices=SWITCH, label="fused SGD",
                           help="the SGD update as one fused kernel; auto = on with CUDA, off on a CPU")
    compile: bool = param(False, label="torch.compile",
                          help="torch.compile the training forward (inductor: on a CPU it needs a C compiler); "
                               "slower start, faster steps")
    momentum: float = param(-1.0, -1.0, 0.99, step=0.01, label="momentum",
                            help="SGD momentum; -1 = the setting's (plain 0, sota 0.9)")
    weight_decay: float = param(-1.0, -1.0, 0.1, step=1e-4, label="weight decay",
                                help="L2 weight decay; -1 = the setting's (plain 0, sota 5e-4)")
    train_fraction: float = param(1.0, 0.01, 1.0, step=0.01, label="share of the training set",
                                  help="train on a fixed random subset of this share of the training images")
    average: str = param("none", choices=AVERAGES, label="weight averaging",
                         help="ema: exponential moving average of the weights (and BN statistics) every step; swa: "
                              "their plain average at the end of each epoch from swa_start on; evaluated beside the "
                              "run as avg_* metrics")
    ema_decay: float = param(0.999, 0.5, 0.99999, step=1e-4, label="EMA decay τ",
                             help="w_avg <- τ w_avg + (1 - τ) w after each step")
    swa_start: float = param(0.75, 0.0, 1.0, step=0.05, label="SWA start",
                             help="share of training after which SWA averages the weights")
    sharpness_every: int = param(0, 0, 1000, step=1, label="sharpness every k-th checkpoint",
                                 help="λ_max of the training loss's Hessian on a fixed batch (Lanczos on "
                                      "Hessian-vector products) at every k-th metric checkpoint, beside (2 + 2β)/η; "
                                      "0 = off")
    sharpness_iters: int = param(20, 3, 200, step=1, label="Lanczos steps",
                                 help="most Lanczos steps per sharpness estimate (it stops earlier at a relative "
                                      "residual of 1e-4)")
    deterministic: bool = param(False, label="deterministic",
                                help="bit-for-bit repeatable on one device (tested on a CPU, not yet measured on a "
                                     "GPU): deterministic algorithms only (torch.use_deterministic_algorithms, cuDNN "
                                     "deterministic, no cuDNN benchmark); "
                                     "init, batch order and augmentation are seeded either way. Off: GPU kernels "
                                     "may sum in a different order from run to run")
    runs: tuple[RunSpec, ...] = field(default=_runs(0.01, 0.75, "exp-warmup"))

    run_type: ClassVar = RunSpec

    def check(self) -> None:
        if self.dataset == "digits" and self.batch_size > cifar.DIGITS_TRAIN:
            raise ValueError(f"batch_size={self.batch_size} is above the {cifar.DIGITS_TRAIN} training digits")
        check_runs(self, MAX_RUNS)
        check_work(MAX_WORK, epochs=self.epochs, runs=len(self.runs), seeds=self.seeds)

    @property
    def optim(self) -> dict:
        """momentum, weight_decay and augment: the setting's, with momentum and weight decay overridden when set."""
        out = dict(SETTINGS[self.setting])
        out.update({k: getattr(self, k) for k in ("momentum", "weight_decay") if getattr(self, k) >= 0})
        return out


Config = ResNetConfig

_CIFAR = dict(model="resnet18", width=64, epochs=100, batch_size=256, eval_every=200, sparsity_images=10_000,
              device="cuda")
PRESETS = {
    "cpu-demo": Preset(ResNetConfig(dataset="digits", width=16, epochs=20, batch_size=64, eval_every=20,
                                    sparsity_images=1348, train_eval_batches=4, device="auto",
                                    runs=_runs(0.01, 0.75, "exp-warmup")),
                       "digits 16x16, ResNet-18 width 16, 20 epochs, plain, Fig. 7's schedules: minutes on a CPU"),
    "cpu-label-noise": Preset(ResNetConfig(dataset="digits", width=16, epochs=20, batch_size=64, eval_every=20,
                                           sparsity_images=1348, train_eval_batches=4, device="auto",
                                           runs=(RunSpec("small", "constant", 0.01),
                                                 RunSpec("small + label noise 30%", "constant", 0.01,
                                                         label_noise=0.3),
                                                 RunSpec("large, 50%", "exp-warmup", 0.75, 0.5))),
                              "Beyond the paper (its Prop. 1: SGD's noise is label noise): the small constant step "
                              "with 30% of each batch's labels resampled, beside the small step and the large step "
                              "decayed at 50%, on the digits: minutes on a CPU. Measured once (seed 0, "
                              "benchmarks/results/resnet_label_noise.json): the label noise leaves the features as "
                              "dense as the small step's (block-4 sparsity 0.64 vs 0.62) where the large step reaches "
                              "0.05: at this step and length, label noise alone does not sparsify"),
    "fig7-plain": Preset(ResNetConfig(dataset="cifar10", setting="plain", runs=_runs(0.01, 0.75, "exp-warmup"),
                                      **_CIFAR),
                         "Fig. 7 left: ResNet-18, CIFAR-10, plain SGD; 0.01 vs 0.75 exp-warmup to 10/30/50% (GPU)"),
    "fig7-sota": Preset(ResNetConfig(dataset="cifar10", setting="sota", runs=_runs(0.002, 0.05, "step"), **_CIFAR),
                        "Fig. 7 right: ResNet-18, CIFAR-10, momentum + wd + augmentation; 0.002 vs 0.05 (GPU)"),
    "fig13": Preset(ResNetConfig(dataset="cifar100", setting="plain", runs=_runs(0.01, 0.75, "exp-warmup"),
                                 **{**_CIFAR, "model": "resnet34"}),
                    "Fig. 13 left: ResNet-34, CIFAR-100, plain SGD (GPU)"),
    "fig13-sota": Preset(ResNetConfig(dataset="cifar100", setting="sota", runs=_runs(0.002, 0.05, "step"),
                                      **{**_CIFAR, "model": "resnet34"}),
                         "Fig. 13 right: ResNet-34, CIFAR-100, momentum + wd + augmentation (GPU)"),
}




def lr_schedule(spec: RunSpec, iterations: int) -> np.ndarray:
    """The step size of each iteration, from progress t = iteration / iterations."""
    t = np.arange(iterations) / iterations
    if spec.schedule == "constant":
        return schedules.constant(spec.lr, iterations)
    if spec.schedule == "exp-warmup":
        return schedules.exp_warmup(spec.lr, t, spec.at, base=spec.base)
    if spec.schedule == "cosine":
        return schedules.cosine(spec.lr, t)
    return schedules.piecewise(spec.lr, t, spec.at)


def decay_steps(spec: RunSpec, iterations: int) -> list[int]:
    """Iterations at which the schedule drops (for the charts' markers)."""
    return [] if spec.schedule in ("constant", "cosine") else sorted({int(math.ceil(spec.at * iterations)),
                                                           int(math.ceil(0.9 * iterations))})


