"""The embedding-server backend (`guard.forget.remote`) against a MockTransport server, and the registry's record of
which embedder wrote its vectors. The same backend against a real vLLM pooling server: tests/e2e."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from guard.forget.embedder import HashEmbedder
from guard.forget.index import ForgetIndex
from guard.forget.registry import RegistryMismatch
from guard.forget.remote import RemoteEmbedder, RemoteEmbedderError
from guard.forget.sqlite import REGISTRY_FILE, SqliteRegistry
from guard.settings import Settings
from guard.testing import guard_app, running
from tests.helpers import FACT, add, chat, upstream_echo


class Server:
    """An OpenAI-compatible /v1/embeddings answering with the fake embedder's vectors (unnormalised: x3)."""

    def __init__(self) -> None:
        self.inner = HashEmbedder()
        self.batches: list[int] = []
        self.fail: str | None = None
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        body: dict[str, Any] = json.loads(request.content)
        texts = body["input"]
        self.batches.append(len(texts))
        if self.fail == "status":
            return httpx.Response(500, json={"error": {"message": "boom"}})
        if self.fail == "malformed":
            return httpx.Response(200, json={"data": "nope"})
        vectors = self.inner.embed(texts) * 3.0
        if self.fail == "dims":
            vectors = vectors[:, :10]
        data = [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]
        return httpx.Response(200, json={"object": "list", "data": list(reversed(data)), "model": body["model"]})


def test_batches_normalises_and_keeps_the_order() -> None:
    server = Server()
    remote = RemoteEmbedder("http://emb.test", "all-MiniLM-L6-v2", batch_size=64, transport=server.transport)
    assert remote.dim == server.inner.dim and remote.space == "all-MiniLM-L6-v2"
    texts = [f"text number {i}" for i in range(130)]
    got = remote.embed(texts)
    assert server.batches == [1, 64, 64, 2]  # the start-up probe, then batches of 64
    assert np.allclose(got, server.inner.embed(texts), atol=1e-6)  # in order (the server answered reversed)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0)


@pytest.mark.parametrize("fail", ["status", "malformed", "dims"])
def test_a_bad_answer_is_an_error_not_a_vector(fail: str) -> None:
    server = Server()
    remote = RemoteEmbedder("http://emb.test", "m", transport=server.transport)
    server.fail = fail
    with pytest.raises(RemoteEmbedderError):
        remote.embed(["Where was she born?"])


async def test_a_failing_server_is_on_error_closed_on_the_request_path(settings: Settings) -> None:
    server = Server()
    remote = RemoteEmbedder("http://emb.test", "m", transport=server.transport)
    up = upstream_echo()
    async with running(guard_app(settings, embedder=remote, transport=up.transport)) as client:
        await add(client)
        server.fail = "status"
        r = await client.post("/v1/chat/completions", json=chat("What is the capital of France?"))
    assert r.status_code == 200 and r.headers["x-guard-action"] == "refuse"  # the default on_error: closed
    assert up.requests == []


async def test_the_registry_refuses_vectors_of_another_embedder(tmp_path: Path) -> None:
    class Other(HashEmbedder):
        name = "other-model"

    path = tmp_path / REGISTRY_FILE
    first = HashEmbedder()
    index = await ForgetIndex.open(SqliteRegistry(path, first.dim), first, ngram_words=12, typo_min_chars=6)
    await index.add("Hsiao Yun-Hwa", [], [FACT], None)
    await index.aclose()
    with pytest.raises(RegistryMismatch, match="'hash'"):
        await ForgetIndex.open(SqliteRegistry(path, first.dim), Other(), ngram_words=12, typo_min_chars=6)
    again = await ForgetIndex.open(SqliteRegistry(path, first.dim), first, ngram_words=12, typo_min_chars=6)
    assert len(again) == 1  # the same embedder opens it, nothing was changed
    await again.aclose()
    empty = await ForgetIndex.open(
        SqliteRegistry(tmp_path / "b.sqlite3", 64), Other(), ngram_words=12, typo_min_chars=6
    )
    await empty.aclose()  # an empty registry takes any embedder
