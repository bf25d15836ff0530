"""One ResNet run (a schedule and a seed): model, optimizer and device RNG, trained epoch by epoch with evaluation
and checkpoints."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from engine.core.recording import Recorder
from engine.resnet.checkpoints import replay, to_cpu, why_failed, write_checkpoint
from engine.resnet.config import ResNetConfig, RunSpec, lr_schedule
from engine.resnet.device import DeviceData, fast_path
from engine.resnet.measures import autocast, block_sparsity, distance_from_init, filters, loss_and_error, pick_units
from engine.resnet.model import resnet
from engine.resnet.sharpness import hessian_vector_product, stability_limit, top_eigenvalue


# ----------------------------------------------------------------------------- training
def noisy_labels(y: torch.Tensor, share: float, num_classes: int, gen: torch.Generator) -> torch.Tensor:
    """Label-noise SGD's labels for one batch: each label, with probability `share`, replaced by a class drawn
    uniformly at random (the run's generator: a resumed run draws the same noise)."""
    if share <= 0:
        return y
    swap = torch.rand(y.shape, device=y.device, generator=gen) < share
    return torch.where(swap, torch.randint(0, num_classes, y.shape, device=y.device, generator=gen), y)


def averaged(model: torch.nn.Module, c: ResNetConfig) -> AveragedModel | None:
    """The run's averaged weights (BN statistics included): an exponential moving average (decay τ) or SWA's
    plain average; None without averaging."""
    if c.average == "ema":
        return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(c.ema_decay), use_buffers=True).eval()
    if c.average == "swa":
        return AveragedModel(model, use_buffers=True).eval()
    return None


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
        self.avg = averaged(self.model, c)
        self.sharp_vector: torch.Tensor | None = None  # the last λ_max eigenvector: the next estimate starts there
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
        if self.avg is not None:
            self.avg.load_state_dict(saved["avg"])  # a KeyError when the saved run did not average: start afresh
        self.epoch = saved["epoch"]
        replay(self.rec, self.run, saved["run"])

    def save(self, done: bool = False) -> None:
        """Write this run's state; the write of an epoch overlaps the next epoch's training. A write that fails
        (a full disk) becomes the run's `checkpoint_warning` snapshot, and training goes on."""
        if self.path is None:
            return
        record = self.rec.view()["runs"][self.run]
        tensors = None  # a finished run needs only its history: keep the cache small
        if not done:
            state = dict(model=self.model.state_dict(), opt=self.opt.state_dict(), gen=self.gen.get_state())
            if self.avg is not None:
                state["avg"] = self.avg.state_dict()
            tensors = to_cpu(state)
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
            self.warning = (f"{what} could not be saved ({why_failed(exc)}): after a restart the run resumes from an "
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
        y = noisy_labels(y, self.spec.label_noise, self.data.num_classes, self.gen)
        with autocast(self.data):
            loss = F.cross_entropy(self.forward(x).float(), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.avg is not None and self.c.average == "ema":
            self.avg.update_parameters(self.model)
        return loss.detach()

    def end_epoch(self, epoch: int) -> None:
        """After epoch `epoch` (counted from 1): SWA averages the weights once the share swa_start has passed."""
        if self.avg is not None and self.c.average == "swa" and epoch / self.c.epochs > self.c.swa_start:
            self.avg.update_parameters(self.model)

    def sharpness(self, it: int) -> dict:
        """λ_max of the training loss's Hessian (eval-mode batch norm) on the first evaluation batch, and the edge of
        stability (2 + 2β)/η at iteration `it`."""
        d, c = self.data, self.c
        idx = d.eval_idx[:c.batch_size]
        hvp = hessian_vector_product(self.model, d.inputs(d.train_x[idx]), d.train_y[idx])
        size = sum(p.numel() for p in self.model.parameters())
        gen = torch.Generator(device=d.device).manual_seed(self.seed)
        value, self.sharp_vector = top_eigenvalue(hvp, size, self.sharp_vector, c.sharpness_iters, generator=gen,
                                                  device=d.device)
        lr = float(self.lrs[min(it, self.iterations - 1)])
        return dict(sharpness=value, stability_limit=stability_limit(lr, c.optim["momentum"]))

    def evaluate(self, it: int, images_per_s: float | None) -> dict:
        """Every metric of one checkpoint, logged at iteration `it`."""
        m, d, c = self.model, self.data, self.c
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
            if c.sharpness_every and (it // c.eval_every) % c.sharpness_every == 0:
                row.update(self.sharpness(it))
            if self.avg is not None and int(self.avg.n_averaged) > 0:
                a = self.avg.module
                avg_train = loss_and_error(a, d, d.train_x[d.eval_idx], d.train_y[d.eval_idx], self.rec)
                avg_test = loss_and_error(a, d, d.test_x, d.test_y, self.rec)
                row.update(avg_train_loss=avg_train[0], avg_train_error=avg_train[1], avg_test_loss=avg_test[0],
                           avg_test_error=avg_test[1])
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
            self.end_epoch(self.epoch)
            paused = time.perf_counter()
            self.save()
            clock += time.perf_counter() - paused  # saving is not training time
        return "done", ""


