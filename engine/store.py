"""On-disk result cache (diskcache) keyed by experiment + config + engine version.

A corrupt, foreign or old-version entry reads as a miss, never as a crash.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine import ENGINE_VERSION

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "cache"


def cache_dir() -> Path:
    """`$SPARSE_SGD_CACHE` if set, else `cache/` beside the engine."""
    return Path(os.environ.get("SPARSE_SGD_CACHE") or DEFAULT_DIR)


class Store:
    """Finished results and per-job work folders (for resumable checkpoints) under one directory."""

    def __init__(self, directory: str | Path | None = None):
        import diskcache

        self.dir = Path(directory) if directory else cache_dir()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._cache = diskcache.Cache(str(self.dir / "results"))

    def get(self, key: str) -> dict | None:
        """The stored result for `key`, or None (missing, unreadable or from another engine version)."""
        try:
            entry = self._cache.get(key)
        except Exception:  # a corrupt entry is a miss
            return None
        if not isinstance(entry, dict) or entry.get("engine_version") != ENGINE_VERSION:
            return None
        result = entry.get("result")
        return result if isinstance(result, dict) and "runs" in result else None

    def put(self, key: str, result: dict) -> None:
        """Store a finished result."""
        self._cache.set(key, dict(engine_version=ENGINE_VERSION, result=result))

    def clear(self) -> None:
        """Drop every stored result."""
        self._cache.clear()

    def workdir(self, key: str) -> Path:
        """A folder where a long job keeps its resumable state (model/optimizer checkpoints)."""
        path = self.dir / "work" / key
        path.mkdir(parents=True, exist_ok=True)
        return path

    def stats(self) -> dict:
        """Number of stored results and bytes on disk."""
        try:
            return dict(entries=len(self._cache), bytes=self._cache.volume(), path=str(self.dir))
        except Exception:
            return dict(entries=0, bytes=0, path=str(self.dir))
