"""CIFAR-layout ResNet-18/34 (He et al., 2016, as used in the paper's Sec. 3.3 and docs/experiments.md §5).

3x3 stride-1 stem without max-pool, BatchNorm, four super-blocks of basic blocks with widths
w, 2w, 4w, 8w, global average pooling and a linear head. Convolutions use Kaiming-normal (fan_out)
init. `forward(x, return_blocks=True)` also returns the post-ReLU output of each super-block from the
same forward pass (what the feature sparsity coefficient is measured on).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

DEPTHS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN) shortcut, ReLU after the sum."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet with basic blocks; `depths` blocks per super-block, base width `width`."""

    def __init__(self, depths: tuple[int, ...], num_classes: int, width: int = 64, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers, c_in = [], width
        for i, depth in enumerate(depths):
            c_out = width * 2**i
            blocks = []
            for j in range(depth):
                blocks.append(BasicBlock(c_in, c_out, 2 if (i > 0 and j == 0) else 1))
                c_in = c_out
            layers.append(nn.Sequential(*blocks))
        self.layers = nn.ModuleList(layers)
        self.linear = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor, return_blocks: bool = False):
        """Logits, or (logits, [post-ReLU output of super-block 1..4]) with `return_blocks`."""
        out = F.relu(self.bn1(self.conv1(x)))
        blocks = []
        for layer in self.layers:
            out = layer(out)
            blocks.append(out)
        logits = self.linear(out.mean((2, 3)))  # global average pooling (adaptive_avg_pool2d's CUDA backward
                                                # is not deterministic)
        return (logits, blocks) if return_blocks else logits

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Kaiming-normal (fan_out) convs, BN at (1, 0), PyTorch's default linear init; all drawn from
        `generator` so that init is a function of the seed alone (jobs share the global RNG)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=generator)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
                m.reset_running_stats()
            elif isinstance(m, nn.Linear):
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
                bound = 1 / math.sqrt(m.in_features)
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)


def resnet(name: str, num_classes: int, width: int = 64, in_channels: int = 3, seed: int = 0) -> ResNet:
    """ResNet-18 or ResNet-34 ('resnet18' | 'resnet34'), initialized from `seed` on the CPU."""
    if name not in DEPTHS:
        raise ValueError(f"model={name!r} is not allowed: expected one of {', '.join(DEPTHS)}")
    model = ResNet(DEPTHS[name], num_classes, width, in_channels)
    model.reset_parameters(torch.Generator().manual_seed(seed))
    return model


def block_shapes(name: str, width: int, image_size: int) -> list[tuple[int, int, int]]:
    """(channels, height, width) of each super-block's output for a square input of `image_size`."""
    shapes, size = [], image_size
    for i in range(len(DEPTHS[name])):
        if i > 0:
            size = (size + 1) // 2
        shapes.append((width * 2**i, size, size))
    return shapes
