"""ResNet training throughput: the engine's step against a plain PyTorch loop, and the cost of metrics.

Claim (issue 4, "Speed"): on one H100 the engine trains ResNet-18 on CIFAR-shaped data at >= 25k
images/s (batch 256), at least 3x a plain loop (fp32, NCHW, a DataLoader feeding CPU tensors that
are copied to the GPU every batch), and the metrics of a checkpoint every 200 iterations (train
loss/error on 4 batches, test error on 10k images, feature sparsity of 4 super-blocks on 10k
images) take <= 10% of wall time, so the paper's 100-epoch run fits in <= 5 minutes.

How it measures: synthetic uint8 data of CIFAR's shape (50k train, 10k test; the speed does not
depend on the pixels); the engine path is the experiment's own `Training.step` fed by `DeviceData`
(data resident on the device, augmentation there, bf16 autocast and channels_last on CUDA,
optionally torch.compile), timed over `--steps` steps after `--warmup` steps, with CUDA synchronized
at both ends. The plain loop uses the same model and optimizer settings, with torchvision's
RandomCrop + RandomHorizontalFlip in the DataLoader for 'sota'. Both loops are timed `--repeats`
times, alternating, and the best of each is kept. Metrics: the mean time of `Training.evaluate`
(all checkpoint metrics) over `--evals` calls; share = eval / (eval + eval_every x step). On a CPU
the defaults are small (width 8, 2k images, few steps): that checks the code path and gives CPU
numbers, not the GPU claim. `--agree` (CUDA) compares a few steps' losses on the CPU (fp32) and on
the GPU (fp32, then the engine's bf16 path) from the same init and batches.

    python benchmarks/resnet_throughput.py                       # CUDA when present, else small CPU sizes
    python benchmarks/resnet_throughput.py --compile --agree     # on the GPU machine
    python benchmarks/resnet_throughput.py --cpu-demo            # + wall time of the cpu-demo preset
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from engine.cifar import ImageData  # noqa: E402
from engine.experiments import resnet as R  # noqa: E402
from engine.recording import Recorder  # noqa: E402
from engine.resnet import resnet  # noqa: E402


# ----------------------------------------------------------------------------- setup
def synthetic(n_train: int, n_test: int, size: int = 32, classes: int = 10) -> ImageData:
    """CIFAR-shaped random uint8 images and labels."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n_train + n_test, 3, size, size), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, classes, (n_train + n_test,), generator=g)
    return ImageData("synthetic", images[:n_train], labels[:n_train], images[n_train:], labels[n_train:], classes)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_training(args, data: ImageData, device: torch.device) -> R.Training:
    c = R.ResNetConfig(dataset="cifar10", width=args.width, batch_size=args.batch, epochs=1,
                       eval_every=args.eval_every, sparsity_images=min(args.sparsity_images, len(data.train_y)),
                       setting=args.setting, device=device.type, compile=args.compile,
                       runs=(R.RunSpec("bench", "constant", 0.05),))
    rec = Recorder("resnet", c.to_dict())
    run = rec.add_run("bench")
    return R.Training(c, c.runs[0], 0, R.DeviceData(data, device, c), rec, run, None, 0, 10**9)


# ----------------------------------------------------------------------------- engine step
def engine_rate(training: R.Training, args) -> float:
    """Training images/s of the engine's step, data on the device."""
    dev, c = training.data.device, training.c

    def batches():
        while True:
            yield from training.data.batches(c.batch_size, training.gen, c.optim["augment"])

    it = batches()
    for _ in range(args.warmup):
        x, y = next(it)
        training.step(x, y, 0.05)
    sync(dev)
    start = time.perf_counter()
    for _ in range(args.steps):
        x, y = next(it)
        training.step(x, y, 0.05)
    sync(dev)
    return args.steps * c.batch_size / (time.perf_counter() - start)


# ----------------------------------------------------------------------------- plain loop
class TorchvisionImages(torch.utils.data.Dataset):
    """uint8 images through torchvision transforms (crop with padding 4 and flip for 'sota'), as float."""

    def __init__(self, data: ImageData, augment: bool):
        from torchvision.transforms import v2

        self.x, self.y = data.train_x, data.train_y
        self.transform = v2.Compose([v2.RandomCrop(data.shape[-1], padding=4), v2.RandomHorizontalFlip()]) \
            if augment else None

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        x = self.x[i]
        return (self.transform(x) if self.transform else x).float() / 255, self.y[i]


def plain_rate(args, data: ImageData, device: torch.device) -> float:
    """Images/s of a textbook loop: fp32 NCHW, a DataLoader of CPU tensors (torchvision transforms for
    'sota'), .to(device) per batch."""
    from torch.utils.data import DataLoader

    sota = args.setting == "sota"
    model = resnet("resnet18", data.num_classes, args.width).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9 if sota else 0.0, weight_decay=5e-4 if sota else 0)
    loader = DataLoader(TorchvisionImages(data, sota), batch_size=args.batch, shuffle=True, drop_last=True,
                        num_workers=args.workers, pin_memory=device.type == "cuda",
                        persistent_workers=args.workers > 0)
    done, start = 0, None
    while True:
        for x, y in loader:
            if done == args.warmup:
                sync(device)
                start = time.perf_counter()
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if done == args.warmup + args.steps:
                sync(device)
                return args.steps * args.batch / (time.perf_counter() - start)


# ----------------------------------------------------------------------------- metrics
def eval_seconds(training: R.Training, evals: int) -> float:
    """Mean wall time of one checkpoint's metrics."""
    training.evaluate(0, None)  # warm-up
    sync(training.data.device)
    start = time.perf_counter()
    for i in range(evals):
        training.evaluate(i + 1, None)
    sync(training.data.device)
    return (time.perf_counter() - start) / evals


# ----------------------------------------------------------------------------- CPU/GPU agreement
def agreement(args, steps: int = 5) -> dict:
    """Losses of `steps` SGD steps from one init on identical batches: CPU fp32 vs CUDA fp32 vs the
    engine's CUDA path (bf16 autocast, channels_last); max relative difference to the CPU losses."""
    g = torch.Generator().manual_seed(1)
    xs = torch.rand(steps, args.batch, 3, 32, 32, generator=g)
    ys = torch.randint(0, 10, (steps, args.batch), generator=g)

    def losses(device: str, engine_path: bool) -> list[float]:
        model = resnet("resnet18", 10, args.width, seed=0).to(device)
        if engine_path:
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        out = []
        for x, y in zip(xs, ys, strict=True):
            x, y = x.to(device), y.to(device)
            if engine_path:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device, dtype=torch.bfloat16, enabled=engine_path):
                loss = F.cross_entropy(model(x).float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            out.append(loss.item())
        return out

    cpu, gpu32, gpu_bf16 = losses("cpu", False), losses("cuda", False), losses("cuda", True)

    def rel(a):
        return max(abs(u - v) / abs(v) for u, v in zip(a, cpu, strict=True))

    return dict(cpu=cpu, cuda_fp32=gpu32, cuda_bf16=gpu_bf16, max_rel_fp32=rel(gpu32), max_rel_bf16=rel(gpu_bf16))


# ----------------------------------------------------------------------------- cpu-demo preset
def cpu_demo() -> dict:
    """Wall time of the cpu-demo preset through the experiment's run() (no cache), and its images/s."""
    config = R.PRESETS["cpu-demo"].config.replace(device="cpu")
    rec = Recorder("resnet", config.to_dict(), "cpu-demo")
    start = time.perf_counter()
    R.run(config, rec, None)
    wall = time.perf_counter() - start
    rates = [v for r in rec.view()["runs"] for v in r["history"]["images_per_s"] if v]
    return dict(wall_s=wall, images_per_s_median=sorted(rates)[len(rates) // 2])


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            name = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        name = platform.machine()
    return f"{name}, {os.cpu_count()} cores"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--width", type=int, default=None, help="default 64 on CUDA, 8 on CPU")
    p.add_argument("--batch", type=int, default=None, help="default 256 on CUDA, 64 on CPU")
    p.add_argument("--train", type=int, default=None, help="training images: 50000 on CUDA, 2048 on CPU")
    p.add_argument("--test", type=int, default=None, help="test images: 10000 on CUDA, 1024 on CPU")
    p.add_argument("--sparsity-images", type=int, default=10_000)
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--steps", type=int, default=None, help="timed steps: 200 on CUDA, 20 on CPU")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first: 30 on CUDA, 3 on CPU")
    p.add_argument("--evals", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3, help="alternating timings of both loops; the best is kept")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers of the plain loop")
    p.add_argument("--setting", default="sota", choices=("plain", "sota"), help="sota includes augmentation")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--agree", action="store_true", help="CPU vs CUDA losses on a few steps (CUDA only)")
    p.add_argument("--cpu-demo", action="store_true", help="also time the cpu-demo preset")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    device = R.pick_device(args.device)
    gpu = device.type == "cuda"
    for name, big, small in [("width", 64, 8), ("batch", 256, 64), ("train", 50_000, 2048), ("test", 10_000, 1024),
                             ("steps", 200, 20), ("warmup", 30, 3), ("workers", 4, 0)]:
        if getattr(args, name) is None:
            setattr(args, name, big if gpu else small)
    if device.type == "cpu":
        torch.set_num_threads(1)  # as the experiment does on the CPU
    data = synthetic(args.train, args.test)
    card = torch.cuda.get_device_name() if gpu else cpu_name()
    out = dict(device=str(device), card=card, torch=torch.__version__, load_avg=os.getloadavg()[0],
               **{k: getattr(args, k) for k in ("width", "batch", "train", "test", "sparsity_images", "eval_every",
                                                 "steps", "setting", "compile")})
    training = make_training(args, data, device)
    engine, plain = [], []
    for _ in range(args.repeats):  # alternate, keep the best: the dev machine is shared and noisy
        engine.append(engine_rate(training, args))
        plain.append(plain_rate(args, data, device))
    out["engine_images_per_s"], out["plain_images_per_s"] = max(engine), max(plain)
    out["speedup"] = out["engine_images_per_s"] / out["plain_images_per_s"]
    step_s = args.batch / out["engine_images_per_s"]
    out["eval_s"] = eval_seconds(training, args.evals)
    out["metrics_share"] = out["eval_s"] / (out["eval_s"] + args.eval_every * step_s)
    iters = args.train // args.batch * 100
    out["projected_100_epochs_s"] = iters * step_s + iters / args.eval_every * out["eval_s"]
    if args.agree and gpu:
        out["agreement"] = agreement(args)
    if args.cpu_demo:
        out["cpu_demo"] = cpu_demo()
    for k, v in out.items():
        print(f"{k:>24}: {v:,.4g}" if isinstance(v, float) else f"{k:>24}: {v}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
