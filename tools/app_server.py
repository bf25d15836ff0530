"""The real app as a subprocess for the browser tests, the README screenshots and the watched-run benchmark:
`streamlit run app.py` on a free local port with its own cache folder, stopped on exit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(cache: str | Path | None = None, timeout: float = 60) -> Iterator[str]:
    """The app's URL once its health check answers; RuntimeError with its output when it does not start."""
    port = free_port()
    env = dict(os.environ, SPARSE_SGD_CACHE=str(cache or tempfile.mkdtemp(prefix="app-cache-")))
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    proc.kill()
                    raise RuntimeError("the app did not start: " + proc.stdout.read().decode()[-2000:]) from None
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
