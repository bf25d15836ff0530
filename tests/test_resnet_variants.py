"""The ResNet variants beyond plain SGD (label-noise SGD, EMA / SWA of the weights, a training subset, momentum and
weight decay overrides, a cosine schedule), each against its formula on a tiny case."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.core.recording import Recorder
from engine.resnet import cifar
from engine.resnet import experiment as R
from engine.resnet.checkpoints import read_checkpoint
from engine.resnet.config import ResNetConfig, RunSpec, lr_schedule
from engine.resnet.device import DeviceData, training_subset
from engine.resnet.sharpness import hessian_vector_product, stability_limit, top_eigenvalue
from engine.resnet.training import Training, noisy_labels
from engine.sweeps import grid as sweeps


def tiny(**changes) -> ResNetConfig:
    settings = dict(width=4, epochs=2, eval_every=10, sparsity_images=128, device="cpu", batch_size=64,
                    runs=(RunSpec("small", "constant", 0.05),))
    return R.PRESETS["cpu-demo"].config.replace(**{**settings, **changes})


def training(c: ResNetConfig) -> Training:
    data = DeviceData(cifar.load(c.dataset), torch.device("cpu"), c)
    per_run = (len(data.train_y) // c.batch_size) * c.epochs
    rec = Recorder("resnet", c.to_dict())
    return Training(c, c.runs[0], 0, data, rec, rec.add_run("small"), None, 0, per_run)


def first_batch(t: Training) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(123)
    return next(t.data.batches(t.c.batch_size, gen, False))


def test_label_noise_swaps_the_share_asked_for_and_none_at_zero():
    y = torch.zeros(20_000, dtype=torch.long)
    gen = torch.Generator().manual_seed(0)
    assert noisy_labels(y, 0.0, 10, gen) is y
    noisy = noisy_labels(y, 0.3, 10, gen)
    # a label is redrawn with probability 0.3 and lands on another class with probability 9/10
    assert abs((noisy != 0).float().mean().item() - 0.3 * 0.9) < 0.01
    assert set(noisy.unique().tolist()) == set(range(10))


def test_a_label_noise_step_is_an_sgd_step_on_the_noisy_labels():
    t = training(tiny(runs=(RunSpec("small, label noise", "constant", 0.05, label_noise=0.5),)))
    x, y = first_batch(t)
    model = copy.deepcopy(t.model)
    gen = torch.Generator().set_state(t.gen.get_state())
    t.step(x, y, 0.05)
    by_hand = noisy_labels(y, 0.5, t.data.num_classes, gen)
    assert (by_hand != y).any()
    loss = F.cross_entropy(model(t.data.inputs(x) if x.dtype == torch.uint8 else x), by_hand)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    for (name, p), p0, g in zip(t.model.named_parameters(), model.parameters(), grads, strict=True):
        torch.testing.assert_close(p, p0 - 0.05 * g, rtol=1e-6, atol=1e-7, msg=name)


def test_weight_decay_and_momentum_override_the_setting():
    assert tiny().optim == dict(momentum=0.0, weight_decay=0.0, augment=False)
    assert tiny(setting="sota").optim == dict(momentum=0.9, weight_decay=5e-4, augment=True)
    assert tiny(setting="sota", momentum=0.0, weight_decay=1e-3).optim == dict(momentum=0.0, weight_decay=1e-3,
                                                                             augment=True)
    t = training(tiny(weight_decay=0.01))
    x, y = first_batch(t)
    model = copy.deepcopy(t.model)
    t.step(x, y, 0.05)
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    for p, p0, g in zip(t.model.parameters(), model.parameters(), grads, strict=True):
        torch.testing.assert_close(p, p0 - 0.05 * (g + 0.01 * p0), rtol=1e-6, atol=1e-7)


def test_the_ema_is_the_hand_computed_average_of_the_iterates():
    tau = 0.9
    t = training(tiny(average="ema", ema_decay=tau))
    gen = torch.Generator().manual_seed(5)
    iterates = []
    for k, (x, y) in enumerate(t.data.batches(t.c.batch_size, gen, False)):
        if k == 4:
            break
        t.step(x, y, 0.05)
        iterates.append([p.detach().clone() for p in t.model.parameters()])
    by_hand = iterates[0]  # the first update copies the weights, then w_avg <- tau w_avg + (1 - tau) w
    for w in iterates[1:]:
        by_hand = [tau * a + (1 - tau) * b for a, b in zip(by_hand, w, strict=True)]
    for a, b in zip(t.avg.module.parameters(), by_hand, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_swa_averages_the_epochs_after_its_start_equally():
    t = training(tiny(average="swa", swa_start=0.25, epochs=4))
    snapshots = []
    for epoch in range(1, 5):
        with torch.no_grad():
            for p in t.model.parameters():
                p.add_(0.1 * epoch)  # a stand-in for an epoch of training: the weights move by a known amount
        t.end_epoch(epoch)
        if epoch / 4 > 0.25:
            snapshots.append([p.detach().clone() for p in t.model.parameters()])
    assert int(t.avg.n_averaged) == 3
    for a, *ws in zip(t.avg.module.parameters(), *snapshots, strict=True):
        torch.testing.assert_close(a, sum(ws) / 3)


def test_a_run_with_averaging_records_the_averaged_weights_metrics():
    c = tiny(average="ema", ema_decay=0.9, epochs=1)
    rec = Recorder("resnet", c.to_dict())
    R.run(c, rec, None)
    run = rec.view()["runs"][0]
    assert run["status"] == "done"
    hist = run["history"]
    errors = [v for v in hist["avg_test_error"] if v is not None]
    assert errors and all(0.0 <= v <= 1.0 for v in errors)
    assert hist["avg_test_error"][0] is None  # nothing averaged before the first step


def test_the_averaged_weights_are_saved_with_an_epoch_and_restored(tmp_path):
    c = tiny(average="ema", ema_decay=0.9)
    t = training(c)
    t.path = tmp_path / "run0"
    gen = torch.Generator().manual_seed(5)
    for k, (x, y) in enumerate(t.data.batches(c.batch_size, gen, False)):
        if k == 3:
            break
        t.step(x, y, 0.05)
    t.epoch = 1
    t.save()
    t.flush()
    resumed = training(c)
    resumed.restore(read_checkpoint(tmp_path / "run0-e0001.json"))
    assert int(resumed.avg.n_averaged) == 3
    for a, b in zip(resumed.avg.module.parameters(), t.avg.module.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_training_subset_is_fixed_and_of_the_share_asked_for():
    keep = training_subset(1000, 0.25)
    assert len(keep) == 250 and len(set(keep.tolist())) == 250 and keep.equal(training_subset(1000, 0.25))
    assert training_subset(1000, 1.0).equal(torch.arange(1000))
    full, part = training(tiny()), training(tiny(train_fraction=0.5))
    assert len(part.data.train_y) == round(0.5 * len(full.data.train_y))
    assert len(part.data.test_y) == len(full.data.test_y)  # the test set is whole


def test_the_cosine_schedule_anneals_to_zero():
    lrs = lr_schedule(RunSpec("cos", "cosine", 0.4), 101)
    t = np.arange(101) / 101
    np.testing.assert_allclose(lrs, 0.4 * (1 + np.cos(math.pi * t)) / 2)
    assert lrs[0] == pytest.approx(0.4) and lrs[-1] < 1e-3


@pytest.mark.parametrize("axis", ["runs.0.label_noise=0,0.2", "train_fraction=0.5,1", "weight_decay=0,0.0005",
                                  "momentum=0,0.9", "ema_decay=0.99,0.999", "swa_start=0.5,0.75"])
def test_the_variants_are_sweep_axes(axis):
    sweep = sweeps.build("resnet", "cpu-demo", axes=[axis], seeds=1)
    field, values = axis.split("=")
    get = (lambda c: c.runs[0].label_noise) if field.startswith("runs.") else (lambda c: getattr(c, field))
    assert [get(c) for c in sweep.configs()] == [float(v) for v in values.split(",")]


# ----------------------------------------------------------------------------- sharpness
def test_lanczos_on_hessian_vector_products_finds_the_dense_hessians_top_eigenvalue():
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                          nn.Linear(12, 4)).double().eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # running statistics that are not the defaults
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x, y = torch.randn(16, 1, 8, 8, dtype=torch.float64), torch.randint(0, 4, (16,))
    names = [n for n, _ in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    sizes = [p.numel() for p in model.parameters()]
    shapes = [p.shape for p in model.parameters()]

    def loss(v):
        params = {n: t.view(s) for n, t, s in zip(names, torch.split(v, sizes), shapes, strict=True)}
        buffers = dict(model.named_buffers())
        return F.cross_entropy(torch.func.functional_call(model, (params, buffers), (x,)), y)

    dense = torch.autograd.functional.hessian(loss, flat)
    expected = torch.linalg.eigvalsh(dense)[-1].item()
    hvp = hessian_vector_product(model, x, y)
    value, vector = top_eigenvalue(hvp, flat.numel(), iters=flat.numel(), tol=1e-10,
                                   generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert value == pytest.approx(expected, rel=1e-4)
    torch.testing.assert_close(hvp(vector), expected * vector, rtol=1e-3, atol=1e-6)
    # warm-started from its own eigenvector, a few steps suffice
    again, _ = top_eigenvalue(hvp, flat.numel(), start=vector, iters=3)
    assert again == pytest.approx(expected, rel=1e-4)


def test_a_run_tracks_sharpness_beside_the_edge_of_stability():
    c = tiny(epochs=1, sharpness_every=1, sharpness_iters=10)
    rec = Recorder("resnet", c.to_dict())
    R.run(c, rec, None)
    hist = rec.view()["runs"][0]["history"]
    sharp = [v for v in hist["sharpness"] if v is not None]
    assert len(sharp) == len(hist["step"]) and all(v > 0 for v in sharp)
    assert hist["stability_limit"] == [pytest.approx(2 / lr) for lr in hist["lr"]]  # plain SGD: 2/η
    assert stability_limit(0.1, 0.9) == pytest.approx(38.0)
