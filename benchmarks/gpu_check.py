"""GPU check of the ResNet engine: agreement with the CPU, speed against a plain loop, metric cost, memory, and
one fig7-plain epoch, in one run of a few minutes on one CUDA GPU (budget: under 8 minutes on an H100/H200).

What it measures (each part prints as it ends, with its wall time):

1. Agreement. `--agree-steps` (5) SGD steps of ResNet-18 (width 64, batch 64, lr 0.01, random CIFAR-shaped
   images) from one init on the same batches, through the engine's own `Training.step`: CPU float32 (the
   reference), CUDA float32 (the engine's float32 path; PyTorch's defaults let cuDNN run float32 convs in TF32),
   CUDA with the presets' auto path (bf16 autocast, channels_last, fused SGD) and the CPU with those same
   settings. Printed: the max relative difference of the per-step losses, CUDA float32 vs CPU float32, the GPU
   path vs CPU float32, and the GPU path on CUDA vs on the CPU (only the device differs). The CPU tests bound
   these on the digits: bf16 within 2% of float32, float32 settings within 1% (tests/test_resnet.py).
2. Throughput. Images/s of the engine's training loop (uint8 data resident on the device, `DeviceData.batches`,
   `Training.step` with the auto settings, fig7-plain's setting: no augmentation), and again with torch.compile,
   against a plain PyTorch loop: the same model in float32 NCHW, torch.optim.SGD's default implementation, one
   pre-made batch tensor on the device (no DataLoader, no copies), and `loss.item()` every step as a textbook
   loop logs it. Same batch (256). `--warmup` untimed steps, then `--steps` timed ones between CUDA syncs;
   `--repeats` alternating timings of the engine and plain loops: median, min and max printed.
3. Metrics share. The mean wall time of one checkpoint's metrics (`Training.evaluate`: train loss/error on 4
   batches, test loss/error on 10k images, feature sparsity of the 4 super-blocks on 10k images, filters,
   distance from init) over `--evals` calls, and its share of wall time at fig7-plain's interval of 200 steps.
4. Peak GPU memory (torch.cuda.max_memory_allocated) of each part.
5. One fig7-plain epoch: `engine.resnet.experiment.run` on the fig7-plain preset with 1 epoch and its first
   run (195 steps, checkpoints at steps 0 and 195), on random uint8 images of CIFAR-10's shape (50k train, 10k
   test): CIFAR-10 is not on the GPU machine and it has no internet, and the speed does not depend on the
   pixels. Then the projected 100-epoch run: 19,500 steps at part 2's engine rate plus 99 checkpoints.

`--cpu-smoke` runs every part on the CPU at toy sizes (ResNet-18 width 8-16, a few steps, 512 images; no
compile unless `--compile`) to test the script (tests/test_resnet.py runs it): its numbers are CPU numbers,
not the GPU check. `--json PATH` writes everything printed.

    python benchmarks/gpu_check.py --json gpu_check.json     # on the GPU machine, ~3-5 minutes
    python benchmarks/gpu_check.py --cpu-smoke                # anywhere, ~15 s

Measured: no GPU has been lent to a session yet, so the GPU numbers are pending; the CPU smoke run's numbers are
in benchmarks/README.md, labelled as such.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from unittest import mock

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from engine.core.recording import Recorder  # noqa: E402
from engine.resnet import cifar  # noqa: E402
from engine.resnet import experiment as R  # noqa: E402
from engine.resnet.cifar import ImageData  # noqa: E402
from engine.resnet.config import ResNetConfig, RunSpec  # noqa: E402
from engine.resnet.device import DeviceData, fast_path  # noqa: E402
from engine.resnet.model import resnet  # noqa: E402
from engine.resnet.training import Training  # noqa: E402

GPU = dict(width=64, batch=256, train=50_000, test=10_000, sparsity_images=10_000, steps=200, warmup=30, repeats=3,
           evals=3, agree_width=64, agree_batch=64, agree_steps=5)
SMOKE = dict(width=16, batch=32, train=512, test=256, sparsity_images=256, steps=5, warmup=2, repeats=2, evals=1,
             agree_width=16, agree_batch=16, agree_steps=3)  # a CPU needs width >= 16 for channels_last, compile


# ----------------------------------------------------------------------------- setup
def synthetic(n_train: int, n_test: int, size: int = 32, classes: int = 10) -> ImageData:
    """Random uint8 images and labels of CIFAR-10's shape (the speed does not depend on the pixels)."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n_train + n_test, 3, size, size), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, classes, (n_train + n_test,), generator=g)
    return ImageData("random uint8, CIFAR-10's shape", images[:n_train], labels[:n_train], images[n_train:],
                     labels[n_train:], classes)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_mib(device: torch.device) -> float:
    """Peak GPU memory allocated since the last reset; on the CPU the process's peak resident set (Linux: KiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def training(data: ImageData, device: torch.device, width: int, batch: int, eval_every: int = 200,
             sparsity_images: int = 10_000, **setting) -> Training:
    """The experiment's own Training for one constant-step run (lr 0.01), fig7-plain's setting."""
    c = ResNetConfig(dataset="cifar10", width=width, batch_size=batch, epochs=1, eval_every=eval_every,
                       sparsity_images=min(sparsity_images, len(data.train_y)), setting="plain", device=device.type,
                       runs=(RunSpec("check", "constant", 0.01),), **setting)
    rec = Recorder("resnet", c.to_dict())
    return Training(c, c.runs[0], 0, DeviceData(data, device, c), rec, rec.add_run("check"), None, 0, 10**9)


# ----------------------------------------------------------------------------- 1. agreement
FLOAT32 = dict(precision="float32", memory_format="contiguous", fused_sgd="off")  # what "auto" is on a CPU
GPU_PATH = dict(precision="bf16", memory_format="channels_last", fused_sgd="on")  # what "auto" is on CUDA


def agreement(a, devices: list[torch.device]) -> dict:
    """Per-step losses of the same init and batches on each (device, settings); max relative differences."""
    data = synthetic(max(64, a.agree_batch * a.agree_steps), a.agree_batch)  # 64: the least sparsity_images
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    variants = {"cpu_float32": (cpu, FLOAT32), "cpu_gpu_path": (cpu, GPU_PATH)}
    if any(d.type == "cuda" for d in devices):
        variants.update(cuda_float32=(cuda, FLOAT32), cuda_gpu_path=(cuda, {}))  # {}: the presets' auto
    out = {}
    for name, (device, setting) in variants.items():
        t = training(data, device, a.agree_width, a.agree_batch, **setting)
        losses = []
        for k in range(a.agree_steps):
            sl = slice(k * a.agree_batch, (k + 1) * a.agree_batch)
            x = t.data.inputs(t.data.train_x[sl])
            losses.append(float(t.step(x, t.data.train_y[sl], 0.01)))
        out[name] = losses

    def rel(u: str, v: str) -> float:
        return max(abs(p - q) / abs(q) for p, q in zip(out[u], out[v], strict=True))

    pairs = [("cpu_gpu_path", "cpu_float32")]
    if "cuda_float32" in out:
        pairs = [("cuda_float32", "cpu_float32"), ("cuda_gpu_path", "cpu_float32"), ("cuda_gpu_path", "cpu_gpu_path"),
                 *pairs]
    out["max_rel"] = {f"{u} vs {v}": rel(u, v) for u, v in pairs}
    return out


# ----------------------------------------------------------------------------- 2. throughput
def engine_rate(t: Training, a) -> tuple[float, float]:
    """(images/s of the engine's loop, seconds of the warm-up steps, which include a compile)."""
    dev, c = t.data.device, t.c

    def batches():
        while True:
            yield from t.data.batches(c.batch_size, t.gen, c.optim["augment"])

    it = batches()
    start = time.perf_counter()
    for _ in range(a.warmup):
        t.step(*next(it), 0.01)
    sync(dev)
    warm = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(a.steps):
        t.step(*next(it), 0.01)
    sync(dev)
    return a.steps * c.batch_size / (time.perf_counter() - start), warm


def plain_rate(a, device: torch.device, model: torch.nn.Module) -> float:
    """Images/s of a textbook loop: float32 NCHW, default SGD, one batch tensor already on the device,
    loss.item() every step."""
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.rand(a.batch, 3, 32, 32, device=device, generator=g)
    y = torch.randint(0, 10, (a.batch,), device=device, generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    running = 0.0
    for k in range(a.warmup + a.steps):
        if k == a.warmup:
            sync(device)
            start = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        running += loss.item()
    sync(device)
    return a.steps * a.batch / (time.perf_counter() - start)


def spread(values: list[float]) -> dict:
    return dict(median=statistics.median(values), min=min(values), max=max(values), all=values)


# ----------------------------------------------------------------------------- 3. metrics
def eval_seconds(t: Training, evals: int) -> float:
    """Mean wall time of one checkpoint's metrics (after one untimed call)."""
    t.evaluate(0, None)
    sync(t.data.device)
    start = time.perf_counter()
    for i in range(evals):
        t.evaluate(i + 1, None)
    sync(t.data.device)
    return (time.perf_counter() - start) / evals


# ----------------------------------------------------------------------------- 5. one fig7-plain epoch
def fig7_epoch(a, device: torch.device, data: ImageData) -> dict:
    """Wall time of experiments.resnet.run on fig7-plain with 1 epoch and its first run, on `data`."""
    preset = R.PRESETS["fig7-plain"].config
    c = preset.replace(epochs=1, runs=preset.runs[:1], device=device.type)
    if a.cpu_smoke:
        c = c.replace(width=a.width, batch_size=a.batch, sparsity_images=a.sparsity_images)
    rec = Recorder("resnet", c.to_dict(), "fig7-plain")
    with mock.patch.object(cifar, "load", lambda name, folder="": data):  # no CIFAR-10 on the GPU machine
        start = time.perf_counter()
        R.run(c, rec, None)
        sync(device)
        wall = time.perf_counter() - start
    view = rec.view()
    run = view["runs"][0]
    return dict(wall_s=wall, status=run["status"], iterations=view["extras"]["setup"]["iterations"],
                checkpoints=len(run["history"]["step"]), settings={k: view["extras"]["setup"][k] for k in
                                                                   ("precision", "channels_last", "fused_sgd")},
                width=c.width, batch=c.batch_size)


# ----------------------------------------------------------------------------- main
def summary(out: dict, a) -> str:
    """The numbers that go into benchmarks/README.md, one line each."""
    agree, th, m, ep = out["agreement"], out["throughput_images_per_s"], out["metrics"], out["fig7_plain_epoch"]
    unit = "peak GPU memory allocated" if out["mode"] == "GPU check" else "peak process RSS (CPU smoke)"

    def rate(r: dict) -> str:
        return f"{r['median']:,.0f} images/s (median of {len(r['all'])}; {r['min']:,.0f}-{r['max']:,.0f})"

    lines = [f"== {out['mode']}: {out['device']}, torch {out['torch']}, CUDA {out['cuda']}, "
             f"total {out['total_s']:.0f} s",
             f"agreement, max relative difference of {a.agree_steps} step losses (ResNet-18 width {a.agree_width}, "
             f"batch {a.agree_batch}):",
             *(f"    {k}: {v:.2e}" for k, v in agree["max_rel"].items()),
             f"training, batch {th['batch']}, width {a.width}: engine {rate(th['engine'])}; plain loop "
             f"{rate(th['plain'])}; engine / plain {th['speedup_median']:.2f}x"]
    if "engine_compiled" in th:
        lines.append(f"    engine + torch.compile {rate(th['engine_compiled'])}, first {a.warmup} steps with "
                     f"the compile {th['compile_warmup_s']:.1f} s")
    lines += [f"metrics: {m['eval_s']:.2f} s per checkpoint, {m['share']:.1%} of wall time at one per 200 steps",
              f"{unit}: training {th['peak_mib']:,.0f} MiB"
              + (f", compiled {th['compiled_peak_mib']:,.0f} MiB" if "compiled_peak_mib" in th else "")
              + f", metrics {m['peak_mib']:,.0f} MiB, fig7-plain epoch {ep['peak_mib']:,.0f} MiB",
              f"one fig7-plain epoch ({ep['iterations']} steps of {ep['batch']}, width {ep['width']}, "
              f"{ep['checkpoints']} checkpoints; data: {ep['data']}): {ep['wall_s']:.1f} s; projected 100 epochs "
              f"{ep['projected_100_epochs_s'] / 60:.1f} min"]
    return "\n".join(lines)


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name()
    try:
        with open("/proc/cpuinfo") as fh:
            name = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        name = platform.machine()
    return f"{name}, {os.cpu_count()} cores"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu-smoke", action="store_true", help="every part on the CPU at toy sizes (tests the script)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="also time the engine with torch.compile (default: on with a GPU, off with --cpu-smoke)")
    for name, value in GPU.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=None, help=f"default {value} ({SMOKE[name]} "
                                                                                   "with --cpu-smoke)")
    p.add_argument("--json", default=None, help="write the results here")
    a = p.parse_args()
    for name, value in (SMOKE if a.cpu_smoke else GPU).items():
        if getattr(a, name) is None:
            setattr(a, name, value)
    if a.compile is None:
        a.compile = not a.cpu_smoke
    if not a.cpu_smoke and not torch.cuda.is_available():
        print("no CUDA GPU here: run with --cpu-smoke to test the script on the CPU", file=sys.stderr)
        return 2
    device = torch.device("cpu" if a.cpu_smoke else "cuda")
    t0 = time.perf_counter()
    out = dict(mode="CPU smoke run (toy sizes; not the GPU check)" if a.cpu_smoke else "GPU check",
               device=machine(device), torch=torch.__version__, python=platform.python_version(),
               cuda=torch.version.cuda, cudnn_tf32=torch.backends.cudnn.allow_tf32,
               cpu_threads=torch.get_num_threads(), load_avg=os.getloadavg()[0],
               sizes={k: getattr(a, k) for k in GPU}, compile=a.compile)

    def part(name: str, value) -> None:
        out[name] = value
        print(f"[{time.perf_counter() - t0:6.1f} s] {name}: {json.dumps(value, default=str)}", flush=True)

    print(f"{out['mode']} on {out['device']}, torch {out['torch']}", flush=True)
    reset_peak(device)
    part("agreement", agreement(a, [device]))

    data = synthetic(a.train, a.test)
    reset_peak(device)
    engine = training(data, device, a.width, a.batch, sparsity_images=a.sparsity_images)
    plain_model = resnet("resnet18", 10, a.width).to(device).train()
    rates = dict(engine=[], plain=[])
    for _ in range(a.repeats):  # alternate, so a busy moment hits both
        rates["engine"].append(engine_rate(engine, a)[0])
        rates["plain"].append(plain_rate(a, device, plain_model))
    through = dict(batch=a.batch, setting=fast_path(engine.c, device), engine=spread(rates["engine"]),
                   plain=spread(rates["plain"]), peak_mib=peak_mib(device))
    through["speedup_median"] = through["engine"]["median"] / through["plain"]["median"]
    del plain_model
    if a.compile:
        reset_peak(device)
        compiled = training(data, device, a.width, a.batch, sparsity_images=a.sparsity_images, compile=True)
        first = [engine_rate(compiled, a) for _ in range(a.repeats)]
        through["engine_compiled"] = spread([r for r, _ in first])
        through["compile_warmup_s"] = first[0][1]
        through["compiled_peak_mib"] = peak_mib(device)
        del compiled
    part("throughput_images_per_s", through)

    reset_peak(device)
    eval_s = eval_seconds(engine, a.evals)
    step_s = a.batch / through["engine"]["median"]
    part("metrics", dict(eval_s=eval_s, step_s=step_s, eval_every=200, share=eval_s / (eval_s + 200 * step_s),
                         peak_mib=peak_mib(device)))
    del engine

    reset_peak(device)
    epoch = fig7_epoch(a, device, data)
    per_epoch = len(data.train_y) // epoch["batch"]
    epoch["peak_mib"] = peak_mib(device)
    epoch["projected_100_epochs_s"] = 100 * per_epoch * step_s + (100 * per_epoch // 200 + 2) * eval_s  # + 0, end
    epoch["data"] = data.name
    part("fig7_plain_epoch", epoch)
    out["total_s"] = time.perf_counter() - t0
    print(summary(out, a), flush=True)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
