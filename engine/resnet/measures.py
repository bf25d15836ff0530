"""What a ResNet run measures at each evaluation: loss and error, feature sparsity at the end of each super-block,
filters and each layer's distance from its init."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.core.recording import Recorder
from engine.core.sparsity import feature_sparsity
from engine.resnet.config import FILTER_LAYERS, SPARSITY_THRESHOLD, SPARSITY_UNITS
from engine.resnet.device import DeviceData
from engine.resnet.model import ResNet, block_shapes


# ----------------------------------------------------------------------------- metrics
def autocast(data: DeviceData):
    """bf16 autocast of a forward pass when the run's precision is bf16 (on CUDA or the CPU)."""
    return torch.autocast(data.device.type, dtype=torch.bfloat16, enabled=data.bf16)


@torch.no_grad()
def loss_and_error(model: ResNet, data: DeviceData, x: torch.Tensor, y: torch.Tensor, rec: Recorder,
                   batch: int = 1000) -> tuple[float, float]:
    """Mean cross-entropy and error rate of `model` (eval mode) on uint8 images x."""
    loss = torch.zeros((), device=x.device)
    wrong = torch.zeros((), device=x.device)
    for i in range(0, len(y), batch):
        with autocast(data):
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
        with autocast(data):
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


