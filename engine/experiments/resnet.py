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

import hashlib
import io
import json
import math
import os
import pickle
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from engine import cifar, schedules
from engine.config import Config, check_runs, check_work, param
from engine.experiments import Preset
from engine.recording import RUN_STATUSES, Recorder
from engine.resnet import DEPTHS, ResNet, block_shapes, resnet
from engine.sparsity import feature_sparsity

TITLE = "ResNets on CIFAR: large step sizes learn sparse features (Fig. 1, 7, 12, 13, 14)"
SCHEDULES = ("constant", "exp-warmup", "step")
SETTINGS = {"plain": dict(momentum=0.0, weight_decay=0.0, augment=False),
            "sota": dict(momentum=0.9, weight_decay=5e-4, augment=True)}
SPARSITY_THRESHOLD, SPARSITY_UNITS = 0.95, 1000
PRECISIONS, MEMORY_FORMATS, SWITCH = ("auto", "float32", "bf16"), ("auto", "contiguous", "channels_last"), \
    ("auto", "on", "off")
CPU_MIN_WIDTH = 16  # channels_last or torch.compile on a CPU: see fast_path
FILTER_LAYERS = ("conv1", "layers.1.0.conv1")  # the stem and the first conv of super-block 2 (Fig. 12)
MAX_RUNS = 8        # runs in one job's table
MAX_WORK = 2_400    # epochs x runs x seeds of one job: Fig. 7/13 (100 x 4) at five seeds is 2,000
CHECKPOINTS = True  # the job manager gives each job a work folder: a run saves its epochs there and resumes


# ----------------------------------------------------------------------------- config
@dataclass(frozen=True)
class RunSpec(Config):
    name: str = param("small", help="run name shown in legends")
    schedule: str = param("constant", choices=SCHEDULES,
                          help="constant; exp-warmup: lr 1.05^(100 t) until s, /10 until 0.9, /100; step: lr until s, "
                               "/10 until 0.9, /100")
    lr: float = param(0.01, 1e-5, 10.0, step=0.001, log=True, label="step size η",
                      help="step size (the start of the warmup for exp-warmup)")
    at: float = param(1.0, 0.0, 1.0, step=0.05, label="decay time s",
                      help="warmup end / first decay, as a fraction s of training")
    base: float = param(1.05, 1.0, 1.2, step=0.005, label="warmup base", help="exp-warmup growth: lr * base^(100 t)")
    seed: int = param(0, 0, 10**6, step=1, help="seed of the init, the batch order and the augmentation")


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
    runs: tuple[RunSpec, ...] = field(default=_runs(0.01, 0.75, "exp-warmup"))

    run_type: ClassVar = RunSpec

    def check(self) -> None:
        if self.dataset == "digits" and self.batch_size > cifar.DIGITS_TRAIN:
            raise ValueError(f"batch_size={self.batch_size} is above the {cifar.DIGITS_TRAIN} training digits")
        check_runs(self, MAX_RUNS)
        check_work(MAX_WORK, epochs=self.epochs, runs=len(self.runs), seeds=self.seeds)

    @property
    def optim(self) -> dict:
        """momentum, weight_decay and augment of the setting."""
        return SETTINGS[self.setting]


Config = ResNetConfig

_CIFAR = dict(model="resnet18", width=64, epochs=100, batch_size=256, eval_every=200, sparsity_images=10_000,
              device="cuda")
PRESETS = {
    "cpu-demo": Preset(ResNetConfig(dataset="digits", width=16, epochs=20, batch_size=64, eval_every=20,
                                    sparsity_images=1348, train_eval_batches=4, device="auto",
                                    runs=_runs(0.01, 0.75, "exp-warmup")),
                       "digits 16x16, ResNet-18 width 16, 20 epochs, plain, Fig. 7's schedules: minutes on a CPU"),
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
            f"`python -m engine.cifar {c.dataset}`), or choose the digits data set")


def lr_schedule(spec: RunSpec, iterations: int) -> np.ndarray:
    """The step size of each iteration, from progress t = iteration / iterations."""
    t = np.arange(iterations) / iterations
    if spec.schedule == "constant":
        return schedules.constant(spec.lr, iterations)
    if spec.schedule == "exp-warmup":
        return schedules.exp_warmup(spec.lr, t, spec.at, base=spec.base)
    return schedules.piecewise(spec.lr, t, spec.at)


def decay_steps(spec: RunSpec, iterations: int) -> list[int]:
    """Iterations at which the schedule drops (for the charts' markers)."""
    return [] if spec.schedule == "constant" else sorted({int(math.ceil(spec.at * iterations)),
                                                           int(math.ceil(0.9 * iterations))})


def fast_path(c: ResNetConfig, device: torch.device) -> dict:
    """What the run does on `device`: precision ("float32" | "bf16"), channels_last, fused_sgd, compile. "auto"
    resolves to the GPU path (bf16, channels_last, fused) on CUDA and to float32, contiguous, for-loop SGD on
    a CPU; an explicit choice is honoured on both."""
    cuda = device.type == "cuda"
    path = dict(precision=("bf16" if cuda else "float32") if c.precision == "auto" else c.precision,
                channels_last=cuda if c.memory_format == "auto" else c.memory_format == "channels_last",
                fused_sgd=cuda if c.fused_sgd == "auto" else c.fused_sgd == "on",
                compile=c.compile)
    # oneDNN 3.x (torch's CPU convolutions) writes out of bounds in the weight gradient of a 1x1 stride-2 conv in
    # channels_last with fewer input channels than its block, 8 with AVX2 and 16 with AVX-512 (oneDNN issue 6035:
    # heap corruption or wrong gradients). The shortcut convs have `width` input channels, and torch.compile lays
    # convolutions out channels_last too: refused here, before any work.
    if not cuda and c.width < CPU_MIN_WIDTH and (path["channels_last"] or c.compile):
        what = "memory_format=channels_last" if path["channels_last"] else "compile=true"
        raise ValueError(f"{what} needs width >= {CPU_MIN_WIDTH} on a CPU (width={c.width}): torch's CPU "
                         "convolutions (oneDNN) corrupt memory in the weight gradient of a 1x1 stride-2 conv laid out "
                         "channels_last with fewer input channels (oneDNN issue 6035); use a larger width or "
                         "memory_format=contiguous without compile")
    return path


def pick_device(name: str) -> torch.device:
    """auto -> cuda when present; cuda without a GPU is a clear error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda but no CUDA GPU is available here: use device=auto or cpu "
                           "(and the cpu-demo preset for a small run)")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


# ----------------------------------------------------------------------------- data on the device
class DeviceData:
    """The data set resident on the training device as uint8, with fixed evaluation subsets and
    augmentation done there (no per-batch host-to-device copies)."""

    def __init__(self, data: cifar.ImageData, device: torch.device, c: ResNetConfig):
        self.device, self.num_classes, self.shape = device, data.num_classes, data.shape
        self.train_x, self.train_y = data.train_x.to(device), data.train_y.to(device)
        self.test_x, self.test_y = data.test_x.to(device), data.test_y.to(device)
        self.pad = max(1, self.shape[-1] // 8)  # 4 pixels on 32x32 CIFAR
        order = torch.randperm(len(self.train_y), generator=torch.Generator().manual_seed(0)).to(device)
        self.eval_idx = order[: min(c.train_eval_batches * c.batch_size, len(order))]
        self.sparsity_idx = order[: min(c.sparsity_images, len(order))]
        path = fast_path(c, device)
        self.channels_last, self.bf16 = path["channels_last"], path["precision"] == "bf16"

    def inputs(self, x_u8: torch.Tensor) -> torch.Tensor:
        """uint8 images -> float in [0, 1] (channels_last when the run uses it)."""
        x = x_u8.float().div_(255)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Random crop after zero padding by `pad` and a horizontal flip, in one gather."""
        n, c, h, w = x.shape
        p, dev = self.pad, x.device
        dy, dx = torch.randint(0, 2 * p + 1, (2, n, 1), device=dev, generator=gen)
        flip = torch.rand(n, 1, device=dev, generator=gen) < 0.5
        rows = dy + torch.arange(h, device=dev)
        cols = dx + torch.arange(w, device=dev)
        cols = torch.where(flip, cols.flip(1), cols)
        xp = F.pad(x, (p, p, p, p))
        return xp[torch.arange(n, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]

    def batches(self, batch_size: int, gen: torch.Generator, augment: bool):
        """One epoch of shuffled training batches (the last partial batch dropped)."""
        perm = torch.randperm(len(self.train_y), device=self.device, generator=gen)
        for i in range(len(perm) // batch_size):
            idx = perm[i * batch_size:(i + 1) * batch_size]
            x = self.train_x[idx]
            yield self.inputs(self.augment(x, gen) if augment else x), self.train_y[idx]


# ----------------------------------------------------------------------------- metrics
def _autocast(data: DeviceData):
    """bf16 autocast of a forward pass when the run's precision is bf16 (on CUDA or the CPU)."""
    return torch.autocast(data.device.type, dtype=torch.bfloat16, enabled=data.bf16)


@torch.no_grad()
def loss_and_error(model: ResNet, data: DeviceData, x: torch.Tensor, y: torch.Tensor, rec: Recorder,
                   batch: int = 1000) -> tuple[float, float]:
    """Mean cross-entropy and error rate of `model` (eval mode) on uint8 images x."""
    loss = torch.zeros((), device=x.device)
    wrong = torch.zeros((), device=x.device)
    for i in range(0, len(y), batch):
        with _autocast(data):
            logits = model(data.inputs(x[i:i + batch])).float()
        loss += F.cross_entropy(logits, y[i:i + batch], reduction="sum")
        wrong += (logits.argmax(1) != y[i:i + batch]).sum()
        rec.progress(rec.data["progress"])  # cancel point
    return float(loss) / len(y), float(wrong) / len(y)


def pick_units(model_name: str, width: int, shape: tuple[int, int, int], seed: int) -> list[tuple]:
    """Per super-block, at most 1000 random units (channel, row, column) of the flattened C*H*W output."""
    gen = torch.Generator().manual_seed(seed + 7919)
    out = []
    for c, h, w in block_shapes(model_name, width, shape[-1]):
        flat = torch.randperm(c * h * w, generator=gen)[:SPARSITY_UNITS].sort().values
        out.append((flat // (h * w), flat // w % h, flat % w))
    return out


@torch.no_grad()
def block_sparsity(model: ResNet, data: DeviceData, units: list[tuple], rec: Recorder, batch: int = 1000) -> list:
    """Feature sparsity (c = 0.95, rows not normalized) of each super-block's output on the sparsity images."""
    picked = [[] for _ in units]
    idx = data.sparsity_idx
    units = [tuple(t.to(data.device) for t in u) for u in units]
    for i in range(0, len(idx), batch):
        with _autocast(data):
            _, blocks = model(data.inputs(data.train_x[idx[i:i + batch]]), return_blocks=True)
        for acc, out, (ch, r, col) in zip(picked, blocks, units, strict=True):
            acc.append(out[:, ch, r, col].float())
        rec.progress(rec.data["progress"])
    return [feature_sparsity(torch.cat(acc), SPARSITY_THRESHOLD, normalize_rows=False) for acc in picked]


def filters(model: ResNet, init: dict[str, torch.Tensor]) -> dict:
    """Fig. 12: the stem's filters (out x in x 3 x 3) and 16 x 16 kernels of a later conv, at init and now."""
    weights = dict(model.named_parameters())
    out = {}
    for name in FILTER_LAYERS:
        now, first = weights[f"{name}.weight"], init[f"{name}.weight"]
        keep = (slice(None), slice(None)) if name == "conv1" else (slice(0, 16), slice(0, 16))
        out[name] = dict(init=first[keep].float().cpu().numpy(), now=now[keep].detach().float().cpu().numpy())
    return out


def distance_from_init(model: ResNet, init: dict[str, torch.Tensor]) -> dict[str, float]:
    """||W - W0|| / ||W0|| of each conv and linear weight."""
    weights = dict(model.named_parameters())
    dists = [((weights[k] - w0).norm() / w0.norm()) for k, w0 in init.items()]
    return dict(zip(init, torch.stack(dists).tolist(), strict=True))


# ----------------------------------------------------------------------------- checkpoints
def _cpu(obj):
    """A copy of a (nested) state with every tensor on the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu(v) for v in obj)
    return obj


# Epoch E of run k is two files in the job's work folder: run{k}-e{E:04d}.pt holds only tensors (model, optimizer,
# RNG state; read with weights_only=True) and run{k}-e{E:04d}.json the epoch, the history so far and the sha256 of
# the .pt. The .json is written last, so it commits the pair. A finished run keeps only run{k}-done.json.
KEEP_CHECKPOINTS = 2
CHECKPOINT_FORMAT = 1


def _atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file unique to this process and call: a crash leaves the old
    file, and two processes saving the same checkpoint never write into each other's file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _epochs_saved(prefix: Path) -> list[int]:
    """Epochs with a file of run `prefix` (e.g. work/run0) in its folder, oldest first."""
    pattern = re.compile(rf"{re.escape(prefix.name)}-e(\d+)\.(?:pt|json)")
    try:
        names = [p.name for p in prefix.parent.iterdir()]
    except OSError:
        return []
    return sorted({int(m.group(1)) for n in names if (m := pattern.fullmatch(n))})


def write_checkpoint(prefix: Path, epoch: int, record: dict, tensors: dict | None) -> None:
    """Save run `prefix` at `epoch`: its record (history, snapshots) as JSON and `tensors` (None: the run is
    finished, only its record is kept) with weights_only-loadable torch.save; older epochs beyond the last
    KEEP_CHECKPOINTS are deleted."""
    meta = dict(format=CHECKPOINT_FORMAT, epoch=epoch, done=tensors is None, run=record)
    if tensors is None:
        _atomic_write(prefix.with_name(f"{prefix.name}-done.json"), json.dumps(meta).encode())
        keep = set()
    else:
        buffer = io.BytesIO()
        torch.save(tensors, buffer)
        blob = buffer.getvalue()
        stem = prefix.with_name(f"{prefix.name}-e{epoch:04d}")
        _atomic_write(stem.with_suffix(".pt"), blob)
        meta["sha256"] = hashlib.sha256(blob).hexdigest()
        _atomic_write(stem.with_suffix(".json"), json.dumps(meta).encode())
        committed = [e for e in _epochs_saved(prefix) if prefix.with_name(f"{prefix.name}-e{e:04d}.json").exists()]
        keep = set(committed[-KEEP_CHECKPOINTS:]) | {epoch}
    for e in _epochs_saved(prefix):
        if e not in keep:
            for suffix in (".json", ".pt"):
                prefix.with_name(f"{prefix.name}-e{e:04d}{suffix}").unlink(missing_ok=True)


def _record_ok(run: object) -> bool:
    """Whether a saved run record can be replayed into a recorder as it is (so a bad one changes nothing)."""
    if not isinstance(run, dict) or run.get("status") not in RUN_STATUSES or not isinstance(run.get("message"), str):
        return False
    hist, snaps = run.get("history"), run.get("snapshots")
    if not isinstance(hist, dict) or not isinstance(snaps, dict) or not isinstance(hist.get("step"), list):
        return False
    return None not in hist["step"] and all(
        isinstance(col, list) and len(col) == len(hist["step"])
        and all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in col)
        for col in hist.values())


def read_checkpoint(json_path: Path) -> dict:
    """One saved state: {epoch, done, run} and, for an unfinished run, {model, opt, gen}. Raises (ValueError,
    OSError, pickle errors) when the files are damaged, do not match, or hold anything but tensors and data."""
    meta = json.loads(json_path.read_text())
    if not (isinstance(meta, dict) and meta.get("format") == CHECKPOINT_FORMAT and type(meta.get("epoch")) is int
            and isinstance(meta.get("done"), bool) and _record_ok(meta.get("run"))):
        raise ValueError("not a checkpoint record")
    if meta["done"]:
        return meta
    blob = json_path.with_suffix(".pt").read_bytes()
    if hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
        raise ValueError("the weights file is damaged (checksum mismatch)")
    tensors = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    if not isinstance(tensors, dict) or not {"model", "opt", "gen"} <= set(tensors):
        raise ValueError("the weights file lacks model, optimizer or RNG state")
    return {**meta, **tensors}


def saved_states(prefix: Path) -> Iterator[tuple[str, Callable[[], dict]]]:
    """Run `prefix`'s saved states, newest first (its finished record, then epochs): (label, load), where load()
    returns `read_checkpoint`'s state or raises."""
    done = prefix.with_name(f"{prefix.name}-done.json")
    if done.exists():
        yield "the finished run's record", lambda: read_checkpoint(done)
    for e in reversed(_epochs_saved(prefix)):
        path = prefix.with_name(f"{prefix.name}-e{e:04d}.json")
        yield f"epoch {e}", lambda path=path: read_checkpoint(path)


def _why(exc: BaseException) -> str:
    """A short reason for a failed save or load (the first line of the error)."""
    if isinstance(exc, pickle.UnpicklingError):
        return "it holds more than tensors and plain data: not loaded"
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else (str(exc) or type(exc).__name__)
    return text.strip().splitlines()[0][:160] if text.strip() else type(exc).__name__


def _replay(rec: Recorder, run: int, saved: dict) -> None:
    """Put a saved run's history and snapshots back into the recorder."""
    hist = saved["history"]
    for i, step in enumerate(hist["step"]):
        rec.log(run, step, **{k: col[i] for k, col in hist.items() if k != "step"})
    for key, value in saved["snapshots"].items():
        if isinstance(value, list) and value and isinstance(value[0], dict) and set(value[0]) == {"step", "value"}:
            for item in value:
                rec.snapshot(run, key, item["value"], step=item["step"])
        else:
            rec.snapshot(run, key, value)


# ----------------------------------------------------------------------------- training
class Training:
    """One run (a schedule and a seed): model, optimizer, device RNG, and its place in the job."""

    def __init__(self, c: ResNetConfig, spec: RunSpec, seed: int, data: DeviceData, rec: Recorder, run: int,
                 path: Path | None, offset: int, total: int):
        self.c, self.spec, self.seed, self.data, self.rec, self.run, self.path = c, spec, seed, data, rec, run, path
        self.offset, self.total = offset, total  # iterations of the job before this run, and in all
        dev = data.device
        self.model = resnet(c.model, data.num_classes, c.width, data.shape[0], seed).to(dev)
        if data.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.init = {k: v.detach().clone() for k, v in self.model.named_parameters() if v.ndim > 1}
        o, fused = c.optim, fast_path(c, dev)["fused_sgd"]
        self.opt = torch.optim.SGD(self.model.parameters(), lr=spec.lr, momentum=o["momentum"],
                                   weight_decay=o["weight_decay"], **({"fused": True} if fused else {}))
        self.forward = torch.compile(self.model) if c.compile else self.model
        self.gen = torch.Generator(device=dev).manual_seed(seed)
        self.per_epoch = len(data.train_y) // c.batch_size
        self.iterations = self.per_epoch * c.epochs
        self.lrs = lr_schedule(spec, self.iterations)
        self.units = pick_units(c.model, c.width, data.shape, seed)
        self.epoch = 0
        self.loss_buf = torch.zeros(max(c.eval_every, self.per_epoch) + 1, device=dev)
        self._writer: threading.Thread | None = None
        self.warning: str | None = None  # why the last checkpoint could not be written, if it could not

    def restore(self, saved: dict) -> None:
        """Continue from a saved epoch (raises, leaving the recorder untouched, when the state does not fit)."""
        if not 0 <= saved["epoch"] <= self.c.epochs:
            raise ValueError(f"epoch {saved['epoch']} is outside this run's {self.c.epochs} epochs")
        self.model.load_state_dict(saved["model"])
        self.opt.load_state_dict(saved["opt"])
        self.gen.set_state(saved["gen"])
        self.epoch = saved["epoch"]
        _replay(self.rec, self.run, saved["run"])

    def save(self, done: bool = False) -> None:
        """Write this run's state; the write of an epoch overlaps the next epoch's training. A write that fails
        (a full disk) becomes the run's `checkpoint_warning` snapshot, and training goes on."""
        if self.path is None:
            return
        record = self.rec.view()["runs"][self.run]
        tensors = None  # a finished run needs only its history: keep the cache small
        if not done:
            tensors = _cpu(dict(model=self.model.state_dict(), opt=self.opt.state_dict(), gen=self.gen.get_state()))
        self.flush()
        self._writer = threading.Thread(target=self._write, args=(self.epoch, record, tensors), daemon=True)
        self._writer.start()
        if done:
            self.flush()

    def _write(self, epoch: int, record: dict, tensors: dict | None) -> None:
        try:
            write_checkpoint(self.path, epoch, record, tensors)
        except Exception as exc:  # reported on the run, not as a thread traceback
            what = "the finished run's record" if tensors is None else f"epoch {epoch}"
            self.warning = (f"{what} could not be saved ({_why(exc)}): after a restart the run resumes from an "
                            "earlier epoch or from scratch")
            self.rec.snapshot(self.run, "checkpoint_warning", self.warning)

    def flush(self) -> None:
        """Wait for the checkpoint being written, if any."""
        if self._writer is not None:
            self._writer.join()
            self._writer = None

    def step(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> torch.Tensor:
        for group in self.opt.param_groups:
            group["lr"] = lr
        with _autocast(self.data):
            loss = F.cross_entropy(self.forward(x).float(), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def evaluate(self, it: int, images_per_s: float | None) -> dict:
        """Every metric of one checkpoint, logged at iteration `it`."""
        m, d = self.model, self.data
        m.eval()
        train_loss, train_error = loss_and_error(m, d, d.train_x[d.eval_idx], d.train_y[d.eval_idx], self.rec)
        row = dict(train_loss=train_loss, train_error=train_error)
        if math.isfinite(train_loss):
            test_loss, test_error = loss_and_error(m, d, d.test_x, d.test_y, self.rec)
            sparsity = block_sparsity(m, d, self.units, self.rec)
            row.update(test_loss=test_loss, test_error=test_error,
                       **{f"sparsity_block{i + 1}": s for i, s in enumerate(sparsity)})
            self.rec.snapshot(self.run, "filters", dict(step=it, layers=filters(m, self.init)))
            self.rec.snapshot(self.run, "distance_from_init", distance_from_init(m, self.init), step=it)
        m.train()
        lr = float(self.lrs[min(it, self.iterations - 1)])
        if images_per_s is not None:
            row["images_per_s"] = images_per_s
        self.rec.log(self.run, it, **row, lr=lr, epoch=it / self.per_epoch)
        return row

    def train(self) -> tuple[str, str]:
        """Train from the current epoch to the end; (status, message)."""
        c, rec = self.c, self.rec
        it = self.epoch * self.per_epoch
        if it == 0:
            self.evaluate(0, None)
        self.model.train()
        clock, images, n_buf, buf_start, rate = time.perf_counter(), 0, 0, it, None
        for epoch in range(self.epoch, c.epochs):
            for x, y in self.data.batches(c.batch_size, self.gen, c.optim["augment"]):
                self.loss_buf[n_buf].copy_(self.step(x, y, float(self.lrs[it])))  # no host sync per step
                it, n_buf, images = it + 1, n_buf + 1, images + len(y)
                speed = f", {rate:,.0f} images/s" if rate else ""
                rec.progress((self.offset + it) / self.total,
                             f"{self.rec.data['runs'][self.run]['name']}: epoch {epoch + 1}/{c.epochs}, "
                             f"iteration {it}/{self.iterations}{speed}")
                checkpoint = it % c.eval_every == 0 or it == self.iterations
                if checkpoint or n_buf == len(self.loss_buf):
                    losses = self.loss_buf[:n_buf].cpu().numpy()  # the one host sync between checkpoints
                    bad = np.flatnonzero(~np.isfinite(losses))
                    if bad.size:
                        step = buf_start + int(bad[0])
                        rec.log(self.run, step, train_loss=float("nan"), lr=float(self.lrs[step]),
                                epoch=step / self.per_epoch)
                        return "diverged", f"the training loss became non-finite at iteration {step}"
                    n_buf, buf_start = 0, it
                if checkpoint:
                    rate = images / (time.perf_counter() - clock)
                    row = self.evaluate(it, rate)
                    if not math.isfinite(row["train_loss"]):
                        return "diverged", f"the loss became non-finite by iteration {it}"
                    clock, images = time.perf_counter(), 0
            self.epoch = epoch + 1
            paused = time.perf_counter()
            self.save()
            clock += time.perf_counter() - paused  # saving is not training time
        return "done", ""


def run(c: ResNetConfig, rec: Recorder, workdir: str | Path | None = None) -> None:
    """Train every run of the group one after the other, resuming from `workdir` when it holds epochs."""
    device = pick_device(c.device)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        # Measured on the 2-core dev machine: 2 intra-op threads give 1.7x when a core is idle but 8x less
        # (OpenMP threads spinning) when anything else runs, and the app's server always does.
        torch.set_num_threads(1)
    try:
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
        idx = rec.add_run(name, seed=seed, spec=spec.to_dict())
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
            problems.append(f"{label} ({_why(exc)})")
            training = make(*args)
            continue
        if saved["done"]:
            _replay(rec, idx, saved["run"])
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
