"""Where a ResNet run trains: the device, the GPU fast path (bf16, channels_last, fused SGD, compile) and the data
set resident on the device as uint8, augmented there."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from engine.resnet import cifar
from engine.resnet.config import CPU_MIN_WIDTH, ResNetConfig


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


@contextmanager
def determinism(on: bool, device: torch.device) -> Iterator[None]:
    """While a run with `deterministic` trains: deterministic algorithms only (an op without one raises), cuDNN
    deterministic and not benchmarking, and cuBLAS given the fixed workspace its deterministic mode needs. These
    are process-wide switches, restored afterwards (a job running beside it meanwhile runs deterministically too)."""
    if not on:
        yield
        return
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
              torch.backends.cudnn.benchmark)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[1], before[2]


def pick_device(name: str) -> torch.device:
    """auto -> cuda when present; cuda without a GPU is a clear error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda but no CUDA GPU is available here: use device=auto or cpu "
                           "(and the cpu-demo preset for a small run)")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


# ----------------------------------------------------------------------------- data on the device
def training_subset(n: int, fraction: float) -> torch.Tensor:
    """The indices (sorted) of the training images a run with `train_fraction` = fraction uses: a random subset
    fixed by the data set alone (seed 1), so every run and seed of a group trains on the same images."""
    if fraction >= 1.0:
        return torch.arange(n)
    count = max(1, round(fraction * n))
    return torch.randperm(n, generator=torch.Generator().manual_seed(1))[:count].sort().values
class DeviceData:
    """The data set resident on the training device as uint8, with fixed evaluation subsets and
    augmentation done there (no per-batch host-to-device copies)."""

    def __init__(self, data: cifar.ImageData, device: torch.device, c: ResNetConfig):
        self.device, self.num_classes, self.shape = device, data.num_classes, data.shape
        keep = training_subset(len(data.train_y), c.train_fraction)
        self.train_x, self.train_y = data.train_x[keep].to(device), data.train_y[keep].to(device)
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


