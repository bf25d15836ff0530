"""ResNet experiment (docs/experiments.md §5): model shapes, schedules, data loading, and a small CPU run
that trains, records every metric, is cached, cancels cleanly and resumes from its saved epoch; the GPU path's
settings (bf16, channels_last, torch.compile, fused SGD) each train a CPU epoch like float32.

About 60 s on the busy 2-core dev machine (most of it the small training jobs), ~90 s when torch.compile's cache
is cold.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import os
import pickle
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from engine.core.recording import Cancelled, Recorder
from engine.jobs import JobManager
from engine.resnet import cifar
from engine.resnet import experiment as R
from engine.resnet.checkpoints import read_checkpoint, write_checkpoint
from engine.resnet.config import ResNetConfig, RunSpec, decay_steps, lr_schedule
from engine.resnet.device import DeviceData, fast_path, pick_device
from engine.resnet.measures import autocast, block_sparsity, pick_units
from engine.resnet.model import block_shapes, resnet
from engine.resnet.training import Training
from engine.store import Store

METRICS = ["train_loss", "train_error", "test_loss", "test_error", "lr", "epoch", "images_per_s",
           *(f"sparsity_block{i}" for i in range(1, 5))]


def tiny(**changes) -> ResNetConfig:
    """A cpu-demo-shaped config small enough for CI: digits, width 4, 2 epochs of 21 steps, two runs."""
    base = R.PRESETS["cpu-demo"].config.replace(
        width=4, epochs=2, eval_every=10, sparsity_images=256, device="cpu",
        runs=(RunSpec("small", "constant", 0.05), RunSpec("large, 50%", "exp-warmup", 0.3, 0.5)))
    return base.replace(**changes)


# ----------------------------------------------------------------------------- model
@pytest.mark.parametrize("name, blocks, params", [("resnet18", [2, 2, 2, 2], 11_173_962),
                                                  ("resnet34", [3, 4, 6, 3], 21_282_122)])
def test_model_matches_the_cifar_layout(name, blocks, params):
    # The standard CIFAR ResNet-18/34 at width 64 with 10 classes have exactly these parameter counts.
    model = resnet(name, 10, 64)
    assert sum(p.numel() for p in model.parameters()) == params
    assert [len(layer) for layer in model.layers] == blocks
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    # Kaiming-normal fan_out: std sqrt(2 / (out_channels * 9)).
    w = model.layers[3][0].conv2.weight
    assert w.std().item() == pytest.approx(math.sqrt(2 / (512 * 9)), rel=0.02)


@pytest.mark.parametrize("name", ["resnet18", "resnet34"])
@pytest.mark.parametrize("channels, size", [(3, 32), (1, 16)])
def test_block_outputs_have_the_right_shapes(name, channels, size):
    model = resnet(name, 100, width=8, in_channels=channels).eval()
    with torch.no_grad():
        logits, blocks = model(torch.rand(2, channels, size, size), return_blocks=True)
        plain = model(torch.rand(2, channels, size, size))
    assert logits.shape == plain.shape == (2, 100)
    s = size
    assert [tuple(b.shape[1:]) for b in blocks] == [(8, s, s), (16, s // 2, s // 2), (32, s // 4, s // 4),
                                                    (64, s // 8, s // 8)]
    assert [tuple(b.shape[1:]) for b in blocks] == block_shapes(name, 8, size)
    assert all(b.min() >= 0 for b in blocks)  # post-ReLU


def test_init_is_a_function_of_the_seed():
    a, b, c = resnet("resnet18", 10, 8, seed=1), resnet("resnet18", 10, 8, seed=1), resnet("resnet18", 10, 8, seed=2)
    assert torch.equal(a.conv1.weight, b.conv1.weight) and torch.equal(a.linear.bias, b.linear.bias)
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


# ----------------------------------------------------------------------------- schedules
def test_schedules_match_hand_values():
    n = 1000
    warm = lr_schedule(RunSpec("l", "exp-warmup", 0.75, 0.3), n)
    assert warm[0] == pytest.approx(0.75)
    assert warm[100] == pytest.approx(1.2216710)              # 0.75 * 1.05**10 at t = 0.1
    assert warm[299] == pytest.approx(0.75 * 1.05**29.9)      # last warmup step
    assert warm[300] == pytest.approx(0.32414568)             # 0.75 * 1.05**30 / 10
    assert warm[899] == pytest.approx(0.32414568)
    assert warm[900] == pytest.approx(0.032414568)            # / 100 from t = 0.9
    step = lr_schedule(RunSpec("s", "step", 0.05, 0.5), n)
    assert (step[499], step[500], step[899], step[900]) == pytest.approx((0.05, 0.005, 0.005, 0.0005))
    assert np.all(lr_schedule(RunSpec("c", "constant", 0.01), n) == 0.01)
    assert decay_steps(RunSpec("l", "exp-warmup", 0.75, 0.3), n) == [300, 900]
    assert decay_steps(RunSpec("c"), n) == []


def test_presets_are_the_papers_settings():
    plain, sota = R.PRESETS["fig7-plain"].config, R.PRESETS["fig7-sota"].config
    assert [(r.schedule, r.lr, r.at) for r in plain.runs] == [("constant", 0.01, 1.0), ("exp-warmup", 0.75, 0.1),
                                                              ("exp-warmup", 0.75, 0.3), ("exp-warmup", 0.75, 0.5)]
    assert [(r.schedule, r.lr) for r in sota.runs][::3] == [("constant", 0.002), ("step", 0.05)]
    assert sota.optim == dict(momentum=0.9, weight_decay=5e-4, augment=True)
    assert plain.optim == dict(momentum=0.0, weight_decay=0.0, augment=False)
    assert (plain.batch_size, plain.epochs, plain.width, plain.eval_every) == (256, 100, 64, 200)
    assert R.PRESETS["fig13"].config.model == "resnet34" and R.PRESETS["fig13"].config.dataset == "cifar100"
    assert next(iter(R.PRESETS)) == "cpu-demo" and R.PRESETS["cpu-demo"].config.dataset == "digits"
    assert R.lane(plain) == "long"
    with pytest.raises(ValueError, match="width=1"):
        plain.replace(width=1)


def test_augmentation_is_a_padded_crop_or_its_mirror():
    data = DeviceData(cifar.load_digits(), torch.device("cpu"), tiny())
    x = data.train_x[:32]
    out = data.augment(x, torch.Generator().manual_seed(0))
    p = data.pad
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    flipped = 0
    for i in range(len(x)):
        windows = {(dy, dx, f) for dy in range(2 * p + 1) for dx in range(2 * p + 1) for f in (0, 1)
                   if torch.equal(out[i], (lambda w: w.flip(-1) if f else w)(padded[i, :, dy:dy + 16, dx:dx + 16]))}
        assert windows, f"image {i} is not a crop of the padded image"
        flipped += all(f for _, _, f in windows)
    assert 4 <= flipped <= 28  # about half are mirrored


def test_block_sparsity_is_the_coefficient_of_the_flattened_outputs_on_chosen_units():
    from engine.core.recording import Recorder
    from engine.core.sparsity import feature_sparsity

    config = tiny(sparsity_images=300)
    data = DeviceData(cifar.load_digits(), torch.device("cpu"), config)
    model = resnet("resnet18", 10, 4, in_channels=1, seed=3).eval()
    units = pick_units("resnet18", 4, data.shape, seed=3)
    got = block_sparsity(model, data, units, Recorder("resnet", {}), batch=128)
    with torch.no_grad():
        _, blocks = model(data.inputs(data.train_x[data.sparsity_idx]), return_blocks=True)
    for value, out, (ch, r, col) in zip(got, blocks, units, strict=True):
        _, c, h, w = out.shape
        flat = out.flatten(1)                                   # C*H*W, as the paper flattens a conv layer
        chosen = flat[:, ch * h * w + r * w + col]
        assert len(ch) == min(1000, c * h * w)
        assert value == pytest.approx(feature_sparsity(chosen, 0.95, normalize_rows=False))
    assert got[0] != got[3]


# ----------------------------------------------------------------------------- data
def _write_cifar(folder, sub, files, label_key, n=4, classes=10):
    """Pickled batches in the layout torchvision's CIFAR10/CIFAR100 read; pixel (c, 0, 0) of image k is k + c."""
    d = folder / sub
    d.mkdir(parents=True)
    k = 0
    for name in files:
        data = np.zeros((n, 3 * 32 * 32), dtype=np.uint8)
        for j in range(n):
            data[j, [0, 1024, 2048]] = [k + j, k + j + 1, k + j + 2]
        with open(d / name, "wb") as fh:
            pickle.dump({"data": data, label_key: [(k + j) % classes for j in range(n)], "batch_label": name}, fh)
        k += n
    return d


def _trust(monkeypatch, name, folder):
    """Accept these fake batches as if they were the official files (their MD5 sums in the table)."""
    sums = {f.name: hashlib.md5(f.read_bytes()).hexdigest() for f in folder.iterdir()}
    monkeypatch.setattr(cifar, "MD5", {**getattr(cifar, "MD5", {}), name: sums}, raising=False)


CIFAR10_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def test_a_cifar10_folder_in_torchvisions_format_loads(tmp_path, monkeypatch):
    root = tmp_path / "data"
    batches = _write_cifar(root / "mine", "cifar-10-batches-py", CIFAR10_FILES, "labels")
    _trust(monkeypatch, "cifar10", batches)
    data = cifar.load("cifar10", "mine", root=root)
    assert data.train_x.shape == (20, 3, 32, 32) and data.test_x.shape == (4, 3, 32, 32)
    assert data.train_x.dtype == torch.uint8 and data.num_classes == 10
    assert data.train_x[5, :, 0, 0].tolist() == [5, 6, 7] and data.train_y[7].item() == 7
    # torchvision reads the very same files (its md5 check skipped: these are not the real batches).
    import torchvision

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_load_meta", lambda self: None)
    tv = torchvision.datasets.CIFAR10(str(root / "mine"), train=True, download=False)
    assert np.array_equal(tv.data, data.train_x.permute(0, 2, 3, 1).numpy()) and tv.targets == data.train_y.tolist()
    assert cifar.available("cifar10", "mine", root=root) and cifar.load("cifar10", str(batches), root=root)


def test_a_cifar100_folder_loads_fine_labels(tmp_path, monkeypatch):
    root = tmp_path / "data"
    _trust(monkeypatch, "cifar100", _write_cifar(root, "cifar-100-python", ["train", "test"], "fine_labels", n=6,
                                                 classes=100))
    data = cifar.load("cifar100", root=root)
    assert data.num_classes == 100 and data.train_x.shape == (6, 3, 32, 32)
    assert data.test_y.tolist() == list(range(6, 12))


def test_missing_or_outside_folders_give_clear_errors(tmp_path):
    root = tmp_path / "data"
    (root / "empty").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (root / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        cifar.load("cifar10", "nope", root=root)
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py/data_batch_1"):
        cifar.load("cifar10", "empty", root=root)
    for outside in ("../elsewhere", str(tmp_path / "elsewhere"), "link", "/etc"):
        with pytest.raises(ValueError, match="outside the data root"):
            cifar.load("cifar10", outside, root=root)
    assert not cifar.available("cifar10", "empty", root=root) and cifar.available("digits")


def test_the_md5_sums_are_the_official_files(tmp_path):
    # Real CIFAR batches are checked against torchvision's sums: the table is theirs, file for file.
    from torchvision.datasets import CIFAR10, CIFAR100

    for name, spec in (("cifar10", CIFAR10), ("cifar100", CIFAR100)):
        assert cifar.MD5[name] == dict(spec.train_list + spec.test_list)


class Planted:
    """Unpickling this creates a file: what a planted batch or checkpoint could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_a_batch_that_is_not_the_official_file_is_never_unpickled(tmp_path):
    root = tmp_path / "data"
    batches = _write_cifar(root, "cifar-10-batches-py", CIFAR10_FILES, "labels")
    marker = tmp_path / "pwned"
    for name in CIFAR10_FILES:
        (batches / name).write_bytes(pickle.dumps(Planted(marker)))
    with pytest.raises(ValueError, match="data_batch_1 is not the official CIFAR-10 batch"):
        cifar.load("cifar10", root=root)
    assert not marker.exists()


def test_a_file_link_out_of_the_data_root_is_refused(tmp_path, monkeypatch):
    root = tmp_path / "data"
    batches = _write_cifar(root, "cifar-10-batches-py", CIFAR10_FILES, "labels")
    _trust(monkeypatch, "cifar10", batches)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (batches / "test_batch").rename(elsewhere / "test_batch")
    (batches / "test_batch").symlink_to(elsewhere / "test_batch")  # the folder is inside, one file is not
    with pytest.raises(ValueError, match="test_batch is outside the data root") as error:
        cifar.load("cifar10", root=root)
    assert str(root.resolve()) not in str(error.value) and not cifar.available("cifar10", root=root)
    (batches / "inside").mkdir()
    (batches / "test_batch").unlink()
    (elsewhere / "test_batch").rename(batches / "inside" / "test_batch")
    (batches / "test_batch").symlink_to(batches / "inside" / "test_batch")  # a link that stays inside is fine
    assert cifar.load("cifar10", root=root).test_x.shape == (4, 3, 32, 32)


def test_looping_or_overlong_paths_give_the_confinement_message(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / "loop").symlink_to(root / "loop")
    (root / "a").symlink_to(root / "b")
    (root / "b").symlink_to(root / "a")
    for bad in ("loop", "a/sub", "x" * 5000, "deep/" * 2000, "nul\0byte"):
        with pytest.raises(ValueError, match="outside the data root") as error:
            cifar.load("cifar10", bad, root=root)
        assert str(root.resolve()) not in str(error.value) and len(str(error.value)) < 300
        assert not cifar.available("cifar10", bad, root=root)


def test_download_without_network_says_so(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(ConnectionError, match="no network"):
        cifar.download("cifar10", root=tmp_path)
    assert not list(tmp_path.iterdir())  # no partial file left behind


def test_digits_are_small_offline_images():
    d = cifar.load_digits()
    assert d.shape == (1, 16, 16) and len(d.train_y) == cifar.DIGITS_TRAIN == 1348 and len(d.test_y) == 449
    assert d.train_x.dtype == torch.uint8 and d.train_x.max() == 255


def test_cuda_without_a_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        pick_device("cuda")


# ----------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The tiny config trained to the end through the job manager, and the manager's store."""
    store = Store(tmp_path_factory.mktemp("cache"))
    job = JobManager(store).submit("resnet", tiny())
    assert job.wait(300)
    return store, job.view()


def test_a_small_run_trains_and_records_every_metric(finished):
    _, view = finished
    assert view["status"] == "done"
    for r in view["runs"]:
        h = r["history"]
        assert r["status"] == "done" and h["step"] == [0, 10, 20, 30, 40, 42]
        assert all(m in h and all(v is not None for v in h[m][1:]) for m in METRICS)
        assert h["train_loss"][-1] < 0.7 * h["train_loss"][0]          # the loss falls
        assert h["epoch"][-1] == 2.0 and h["images_per_s"][-1] > 0
        assert all(0 < s <= 1 for i in range(1, 5) for s in h[f"sparsity_block{i}"])
        stem = r["snapshots"]["filters"]["layers"]["conv1"]
        assert np.shape(stem["init"]) == np.shape(stem["now"]) == (4, 1, 3, 3)
        assert np.shape(r["snapshots"]["filters"]["layers"]["layers.1.0.conv1"]["now"]) == (8, 4, 3, 3)
        assert len(r["snapshots"]["distance_from_init"]) == 6
    small, large = view["runs"]
    assert small["history"]["lr"] == [0.05] * 6
    assert large["snapshots"]["decay_steps"] == [21, 38]
    assert large["history"]["lr"][2] == pytest.approx(0.3 * 1.05 ** (100 * 20 / 42))
    # Large steps move the weights further from their init than small ones.
    far = {r["name"]: r["snapshots"]["distance_from_init"][-1]["value"]["conv1.weight"] for r in view["runs"]}
    assert far["large, 50%"] > far["small"] > 0


def test_a_finished_run_comes_from_the_cache(finished):
    store, view = finished
    again = JobManager(store).submit("resnet", tiny())
    assert again.from_cache and again.status == "done"
    assert again.view()["runs"][1]["final"] == view["runs"][1]["final"]


def test_cancel_keeps_the_history_and_a_new_manager_resumes_from_the_saved_epoch(finished, tmp_path):
    store = Store(tmp_path / "cache")
    config = tiny()
    job = JobManager(store).submit("resnet", config)
    work = store.workdir(config.key("resnet"))
    deadline = time.time() + 120
    while not list(work.glob("run0-e*.json")) and time.time() < deadline:
        time.sleep(0.01)
    job.cancel()
    assert job.wait(60) and job.status == "cancelled"
    steps = job.view()["runs"][0]["history"]["step"]
    assert steps[:3] == [0, 10, 20] and job.view()["runs"][0]["status"] == "cancelled"
    epoch = max(json.loads(p.read_text())["epoch"] for p in work.glob("run*-e*.json"))
    assert epoch >= 1

    resumed = JobManager(store).submit("resnet", config)  # the app restarted: a fresh manager, same cache
    assert resumed.wait(300) and resumed.status == "done"
    view = resumed.view()
    assert view["runs"][0]["snapshots"]["resumed_from_epoch"] == epoch
    assert not list(work.glob("run*"))  # checkpoints go once the group is done (the result is in the store)
    for run, reference in zip(view["runs"], finished[1]["runs"], strict=True):
        assert run["history"]["step"] == [0, 10, 20, 30, 40, 42]
        # Model, optimizer and RNG state were restored: the same numbers as the uninterrupted run.
        assert run["final"]["train_loss"] == pytest.approx(reference["final"]["train_loss"], rel=1e-4)
        assert run["final"]["sparsity_block4"] == pytest.approx(reference["final"]["sparsity_block4"], rel=1e-3)


def test_a_blow_up_ends_diverged_and_keeps_its_history():
    from engine.core.recording import Recorder

    config = tiny(epochs=1, runs=(RunSpec("huge", "exp-warmup", 10.0, 1.0, 1.2),), setting="sota")
    rec = Recorder("resnet", config.to_dict())
    R.run(config, rec, None)
    run = rec.view()["runs"][0]
    assert run["status"] == "diverged" and "non-finite" in run["message"]
    assert run["history"]["step"][0] == 0 and run["history"]["train_loss"][0] > 0
    assert run["history"]["train_loss"][-1] is None and run["history"]["step"][-1] < 21


# ----------------------------------------------------------------------------- checkpoints
ONE_RUN = (RunSpec("large", "exp-warmup", 0.3, 0.5),)


def one_run(epochs: int) -> ResNetConfig:
    """The tiny config with one run and one checkpoint per epoch (21 iterations)."""
    return tiny(epochs=epochs, eval_every=21, sparsity_images=64, runs=ONE_RUN)


class StopAt(Recorder):
    """A recorder whose user presses Cancel when the run reaches `text` (e.g. 'epoch 4/4')."""

    def __init__(self, config, text):
        super().__init__("resnet", config.to_dict())
        self.text = text

    def progress(self, fraction, message=None):
        if message and self.text in message:
            self.request_stop()
        super().progress(fraction, message)


def interrupted(config, work, stop_text):
    """Train `config` in `work` until the user cancels at `stop_text`; the saved files' names."""
    with pytest.raises(Cancelled):
        R.run(config, StopAt(config, stop_text), work)
    return sorted(p.name for p in work.iterdir())


def resumed(config, work):
    rec = Recorder("resnet", config.to_dict())
    R.run(config, rec, work)
    return rec.view()["runs"][0]


def test_the_last_two_epochs_are_kept_and_a_damaged_one_falls_back_to_the_one_before(tmp_path):
    config = one_run(4)
    files = interrupted(config, tmp_path, "epoch 4/4")
    assert files == ["run0-e0002.json", "run0-e0002.pt", "run0-e0003.json", "run0-e0003.pt"]
    newest = tmp_path / "run0-e0003.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated: a crash or a full disk mid-write
    run = resumed(config, tmp_path)
    assert run["status"] == "done" and run["snapshots"]["resumed_from_epoch"] == 2
    assert "epoch 3" in run["snapshots"]["checkpoint_notice"] and "resumed from epoch 2" in \
        run["snapshots"]["checkpoint_notice"]
    reference = resumed(config, None)  # the same config, never interrupted
    assert run["history"]["step"] == reference["history"]["step"]
    assert run["final"]["train_loss"] == pytest.approx(reference["final"]["train_loss"], rel=1e-4)
    assert not list(tmp_path.glob("run*"))


def test_no_readable_checkpoint_restarts_the_run_with_a_notice(tmp_path):
    config = one_run(3)
    interrupted(config, tmp_path, "epoch 3/3")
    (tmp_path / "run0-e0002.json").write_text("{not json")
    (tmp_path / "run0-e0001.pt").write_bytes(b"")
    run = resumed(config, tmp_path)
    assert run["status"] == "done" and "resumed_from_epoch" not in run["snapshots"]
    notice = run["snapshots"]["checkpoint_notice"]
    assert "epoch 2" in notice and "epoch 1" in notice and "restarted from scratch" in notice
    assert run["history"]["step"] == [0, 21, 42, 63]


def test_a_planted_checkpoint_never_runs_code(tmp_path):
    config = one_run(1)
    marker = tmp_path / "pwned"
    work = tmp_path / "work"
    work.mkdir()
    buffer = io.BytesIO()
    torch.save(Planted(marker), buffer)  # a checkpoint file like any other, whose unpickling creates a file
    blob = buffer.getvalue()
    (work / "run0.pt").write_bytes(blob)  # where checkpoints used to be
    (work / "run0-e0001.pt").write_bytes(blob)  # and where they are now, with a record that vouches for it
    (work / "run0-e0001.json").write_text(json.dumps(dict(format=1, epoch=1, done=False, sha256=hashlib.sha256(
        blob).hexdigest(), run=dict(status="running", message="", history={"step": []}, snapshots={}))))
    run = resumed(config, work)
    assert not marker.exists()
    assert run["status"] == "done" and "restarted from scratch" in run["snapshots"]["checkpoint_notice"]


def test_two_processes_saving_one_checkpoint_do_not_clash(tmp_path, monkeypatch):
    # Writer A is about to move its finished temporary file into place when writer B (another process on the
    # same config) saves the same epoch: each must move its own file, and the pair left must read back.
    state = dict(model={"w": torch.ones(3)}, opt={"state": {}, "param_groups": []}, gen=torch.zeros(4))
    record = dict(status="running", message="", history={"step": [0]}, snapshots={})
    real, nested = os.replace, []

    def replace(src, dst):
        if not nested:
            nested.append(src)
            write_checkpoint(tmp_path / "run0", 1, record, dict(state, gen=torch.ones(4)))
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    write_checkpoint(tmp_path / "run0", 1, record, state)
    monkeypatch.undo()
    saved = read_checkpoint(tmp_path / "run0-e0001.json")
    assert torch.equal(saved["gen"], torch.zeros(4)) and saved["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run0-e0001.json", "run0-e0001.pt"]


def test_a_checkpoint_that_cannot_be_written_is_a_warning_on_the_run(tmp_path, monkeypatch):
    config = one_run(2)
    work = tmp_path / "work"
    work.mkdir()
    tracebacks = []
    monkeypatch.setattr(threading, "excepthook", lambda args: tracebacks.append(args))

    class FolderGone(Recorder):  # e.g. `cache clear` while the run trains: no checkpoint can be written
        def progress(self, fraction, message=None):
            if work.exists():
                work.rmdir()
            super().progress(fraction, message)

    rec = FolderGone("resnet", config.to_dict())
    R.run(config, rec, work)
    run = rec.view()["runs"][0]
    assert run["status"] == "done" and run["history"]["step"] == [0, 21, 42]
    assert "could not be saved (No such file or directory)" in run["snapshots"]["checkpoint_warning"]
    assert tracebacks == []


def test_a_job_is_bounded_in_runs_and_in_epochs_x_runs_x_seeds():
    """Every preset runs at its most seeds (5) and the sweep presets' points fit; a URL asking for more runs (any
    number validated before) or epochs x runs x seeds than the limit is refused with the limit in the message."""
    from engine.sweeps import grid as sweep

    for preset in R.PRESETS.values():
        preset.config.replace(seeds=5)
    sweep.build("resnet", "map-fig7", seeds=5)  # raises if a point is over a bound
    c = R.PRESETS["fig7-plain"].config
    with pytest.raises(ValueError, match=r"^runs: 9 runs, above the limit of 8 per job: use fewer runs$"):
        c.replace(runs=tuple(c.runs[0].replace(name=f"r{k}") for k in range(9)), epochs=1)
    with pytest.raises(ValueError, match=r"^epochs x runs x seeds = 400 x 4 x 5 = 8,000 is above the limit of 2,400 "
                                         r"per job: use fewer epochs, runs or seeds$"):
        c.replace(epochs=400, seeds=5)


def test_preflight_names_missing_data_or_device_before_any_work(tmp_path, monkeypatch):
    from engine import registry

    monkeypatch.setenv("SPARSE_SGD_DATA", str(tmp_path))
    c = R.PRESETS["fig7-plain"].config.replace(device="cpu")
    assert registry.preflight("resnet", c).startswith("CIFAR-10 is not on disk in the data root: download it")
    assert "is outside the data root" in registry.preflight("resnet", c.replace(data_dir="../.."))
    assert registry.preflight("resnet", R.PRESETS["cpu-demo"].config.replace(device="cpu")) is None
    cuda = registry.preflight("resnet", R.PRESETS["cpu-demo"].config.replace(device="cuda"))
    assert (cuda is None) == torch.cuda.is_available()


# ----------------------------------------------------------------------------- the GPU path, run on the CPU
# A GPU run differs from a CPU run in four settings (bf16 autocast, channels_last, fused SGD, torch.compile); each
# runs on the CPU too, so a cpu-demo-shaped epoch with each on is compared here with the float32 path, and on a
# GPU only the device differs (benchmarks/gpu_check.py compares the devices there).
#
# Tolerances, from the arithmetic. bf16 keeps 8 significant bits: one rounding is off by up to u = 2^-9 ~ 0.2%
# ("~3 digits"). Autocast rounds the inputs of the ~18 convs in series before the logits, so a logit is off by
# ~sqrt(18) u ~ 0.8% when the errors have random signs (18 u ~ 3.5% if all added up), and 21 SGD steps at the
# cpu-demo's small step (0.01) carry that along with little growth: 2% on each checkpoint's loss. The float32
# settings only sum in another order: u = 6e-8, but BatchNorm's sums over N*H*W = 16,384 values that cancel
# can differ by up to n u ~ 1e-3 (some BN gradients with channels_last on the CPU differ from float64 by 1e-2),
# and the steps carry it: 1%. At step 0 (same weights, one forward) the bounds are one bf16 rounding (2^-9) and
# a few float32 ulps (1e-5). Measured on the 2-core dev machine: at most 0.34% (bf16), 0.51% (channels_last),
# 0.25% (compile), 0 (fused SGD: the same update). The distance from init (the mean over layers of
# ||W - W0|| / ||W0||) must agree within 10% (measured <= 3.5%): a setting that did not train would be 100% off.
BF16_TOL, FLOAT32_TOL, DISTANCE_TOL = 2e-2, 1e-2, 0.1


@functools.cache
def _epoch(width: int, **setting) -> dict:
    """One epoch on the digits (21 steps of 64 at the cpu-demo's small step 0.01, checkpoints at 0, 7, 14, 21)."""
    c = R.PRESETS["cpu-demo"].config.replace(width=width, epochs=1, eval_every=7, sparsity_images=256,
                                             train_eval_batches=2, device="cpu",
                                             runs=(RunSpec("small", "constant", 0.01),), **setting)
    rec = Recorder("resnet", c.to_dict())
    R.run(c, rec, None)
    return rec.view()


def _mean_distance(run: dict) -> float:
    return float(np.mean(list(run["snapshots"]["distance_from_init"][-1]["value"].values())))


# channels_last and compile need width >= 16 on a CPU (CPU_MIN_WIDTH); bf16 is slow there without native bf16
# (2x float32's time at width 4, 5x at 8, 10x at 16), so it trains at width 4. torch.compile's first build of the
# forward and backward takes ~35 s on the dev machine (seconds once inductor's disk cache holds it).
@pytest.mark.parametrize("setting, width, tol, step0_tol", [
    (dict(precision="bf16"), 4, BF16_TOL, 2**-9),
    (dict(memory_format="channels_last"), 16, FLOAT32_TOL, 1e-5),
    (dict(compile=True), 16, FLOAT32_TOL, 1e-5),
    (dict(fused_sgd="on"), 4, FLOAT32_TOL, 1e-5),
], ids=["bf16", "channels_last", "compile", "fused_sgd"])
def test_each_gpu_setting_trains_a_cpu_epoch_like_float32(setting, width, tol, step0_tol):
    ref, got = _epoch(width), _epoch(width, **setting)
    assert ref["extras"]["setup"]["precision"] == "float32" and not ref["extras"]["setup"]["channels_last"]
    name, value = next(iter(setting.items()))
    expected = {"precision": "bf16", "memory_format": True, "compile": True, "fused_sgd": True}[name]
    key = "channels_last" if name == "memory_format" else name
    assert got["extras"]["setup"][key] == expected  # the setting was in effect
    (r0,), (r1,) = ref["runs"], got["runs"]
    assert r1["status"] == "done" and r1["message"] == ""
    assert set(r1["history"]) == set(r0["history"]) and set(r1["snapshots"]) == set(r0["snapshots"])
    assert r1["history"]["step"] == r0["history"]["step"] == [0, 7, 14, 21]
    for col, values in r1["history"].items():
        assert all(v is None or math.isfinite(v) for v in values), col
        assert None not in values[1:], col  # images/s is missing at step 0 only
    for metric in ("train_loss", "test_loss"):
        a, b = np.array(r0["history"][metric]), np.array(r1["history"][metric])
        rel = np.abs(b - a) / a
        assert rel[0] <= step0_tol, (metric, rel)
        assert rel.max() <= tol, (metric, rel)
    d0, d1 = _mean_distance(r0), _mean_distance(r1)
    assert d0 > 0 and abs(d1 - d0) <= DISTANCE_TOL * d0


def test_auto_is_the_gpu_path_on_cuda_and_float32_on_the_cpu():
    c, cpu, cuda = R.PRESETS["fig7-plain"].config, torch.device("cpu"), torch.device("cuda")
    assert (c.precision, c.memory_format, c.fused_sgd, c.compile) == ("auto", "auto", "auto", False)
    assert fast_path(c, cuda) == dict(precision="bf16", channels_last=True, fused_sgd=True, compile=False)
    assert fast_path(c, cpu) == dict(precision="float32", channels_last=False, fused_sgd=False, compile=False)
    chosen = c.replace(precision="float32", memory_format="contiguous", fused_sgd="off", compile=True)
    assert fast_path(chosen, cuda) == fast_path(chosen, cpu) == dict(precision="float32", channels_last=False,
                                                                         fused_sgd=False, compile=True)
    demo = R.PRESETS["cpu-demo"].config.replace(precision="bf16", memory_format="channels_last", fused_sgd="on")
    assert fast_path(demo, cpu) == dict(precision="bf16", channels_last=True, fused_sgd=True, compile=False)
    data = DeviceData(cifar.load("digits"), cpu, demo)
    rec = Recorder("resnet", demo.to_dict())
    training = Training(demo, demo.runs[0], 0, data, rec, rec.add_run("r"), None, 0, 1)
    assert training.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert training.opt.defaults["fused"] is True
    with autocast(data):
        assert training.model(data.inputs(data.train_x[:2])).dtype == torch.bfloat16


def test_channels_last_or_compile_below_width_16_on_a_cpu_is_refused_before_any_work():
    # oneDNN's 1x1 stride-2 weight gradient in channels_last corrupts the heap below 8 input channels on this AVX2
    # machine (16 with AVX-512): a refusal, never a crash.
    from engine import registry

    c = tiny(width=8, device="cpu")
    for setting in (dict(memory_format="channels_last"), dict(compile=True)):
        problem = registry.preflight("resnet", c.replace(**setting))
        assert problem.startswith(f"{next(iter(setting))}=") and "needs width >= 16 on a CPU (width=8)" in problem
        with pytest.raises(ValueError, match="needs width >= 16 on a CPU"):
            R.run(c.replace(**setting), Recorder("resnet", {}), None)
    assert registry.preflight("resnet", c.replace(width=16, memory_format="channels_last")) is None
    assert registry.preflight("resnet", c.replace(precision="bf16", fused_sgd="on")) is None


def test_the_gpu_check_script_runs_on_the_cpu_in_smoke_mode(tmp_path):
    # benchmarks/gpu_check.py is prepared for a GPU machine; --cpu-smoke runs each of its parts at toy sizes here.
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([sys.executable, os.path.join(root, "benchmarks", "gpu_check.py"), "--cpu-smoke",
                           "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["mode"].startswith("CPU smoke run")
    assert set(result) >= {"agreement", "throughput_images_per_s", "metrics", "fig7_plain_epoch"}
    assert 0 <= result["agreement"]["max_rel"]["cpu_gpu_path vs cpu_float32"] <= BF16_TOL
    speed = result["throughput_images_per_s"]
    assert speed["engine"]["median"] > 0 and speed["plain"]["median"] > 0
    assert 0 < result["metrics"]["share"] < 1
    assert result["fig7_plain_epoch"]["status"] == "done" and "CIFAR-10's shape" in result["fig7_plain_epoch"]["data"]
    assert "one fig7-plain epoch" in done.stdout


# ----------------------------------------------------------------------------- deterministic setting (issue 16)
def test_the_deterministic_setting_repeats_a_run_bit_for_bit_and_restores_the_switches(monkeypatch):
    """Two runs of one config (sota: augmentation and momentum, so batch order and crops are drawn) give the same
    histories and final parameters bit for bit; the process-wide switches are on only while the run trains."""
    config = tiny(setting="sota", deterministic=True, epochs=1)
    seen, finals = [], []
    plain_train = Training.train

    def train(self):
        seen.append((torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
                     torch.backends.cudnn.benchmark))
        result = plain_train(self)
        finals.append(torch.cat([p.detach().flatten() for p in self.model.parameters()]).numpy().tobytes())
        return result

    monkeypatch.setattr(Training, "train", train)
    views = []
    for _ in range(2):
        rec = Recorder("resnet", config.to_dict())
        R.run(config, rec)
        views.append(rec.view())
    assert seen == [(True, True, False)] * 4  # two runs of the table, twice
    assert not torch.are_deterministic_algorithms_enabled()
    assert [r["status"] for r in views[0]["runs"]] == ["done", "done"]
    measured = [{k: v for k, v in r["history"].items() if k != "images_per_s"} for view in views for r in view["runs"]]
    assert measured[:2] == measured[2:] and measured[0] != measured[1]  # images/s is a clock reading
    assert finals[:2] == finals[2:] and finals[0] != finals[1]
