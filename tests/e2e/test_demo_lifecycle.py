"""`guard demo` stopped the way docker, systemd and `timeout` stop it (SIGTERM): exit 0, and its vLLM server with
every process it spawned is gone (checked by PID), not left behind as an orphan holding gigabytes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from guard.testing.server import free_port

pytestmark = pytest.mark.e2e


def children(pid: int) -> list[int]:
    """Every process whose parent is `pid` (from /proc), and theirs."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found + [g for c in found for g in children(c)]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_guard_demo_stops_its_model_server_on_sigterm(tmp_path: Path) -> None:
    port, model_port = free_port(), free_port()
    env = {
        **os.environ,
        "GUARD_EMBEDDER": "hash",
        "GUARD_INDEX_DIR": str(tmp_path / "index"),
        "GUARD_MULTILINGUAL": "off",
    }
    with (tmp_path / "demo.log").open("wb") as log:  # the child keeps its own copy of the descriptor
        demo = subprocess.Popen(
            [sys.executable, "-m", "guard", "demo", "--port", str(port), "--model-port", str(model_port)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert demo.poll() is None and time.monotonic() < deadline, (tmp_path / "demo.log").read_text()[-3000:]
            time.sleep(1)
        spawned = children(demo.pid)
        assert spawned, "the demo runs vLLM as its child"
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(120) == 0
        deadline = time.monotonic() + 30
        while any(alive(p) for p in spawned) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not [p for p in spawned if alive(p)], "processes left behind"
    finally:
        if demo.poll() is None:
            demo.kill()
        for pid in children(demo.pid):
            os.kill(pid, signal.SIGKILL)
