"""ResNets on CIFAR: large step sizes learn sparse features (paper Sec. 3.3, Fig. 1, 7, 12, 13, 14).

CIFAR-layout ResNet-18/34 trained with SGD, batch 256, cross-entropy, under the paper's schedules as
functions of progress t = iteration / iterations: constant; exponential warmup lr0 1.05**(100 t)
until s, then /10 until 0.9, then /100 ("plain"); or lr until s, /10 until 0.9, /100 ("step", the
state-of-the-art schedule). Setting "plain" has no momentum, weight decay or augmentation; "sota"
has momentum 0.9, weight decay 5e-4, random crop (pad 4) and horizontal flip. Every `eval_every`
iterations: train loss/error on a few batches, test error, feature sparsity (c = 0.95, rows not
normalized, <= 1000 random units) at the end of super-blocks 1-4, filters and distance from init.

Data stay resident on the device as uint8 and are augmented there. The GPU path is four settings that
run on a CPU too (tests/test_resnet.py trains a CPU epoch with each): `precision` bf16 (autocast of
the forward; weights, optimizer and loss in float32), `memory_format` channels_last, `fused_sgd`,
and `compile` (torch.compile). Their "auto" is bf16 + channels_last + fused on CUDA and plain
float32 on a CPU, so a preset gives today's numbers on each device and a GPU differs only in the device.
A run saves model, optimizer, RNG state and its history every epoch in `workdir` (tensors loaded with
weights_only, the history as JSON, the last two epochs kept), and the same config resumes from the newest
one that reads back intact.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from engine.core.recording import Recorder
from engine.resnet import cifar
from engine.resnet.checkpoints import replay, saved_states, why_failed
from engine.resnet.config import PRESETS, Config, ResNetConfig, decay_steps  # noqa: F401 (Config, PRESETS: the registry's)
from engine.resnet.device import DeviceData, determinism, fast_path, pick_device
from engine.resnet.training import Training

TITLE = "ResNets on CIFAR: large step sizes learn sparse features (Fig. 1, 7, 12, 13, 14)"
CHECKPOINTS = True  # the job manager gives each job a work folder: a run saves its epochs there and resumes


def lane(config: ResNetConfig) -> str:
    """Every ResNet job queues in the long lane (one at a time on the one GPU)."""
    return "long"


def preflight(c: ResNetConfig) -> str | None:
    """Why `c` cannot run here, before any work: its CIFAR data set is not on disk, or its data_dir lies outside
    the data root, or it asks the CPU for channels_last or compile at a width where they crash (None when it can
    run)."""
    try:
        fast_path(c, torch.device("cuda" if c.device != "cpu" and torch.cuda.is_available() else "cpu"))
    except ValueError as exc:
        return str(exc)
    if c.dataset == "digits" or cifar.available(c.dataset, c.data_dir):
        return None
    if c.data_dir:
        try:
            cifar.resolve_folder(c.data_dir)  # outside the data root, or a folder that does not exist: its message
        except (ValueError, OSError, RuntimeError) as exc:
            return str(exc)
    where = f"data_dir={c.data_dir!r}" if c.data_dir else "the data root"
    return (f"{cifar.LABELS[c.dataset]} is not on disk in {where}: download it (the ResNet page's button or "
            f"`python -m engine.resnet.cifar {c.dataset}`), or choose the digits data set")




def run(c: ResNetConfig, rec: Recorder, workdir: str | Path | None = None) -> None:
    """Train every run of the group one after the other, resuming from `workdir` when it holds epochs."""
    device = pick_device(c.device)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        # Measured on the 2-core dev machine: 2 intra-op threads give 1.7x when a core is idle but 8x less
        # (OpenMP threads spinning) when anything else runs, and the app's server always does.
        torch.set_num_threads(1)
    try:
        with determinism(c.deterministic, device):
            _run_group(c, rec, device, Path(workdir) if workdir is not None else None)
    finally:
        torch.set_num_threads(threads)


def _run_group(c: ResNetConfig, rec: Recorder, device: torch.device, work: Path | None) -> None:
    path = fast_path(c, device)  # raises, before the data are read, for a setting this machine cannot run
    data = DeviceData(cifar.load(c.dataset, c.data_dir), device, c)
    plan = [(spec, spec.seed + k) for spec in c.runs for k in range(c.seeds)]
    per_run = (len(data.train_y) // c.batch_size) * c.epochs
    if per_run == 0:
        raise ValueError(f"batch_size={c.batch_size} is above the {len(data.train_y)} training images")
    rec.snapshot(None, "setup", dict(device=str(device), iterations=per_run, iterations_per_epoch=per_run // c.epochs,
                                     train_images=len(data.train_y), test_images=len(data.test_y),
                                     image_shape=list(data.shape), **c.optim, **path))
    for k, (spec, seed) in enumerate(plan):
        name = spec.name if c.seeds == 1 else f"{spec.name} (seed {seed})"
        idx = rec.add_run(name, label=spec.name, seed=seed, spec=spec.to_dict())
        rec.snapshot(idx, "decay_steps", decay_steps(spec, per_run))
        training = _resume(Training, (c, spec, seed, data, rec, idx, work / f"run{k}" if work is not None else None,
                                      k * per_run, len(plan) * per_run))
        if training is None:  # it had finished: its record is back in the recorder
            continue
        try:
            status, message = training.train()
        finally:
            training.flush()  # a cancel returns once the epoch being saved is on disk
        rec.finish_run(idx, status, message)
        training.save(done=True)
    if work is not None:  # the whole group is done: its result goes to the store, a new run starts afresh
        for leftover in work.glob("run*"):
            leftover.unlink(missing_ok=True)


def _resume(make: Callable[..., Training], args: tuple) -> Training | None:
    """A Training (`make(*args)`) continued from its newest saved state that reads back and fits; a damaged one
    falls back to the one before, and when none does the run starts from scratch, with a `checkpoint_notice`.
    None when the run had finished (its record is replayed into the recorder)."""
    training = make(*args)
    rec, idx, prefix = training.rec, training.run, training.path
    problems = []
    for label, load in saved_states(prefix) if prefix is not None else ():
        try:
            saved = load()
            if not saved["done"]:
                training.restore(saved)
        except Exception as exc:  # damaged, truncated, planted or foreign: try the one before
            problems.append(f"{label} ({why_failed(exc)})")
            training = make(*args)
            continue
        if saved["done"]:
            replay(rec, idx, saved["run"])
            rec.finish_run(idx, saved["run"]["status"], saved["run"]["message"])
            return None
        if problems:
            rec.snapshot(idx, "checkpoint_notice", f"unreadable checkpoint skipped: {'; '.join(problems)}; resumed "
                                                   f"from epoch {training.epoch}")
        rec.snapshot(idx, "resumed_from_epoch", training.epoch)
        return training
    if problems:
        rec.snapshot(idx, "checkpoint_notice", f"no saved epoch could be read ({'; '.join(problems)}): the run "
                                               "restarted from scratch")
    return training
