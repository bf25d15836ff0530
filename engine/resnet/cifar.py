"""Image data for the ResNet experiment: CIFAR-10/100 and scikit-learn's bundled digits, as uint8 tensors.

CIFAR is read from the pickled batch files torchvision's CIFAR10/CIFAR100 read
(`cifar-10-batches-py/data_batch_1..5, test_batch`; `cifar-100-python/train, test`) in a folder
that must stay inside the data root (`$SPARSE_SGD_DATA`, default `data/` beside the engine), as must every
file once links are followed; a batch is unpickled only when its MD5 sum is the official file's.
Nothing downloads unless `download()` is called (the page's button, or
`python -m engine.resnet.cifar cifar10`). The digits (1797 8x8 images, bundled with scikit-learn, so
always offline) are upsampled to 16x16 and split 1348 / 449 with a fixed seed.
"""

from __future__ import annotations

import functools
import hashlib
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
# The official batch files' MD5 sums (torchvision's CIFAR10/CIFAR100 train_list + test_list). A pickle can run
# code, so a batch is unpickled only when its sum matches.
MD5 = {
    "cifar10": {"data_batch_1": "c99cafc152244af753f735de768cd75f", "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
                "data_batch_3": "54ebc095f3ab1f0389bbae665268c751", "data_batch_4": "634d18415352ddfa80567beed471001a",
                "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb", "test_batch": "40351d587109b95175f43aff81a1287e"},
    "cifar100": {"train": "16019d7e3df5f24257cddd939b257f8d", "test": "f0ef6b0ae62326f3e7ffdfab6717acfc"},
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


def _shown(data_dir: str) -> str:
    return repr(data_dir if len(data_dir) <= 80 else data_dir[:77] + "...")


def _confined(path: Path, root_real: Path) -> Path | None:
    """`path` with every link followed, or None when it leaves `root_real` or cannot be resolved (too long, a
    link loop, a NUL byte)."""
    try:
        real = path.resolve()
        real.lstat()  # surfaces over-long names and loops that resolve() passes over
    except (FileNotFoundError, NotADirectoryError):  # inside the root but missing: the caller says so
        pass
    except (OSError, RuntimeError, ValueError):
        return None
    return real if real.is_relative_to(root_real) else None


def _relative(path: Path, root_real: Path) -> str:
    """How a path inside the data root is shown: relative to it, never the absolute root."""
    rel = path.relative_to(root_real).as_posix()
    return "the data root" if rel == "." else f"{rel!r} in the data root"


def resolve_folder(data_dir: str = "", root: str | Path | None = None) -> Path:
    """The folder `data_dir` names (relative to the data root, or absolute), which must stay inside
    the root and exist; ValueError / FileNotFoundError with the reason otherwise (the messages never show
    the absolute data root)."""
    root = Path(root) if root is not None else data_root()
    root_real = root.resolve()
    folder = _confined(root / data_dir, root_real) if data_dir else root_real
    if folder is None:
        raise ValueError(f"data_dir={_shown(data_dir)} is outside the data root (or not a path that resolves): "
                         "name a folder inside it (set $SPARSE_SGD_DATA to move the root)")
    if not folder.is_dir():
        raise FileNotFoundError(f"data folder {_shown(data_dir)} does not exist: create it inside the data root, "
                                "or download CIFAR into the root (the ResNet page's button or "
                                "`python -m engine.resnet.cifar cifar10`)")
    return folder


def _batch_files(name: str, folder: Path, root_real: Path) -> list[tuple[str, Path]]:
    """The batch files (train, then test) as (official name, resolved path inside the data root): in `folder`
    itself or in torchvision's subfolder inside it. ValueError when one is a link leading out of the root."""
    sub, train, test, _ = _FILES[name]
    for candidate in (folder / sub, folder):
        files = [candidate / f for f in train + test]
        real = [_confined(f, root_real) for f in files]
        for f, r in zip(files, real):
            if r is None:
                raise ValueError(f"{_relative(candidate, root_real)}: {f.name} is outside the data root (a link "
                                 "leading out of it, or not a path that resolves): copy the file in instead")
        if all(r.is_file() for r in real):
            return [(f.name, r) for f, r in zip(files, real)]
    raise FileNotFoundError(
        f"{LABELS[name]} not found in {_relative(folder, root_real)}: expected {sub}/{', '.join(train + test)} (the "
        f"pickled batches torchvision reads). Download it (page button or `python -m engine.resnet.cifar {name}`), or "
        f"extract {name.replace('cifar', 'cifar-')}-python.tar.gz there.")


def available(name: str, data_dir: str = "", root: str | Path | None = None) -> bool:
    """Whether `name` can be loaded without a download (digits always can)."""
    if name == "digits":
        return True
    try:
        root_real = (Path(root) if root is not None else data_root()).resolve()
        _batch_files(name, resolve_folder(data_dir, root), root_real)
        return True
    except (ValueError, OSError):
        return False


def _read_batches(name: str, files: list[tuple[str, Path]], label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of the official batch files: each file's MD5 is checked before it is unpickled."""
    xs, ys = [], []
    for official, path in files:
        blob = path.read_bytes()
        if hashlib.md5(blob, usedforsecurity=False).hexdigest() != MD5[name].get(official):
            raise ValueError(f"{official} is not the official {LABELS[name]} batch (its MD5 sum differs): it is not "
                             f"read. Download {LABELS[name]} again (page button or "
                             f"`python -m engine.resnet.cifar {name}`)")
        entry = pickle.loads(blob, encoding="latin1")
        xs.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(entry[label_key], dtype=np.int64))
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


@functools.lru_cache(maxsize=2)
def _load_cifar(name: str, folder: Path, root_real: Path) -> ImageData:
    files = _batch_files(name, folder, root_real)
    _, train, _, key = _FILES[name]
    train_x, train_y = _read_batches(name, files[:len(train)], key)
    test_x, test_y = _read_batches(name, files[len(train):], key)
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
    root_real = (Path(root) if root is not None else data_root()).resolve()
    return _load_cifar(name, resolve_folder(data_dir, root), root_real)


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
                f"Fetch {spec.filename} elsewhere and extract it into the data root ($SPARSE_SGD_DATA, default "
                "data/)") from None
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
    # python -m engine.resnet.cifar cifar10|cifar100 : download into the data root
    target = sys.argv[1] if len(sys.argv) > 1 else "cifar10"
    try:
        print(download(target, progress=lambda f: print(f"\r{f:6.1%}", end="", file=sys.stderr)))
    except (ConnectionError, ValueError) as exc:
        sys.exit(f"error: {exc}")
