"""Image data for the ResNet experiment: CIFAR-10/100 and scikit-learn's bundled digits, as uint8 tensors.

CIFAR is read from the pickled batch files torchvision's CIFAR10/CIFAR100 read
(`cifar-10-batches-py/data_batch_1..5, test_batch`; `cifar-100-python/train, test`) in a folder
that must stay inside the data root (`$SPARSE_SGD_DATA`, default `data/` beside the engine).
Nothing downloads unless `download()` is called (the page's button, or
`python -m engine.cifar cifar10`). The digits (1797 8x8 images, bundled with scikit-learn, so
always offline) are upsampled to 16x16 and split 1348 / 449 with a fixed seed.
"""

from __future__ import annotations

import functools
import os
import pickle
import sys
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "data"
DATASETS = ("cifar10", "cifar100", "digits")
DIGITS_TRAIN = 1348  # training digits after the fixed 75/25 split
LABELS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "digits": "digits (scikit-learn, offline)"}
_FILES = {  # folder torchvision extracts to, train files, test files, label key
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "fine_labels"),
}


@dataclass(frozen=True)
class ImageData:
    """A classification data set as uint8 images (N, C, H, W) and int64 labels, on the CPU."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one image."""
        return tuple(self.train_x.shape[1:])


def data_root() -> Path:
    """`$SPARSE_SGD_DATA` if set, else `data/` beside the engine."""
    return Path(os.environ.get("SPARSE_SGD_DATA") or DEFAULT_ROOT)


def resolve_folder(data_dir: str = "", root: str | Path | None = None) -> Path:
    """The folder `data_dir` names (relative to the data root, or absolute), which must stay inside
    the root and exist; ValueError / FileNotFoundError with the reason otherwise."""
    root = Path(root) if root is not None else data_root()
    root_real = root.resolve()
    folder = (root / data_dir).resolve() if data_dir else root_real
    if not folder.is_relative_to(root_real):
        raise ValueError(f"data_dir={data_dir!r} is outside the data root {root_real}: name a folder inside it "
                         "(set $SPARSE_SGD_DATA to move the root)")
    if not folder.is_dir():
        raise FileNotFoundError(f"data folder {folder} does not exist: create it inside the data root {root_real}, "
                                "or download CIFAR into the root (the ResNet page's button or "
                                "`python -m engine.cifar cifar10`)")
    return folder


def _batch_dir(name: str, folder: Path) -> Path:
    """The folder holding the batch files: `folder` itself or torchvision's subfolder inside it."""
    sub, train, test, _ = _FILES[name]
    for candidate in (folder / sub, folder):
        if all((candidate / f).is_file() for f in train + test):
            return candidate
    raise FileNotFoundError(
        f"{LABELS[name]} not found in {folder}: expected {sub}/{', '.join(train + test)} (the pickled batches "
        f"torchvision reads). Download it (page button or `python -m engine.cifar {name}`), or extract "
        f"{name.replace('cifar', 'cifar-')}-python.tar.gz there.")


def available(name: str, data_dir: str = "", root: str | Path | None = None) -> bool:
    """Whether `name` can be loaded without a download (digits always can)."""
    if name == "digits":
        return True
    try:
        _batch_dir(name, resolve_folder(data_dir, root))
        return True
    except (ValueError, FileNotFoundError):
        return False


def _read_batches(folder: Path, files: list[str], label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for f in files:
        with open(folder / f, "rb") as fh:
            entry = pickle.load(fh, encoding="latin1")
        xs.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(entry[label_key], dtype=np.int64))
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


@functools.lru_cache(maxsize=2)
def _load_cifar(name: str, folder: Path) -> ImageData:
    batch_dir = _batch_dir(name, folder)
    _, train, test, key = _FILES[name]
    train_x, train_y = _read_batches(batch_dir, train, key)
    test_x, test_y = _read_batches(batch_dir, test, key)
    return ImageData(name, train_x, train_y, test_x, test_y, 10 if name == "cifar10" else 100)


@functools.lru_cache(maxsize=1)
def load_digits(size: int = 16, test_fraction: float = 0.25) -> ImageData:
    """scikit-learn's 8x8 digits as uint8 1-channel images upsampled (bilinear) to size x size."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    y = torch.from_numpy(d.target.astype(np.int64))
    order = torch.from_numpy(np.random.RandomState(0).permutation(len(y)))
    n_test = int(round(test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    return ImageData("digits", x[train], y[train], x[test], y[test], 10)


def load(name: str, data_dir: str = "", root: str | Path | None = None) -> ImageData:
    """The data set `name` (cifar10 | cifar100 | digits); CIFAR from `data_dir` inside the data root."""
    if name == "digits":
        return load_digits()
    if name not in _FILES:
        raise ValueError(f"dataset={name!r} is not allowed: expected one of {', '.join(DATASETS)}")
    return _load_cifar(name, resolve_folder(data_dir, root))


def download(name: str, root: str | Path | None = None, progress: Callable[[float], None] | None = None,
             timeout: float = 20.0) -> Path:
    """Download and extract CIFAR (torchvision's URL and checksum) into the data root; returns the
    folder. ConnectionError with a clear message when the network is not reachable."""
    from torchvision.datasets import CIFAR10, CIFAR100
    from torchvision.datasets.utils import check_integrity, extract_archive

    if name not in _FILES:
        raise ValueError(f"only CIFAR downloads: dataset={name!r} (digits ship with scikit-learn)")
    spec = CIFAR10 if name == "cifar10" else CIFAR100
    root = Path(root) if root is not None else data_root()
    root.mkdir(parents=True, exist_ok=True)
    archive = root / spec.filename
    if not check_integrity(str(archive), spec.tgz_md5):
        part = archive.with_suffix(".part")
        try:
            with urllib.request.urlopen(spec.url, timeout=timeout) as response, open(part, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0)
                done = 0
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    done += len(chunk)
                    if progress and total:
                        progress(min(done / total, 1.0))
        except OSError as exc:  # URLError, timeouts and resets are all OSErrors
            part.unlink(missing_ok=True)
            raise ConnectionError(
                f"could not download {LABELS[name]} from {spec.url} ({getattr(exc, 'reason', exc)}): no network? "
                f"Fetch {spec.filename} elsewhere and extract it into {root}") from None
        if not check_integrity(str(part), spec.tgz_md5):
            part.unlink(missing_ok=True)
            raise ConnectionError(f"the download of {spec.filename} is corrupt (md5 mismatch): try again")
        part.replace(archive)
    extract_archive(str(archive), str(root))
    _load_cifar.cache_clear()
    return root / _FILES[name][0]


class Download:
    """`download()` running in a daemon thread, for pages: `progress` in [0, 1], `error`, `done`."""

    def __init__(self, name: str, root: str | Path | None = None):
        self.name, self.progress, self.error, self.done = name, 0.0, None, False
        self.thread = threading.Thread(target=self._work, args=(root,), daemon=True, name=f"download-{name}")
        self.thread.start()

    def _work(self, root) -> None:
        try:
            download(self.name, root, progress=lambda f: setattr(self, "progress", f))
        except Exception as exc:  # reported on the page
            self.error = str(exc)
        finally:
            self.done = True


if __name__ == "__main__":
    # python -m engine.cifar cifar10|cifar100 : download into the data root
    target = sys.argv[1] if len(sys.argv) > 1 else "cifar10"
    try:
        print(download(target, progress=lambda f: print(f"\r{f:6.1%}", end="", file=sys.stderr)))
    except (ConnectionError, ValueError) as exc:
        sys.exit(f"error: {exc}")
