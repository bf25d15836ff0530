"""The engine version in cache keys and in sweep results: a hash of the engine's sources."""

from __future__ import annotations

import hashlib
from pathlib import Path


def source_version(root: Path | None = None) -> str:
    """A hash of every source file of the engine (under `root`, default this package): any change to the code
    that computes results changes the version in the cache keys, so a stored result is never served from older
    code."""
    root = root or Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


ENGINE_VERSION = source_version()
