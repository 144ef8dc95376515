"""The real servers: vLLM's CPU build serving SmolLM2-135M-Instruct (the upstream) and all-MiniLM-L6-v2 (its
pooling runner: an embedding server), each started once per test session."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from guard.localmodel import serve as local
from guard.testing.server import free_port

STARTED = time.time()  # screenshots older than this run are not listed


def _served(
    tmp_path_factory: pytest.TempPathFactory, what: str, start: Callable[..., subprocess.Popen[bytes]]
) -> Iterator[str]:
    port = free_port()
    log: Path = tmp_path_factory.mktemp(what) / "vllm.log"
    proc = start(port, log_file=log)
    url = f"http://127.0.0.1:{port}"
    try:
        local.wait_ready(f"{url}/health", proc, timeout_s=600)
    except local.LocalModelError as exc:
        local.stop(proc)
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise RuntimeError(f"vLLM ({what}) did not start: {exc}\n{tail}") from exc
    yield url
    local.stop(proc)


@pytest.fixture(scope="session")
def vllm_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _served(tmp_path_factory, "vllm", local.start_vllm)


@pytest.fixture(scope="session")
def vllm_embedder_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """/v1/embeddings serving the guard's own model."""
    yield from _served(tmp_path_factory, "vllm-embedder", local.start_vllm_embedder)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Where the console test's screenshots are (tests/e2e/test_console_browser.py)."""
    from tests.e2e.test_console_browser import SHOTS

    shots = sorted(p for p in SHOTS.glob("*.png") if p.stat().st_mtime >= STARTED) if SHOTS.exists() else []
    if shots:
        terminalreporter.section("console screenshots (headless Chromium)")
        for path in shots:
            terminalreporter.write_line(f"{path}  {path.stat().st_size // 1024} KiB")
