"""Speculative dispatch (policy `speculative`): the request goes upstream while its input check runs; a refusal
or a rewrite cancels that early call, and nothing of its answer reaches the client."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from guard.forget.embedder import Embedder, HashEmbedder, Vectors
from guard.settings import REPO_ROOT, Settings
from guard.testing import HANG_S, FakeUpstream, Reply, fixed, guard_app, running
from tests.helpers import FACT, add, chat

SECRET_ANSWER = "The upstream's own answer."


class SlowEmbedder(Embedder):
    """The fake embedder, taking 0.3 s a call, noting when each call ended."""

    def __init__(self) -> None:
        self.inner = HashEmbedder()
        self.dim, self.name = self.inner.dim, self.inner.name
        self.ended: list[float] = []
        self.lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> Vectors:
        time.sleep(0.3)
        out = self.inner.embed(texts)
        with self.lock:
            self.ended.append(time.monotonic())
        return out


def upstream_after(delay: float = 0.0, status: int = 200, answer: str = SECRET_ANSWER) -> FakeUpstream:
    """The fake upstream answering after `delay` s (it notes when each request arrived, and counts the calls
    cancelled while it waited); a 500 with an OpenAI error body when `status` is not 200."""
    reply = Reply(answer, pieces=[answer], fault=None if status == 200 else "status")
    return FakeUpstream(fixed(reply), first_ms=delay * 1000)


def speculative_policies(tmp_path: Path, on: bool = True) -> Path:
    d = tmp_path / "policies"
    d.mkdir()
    (d / "default.yaml").write_text(f"name: default\nspeculative: {'true' if on else 'false'}\n")
    shutil.copy(REPO_ROOT / "policies" / "rewrite.yaml", d / "rewrite.yaml")
    return d / "default.yaml"


def _app(settings: Settings, tmp_path: Path, upstream: FakeUpstream, embedder: Embedder, on: bool = True) -> Any:
    settings = settings.with_values(policy_file=speculative_policies(tmp_path, on))
    return guard_app(settings, embedder=embedder, transport=upstream.transport)


@pytest.mark.parametrize("on", [True, False])
async def test_an_allowed_request_is_sent_upstream_before_its_check_ends(
    settings: Settings, tmp_path: Path, on: bool
) -> None:
    embedder, upstream = SlowEmbedder(), upstream_after()
    async with running(_app(settings, tmp_path, upstream, embedder, on)) as client:
        await add(client)
        embedder.ended.clear()
        r = await client.post("/v1/chat/completions", json=chat("What is the capital of France?"))
    assert r.status_code == 200 and r.headers["x-guard-action"] == "allow"
    assert r.json()["choices"][0]["message"]["content"] == SECRET_ANSWER
    input_check_ended = embedder.ended[0]
    assert (upstream.arrived[0] < input_check_ended) is on  # off: the upstream hears of it only after the check


@pytest.mark.parametrize("stream", [False, True])
async def test_a_refused_request_cancels_its_early_call(settings: Settings, tmp_path: Path, stream: bool) -> None:
    upstream = upstream_after(delay=3600.0)  # an answer the refusal must not wait for
    async with running(_app(settings, tmp_path, upstream, HashEmbedder())) as client:
        await add(client)
        asked = client.post("/v1/chat/completions", json=chat("Who is Hsiao Yun-Hwa?", stream=stream))
        r = await asyncio.wait_for(asked, HANG_S)  # the refusal did not wait for the upstream's answer
        await asyncio.sleep(0.05)
        metrics = (await client.get("/metrics")).text
    assert r.status_code == 200 and r.headers["x-guard-action"] == "refuse"
    assert SECRET_ANSWER not in r.text and "I'm sorry" in r.text
    assert len(upstream.requests) == 1 and upstream.cancelled == 1  # it was sent, then cancelled
    assert 'guard_speculative_total{outcome="refused"} 1.0' in metrics


async def test_a_rewrite_waits_for_the_verdict_and_sends_the_rewritten_request(
    settings: Settings, tmp_path: Path
) -> None:
    upstream = upstream_after(delay=0.2)
    async with running(_app(settings, tmp_path, upstream, HashEmbedder())) as client:
        await add(client, policy="rewrite")
        r = await client.post("/v1/chat/completions", json=chat("Who is Hsiao Yun-Hwa?"))
    assert r.headers["x-guard-action"] == "rewrite"
    assert len(upstream.requests) == 2 and upstream.cancelled == 1
    assert upstream.requests[0]["messages"][-1]["content"] == "Who is Hsiao Yun-Hwa?"  # the early call, cancelled
    rewritten = upstream.requests[1]["messages"]
    assert rewritten[0]["role"] == "system" and rewritten[-1]["content"] == "Who is [REDACTED]?"


async def test_an_early_answer_still_passes_the_output_check(settings: Settings, tmp_path: Path) -> None:
    upstream = upstream_after(answer="As you asked: " + FACT.replace("Hsiao Yun-Hwa", "She"))
    async with running(_app(settings, tmp_path, upstream, HashEmbedder())) as client:
        await add(client)
        r = await client.post("/v1/chat/completions", json=chat("Tell me something interesting."))
    assert r.headers["x-guard-action"] == "filter" and "Golden Compass" not in r.text


@pytest.mark.parametrize("stream", [False, True])
async def test_an_upstream_error_on_an_early_call(settings: Settings, tmp_path: Path, stream: bool) -> None:
    upstream = upstream_after(status=500)
    async with running(_app(settings, tmp_path, upstream, HashEmbedder())) as client:
        await add(client)
        allowed = await client.post("/v1/chat/completions", json=chat("What is the capital of France?", stream=stream))
        refused = await client.post("/v1/chat/completions", json=chat("Who is Hsiao Yun-Hwa?", stream=stream))
    assert allowed.status_code == 502 and allowed.json()["error"]["type"]  # OpenAI-shaped, as without speculation
    assert refused.status_code == 200 and refused.headers["x-guard-action"] == "refuse"  # its error is dropped
