"""The real upstream: vLLM's CPU build serving SmolLM2-135M-Instruct, started once per test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from guard.eval.serving import free_port
from guard.localmodel import serve as local


@pytest.fixture(scope="session")
def vllm_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log: Path = tmp_path_factory.mktemp("vllm") / "vllm.log"
    proc = local.start_vllm(port, log_file=log)
    url = f"http://127.0.0.1:{port}"
    try:
        local.wait_ready(f"{url}/health", proc, timeout_s=600)
    except local.LocalModelError as exc:
        local.stop(proc)
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise RuntimeError(f"vLLM did not start: {exc}\n{tail}") from exc
    yield url
    local.stop(proc)


@pytest.fixture(scope="session")
def vllm_embedder_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """vLLM's pooling runner serving all-MiniLM-L6-v2 (/v1/embeddings), started once per test session."""
    port = free_port()
    log: Path = tmp_path_factory.mktemp("vllm-embedder") / "vllm.log"
    proc = local.start_vllm_embedder(port, log_file=log)
    url = f"http://127.0.0.1:{port}"
    try:
        local.wait_ready(f"{url}/health", proc, timeout_s=600)
    except local.LocalModelError as exc:
        local.stop(proc)
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise RuntimeError(f"vLLM (embedder) did not start: {exc}\n{tail}") from exc
    yield url
    local.stop(proc)
