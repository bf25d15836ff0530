"""The paper's figures as the reproduction sees them: which preset shows each, which setting is its seed, whether
its claims are checked (the experiment module's CLAIMS) or it is only shown, and, for the ResNets, what a run costs.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine import registry


@dataclass(frozen=True)
class Figure:
    """One figure (or proposition) of the paper and the preset that reproduces it."""

    key: str                 # what --only names
    label: str               # "Fig. 2"
    section: str             # where it sits in the paper
    experiment: str
    preset: str
    seed_field: str          # the setting a seed sweep varies (its preset value is the first seed)
    family: str = "small"    # "small": runs on a CPU in minutes; "resnet": a GPU (or the CPU demo)
    note: str = ""           # for a figure without a quantitative claim: what it shows, and where
    sweep_map: str = ""      # a sweep preset (map-...) showing how the rate moves with a setting

    @property
    def checked(self) -> bool:
        """Whether the experiment defines claims for this preset (else it is shown, not checked)."""
        return self.preset in getattr(registry.get(self.experiment), "CLAIMS", {})


FIGURES = (
    Figure("prop3", "Prop. 3", "Sec. 2.2", "bouncing", "prop3", "seed"),
    Figure("fig2", "Fig. 2", "Sec. 3.1", "diagonal", "fig2", "first_seed", sweep_map="map-fig2"),
    Figure("fig3", "Fig. 3", "Sec. 3.1", "diagonal", "fig3", "first_seed",
           note="GD and SGD take different paths on the plane through the init: a picture, no threshold to check"),
    Figure("sde", "Eq. 8 (SDE)", "Sec. 3.1", "diagonal", "sde", "first_seed",
           note="beyond the paper's figures: the SDE beside SGD and GD, shown only"),
    Figure("fig8", "Fig. 8", "App. C", "diagonal", "fig8", "first_seed"),
    Figure("fig4", "Fig. 4", "Sec. 3.2", "relu1d", "fig4", "seed", sweep_map="map-warmup"),
    Figure("fig9", "Fig. 9", "App. C", "relu1d", "fig9", "seed", sweep_map="map-warmup"),
    Figure("fig10", "Fig. 10", "App. C", "relu1d", "fig4", "seed",
           note="Fig. 4's predictors over training (first simplify, then fit): the snapshots on Fig. 4's page"),
    Figure("fig5", "Fig. 5", "Sec. 3.2", "teacher_student", "fig5", "seed", sweep_map="map-fig5"),
    Figure("fig6", "Fig. 6", "Sec. 3.2", "teacher_student", "fig6", "seed"),
    Figure("fig11", "Fig. 11", "App. C", "teacher_student", "fig5", "seed",
           note="Fig. 5's runs as loss curves: shown on Fig. 5's page"),
    Figure("fig7-plain", "Fig. 1, 7 (left), 12", "Sec. 1, 3.3", "resnet", "fig7-plain", "runs.0.seed", "resnet",
           note="ResNet-18 on CIFAR-10, plain SGD: no quantitative claim is registered for the ResNets"),
    Figure("fig7-sota", "Fig. 7 (right), 14", "Sec. 3.3", "resnet", "fig7-sota", "runs.0.seed", "resnet",
           note="ResNet-18 on CIFAR-10, momentum + wd + augmentation: no quantitative claim is registered"),
    Figure("fig13", "Fig. 13 (left), 14", "App. C", "resnet", "fig13", "runs.0.seed", "resnet",
           note="ResNet-34 on CIFAR-100, plain SGD: no quantitative claim is registered"),
    Figure("fig13-sota", "Fig. 13 (right)", "App. C", "resnet", "fig13-sota", "runs.0.seed", "resnet",
           note="ResNet-34 on CIFAR-100, momentum + wd + augmentation: no quantitative claim is registered"),
)
CPU_DEMO = Figure("cpu-demo", "Fig. 7 (CPU demo)", "Sec. 3.3", "resnet", "cpu-demo", "runs.0.seed", "resnet",
                  note="the CPU stand-in for Fig. 7 (digits, width 16): shown, no quantitative claim")

# Seconds per epoch on one GPU, bf16, batch 256, data on the device. NOT measured (no GPU has been lent to this
# project yet; benchmarks/gpu_check.py measures it): an assumption from public ResNet-18/34 CIFAR timings on
# A100-class cards, used only to say what the ResNet rows would cost before starting them.
ASSUMED_EPOCH_SECONDS = {"resnet18": 15.0, "resnet34": 25.0}
# What each full ResNet preset trains: (model, runs, epochs per run). Kept here so that pricing the skipped rows
# does not load torch (the ResNet module does, which is most of a warm rerun's time); tests/test_reproduce.py
# checks it against the presets.
RESNET_WORK = {"fig7-plain": ("resnet18", 4, 100), "fig7-sota": ("resnet18", 4, 100),
               "fig13": ("resnet34", 4, 100), "fig13-sota": ("resnet34", 4, 100)}


def by_key(keys: list[str] | None) -> list[Figure]:
    """The figures named (all when None), in the paper's order; ValueError naming an unknown key."""
    if not keys:
        return list(FIGURES)
    known = {f.key: f for f in (*FIGURES, CPU_DEMO)}
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise ValueError(f"--only: unknown figure {', '.join(unknown)}: expected some of {', '.join(known)}")
    return [known[k] for k in keys]


def gpu_hours(figure: Figure, seeds: int) -> float:
    """GPU-hours `seeds` seeds of a full ResNet figure would take (see ASSUMED_EPOCH_SECONDS)."""
    model, runs, epochs = RESNET_WORK[figure.preset]
    return seeds * runs * epochs * ASSUMED_EPOCH_SECONDS[model] / 3600
