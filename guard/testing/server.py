"""Servers on 127.0.0.1 for tests, benchmarks and the eval: an ASGI app on uvicorn in a background thread, and a
real `guard serve` process; a free port, and a wait for a condition that only a hang would not reach."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from guard.settings import REPO_ROOT

ADMIN_TOKEN = "test-admin-token"
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
HANG_S = 60.0  # how long a test waits for something that must happen: only a hang (or a bug) waits this long


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout_s: float = HANG_S, what: str = "condition") -> None:
    """Poll `condition` until it holds; fail after `timeout_s`. Shows that something happens, not how fast."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not reached in {timeout_s} s"
        time.sleep(0.02)


class BackgroundServer:
    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, timeout_s: float = 120.0) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def guard_process(
    index_dir: Path, upstream: str, log: Path, **env_overrides: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A real `guard serve` process on the hash embedder (stdout and stderr appended to `log`), ready when
    entered; killed on exit if still running. GUARD_* settings in `env_overrides`."""
    port = free_port()
    env = {
        **os.environ,
        "GUARD_INDEX_DIR": str(index_dir),
        "GUARD_UPSTREAM": upstream,
        "GUARD_ADMIN_TOKEN": ADMIN_TOKEN,
        "GUARD_EMBEDDER": "hash",
        "GUARD_PORT": str(port),
        **env_overrides,
    }
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "guard", "serve"], cwd=REPO_ROOT, env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + HANG_S
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
