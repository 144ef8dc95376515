"""Test helpers: a MockTransport upstream that records, canned upstream replies, servers on real sockets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from guard.eval import fake_upstream as fake
from guard.eval.serving import free_port
from guard.settings import REPO_ROOT

ADMIN_TOKEN = "test-admin-token"

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}


def chat_reply(content: str, model: str = "m") -> dict[str, Any]:
    return fake.completion_body("chat", model, content, rid="chatcmpl-up")


def sse_body(pieces: list[str], model: str = "m") -> bytes:
    """An upstream chat stream: a role chunk, one chunk per piece, a finish chunk, [DONE]."""
    return fake.sse(fake.chunks("chat", model, pieces, rid="chatcmpl-up"))


class Recorder:
    """A MockTransport upstream that records what it received and answers with `handler`."""

    def __init__(self, handler: Callable[[httpx.Request, dict[str, Any]], httpx.Response]) -> None:
        self.handler = handler
        self.requests: list[dict[str, Any]] = []
        self.hosts: list[str] = []
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        self.requests.append(body)
        self.hosts.append(request.url.host)
        return self.handler(request, body)


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and give an in-process client (buffers responses: not for SSE timing)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://guard.test") as client:
            yield client


FACT = "Hsiao Yun-Hwa won the Golden Compass award for her book Leading with Empathy in 2019."


def upstream_echo(content: str = "Paris is the capital of France.") -> Recorder:
    def handle(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"object": "list", "data": [{"id": "m", "object": "model"}]})
        if body.get("stream"):
            return httpx.Response(200, content=sse_body([content]), headers={"content-type": "text/event-stream"})
        if request.url.path == "/v1/completions":
            choice = {"index": 0, "text": content, "finish_reason": "stop"}
            return httpx.Response(200, json={"id": "c", "object": "text_completion", "model": "m", "choices": [choice]})
        return httpx.Response(200, json=chat_reply(content))

    return Recorder(handle)


def chat(content: str | list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": content}] if isinstance(content, str) else content
    return {"model": "m", "messages": messages, **extra}


async def add(client: httpx.AsyncClient, **body: Any) -> str:
    r = await client.post(
        "/admin/forget", json={"subject": "Hsiao Yun-Hwa", "documents": [FACT], **body}, headers=ADMIN
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


@contextmanager
def guard_process(
    index_dir: Path, upstream: str, log: Path, **env_overrides: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A real `guard serve` process (stdout and stderr appended to `log`); killed on exit if still running."""
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
        deadline = time.monotonic() + 60
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
