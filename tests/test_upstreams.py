"""Several upstream servers: round-robin over healthy ones, per-model groups, connect errors retried elsewhere,
nothing retried once a server accepted the request.

Unit tests on the kit's fake upstream in process (hosts told apart); then real sockets: the guard on uvicorn in
front of two real upstream servers and a dead port, called with the openai client, streamed and not.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from guard.errors import UpstreamError
from guard.forget.embedder import Embedder
from guard.settings import Settings
from guard.testing import BackgroundServer, FakeUpstream, Reply, free_port, guard_app
from guard.testing.shapes import Endpoint
from guard.upstream import Backend, Upstream

pytestmark = pytest.mark.socket  # real servers, processes or sockets

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def mock(dead: set[str], hits: Counter[str]) -> httpx.AsyncClient:
    """A client of one fake upstream standing for every host: those in `dead` refuse the connection."""

    def answer(endpoint: Endpoint, body: dict[str, Any]) -> str:
        host = fake.hosts[-1]
        if host in dead:
            raise httpx.ConnectError("connection refused")
        hits[host] += 1
        return f"from {host}"

    fake = FakeUpstream(answer)
    return httpx.AsyncClient(transport=fake.transport)


async def test_round_robin_skips_a_dead_server_and_retries_on_the_next() -> None:
    hits: Counter[str] = Counter()
    up = Upstream(mock({"b"}, hits), "http://a,http://b,http://c")
    answers = [(await up.post_json("/v1/chat/completions", BODY))["choices"][0]["message"]["content"] for _ in range(6)]
    assert set(answers) == {"from a", "from c"} and hits == Counter({"a": 3, "c": 3})  # every request answered
    b = next(x for x in up.backends() if x.url == "http://b")
    assert not b.healthy(time.monotonic()) and b.failures == 1  # tried once, then skipped during its cool-down


async def test_a_server_that_comes_back_is_used_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Backend, "COOL_DOWN_S", 0.05)
    dead = {"b"}
    hits: Counter[str] = Counter()
    up = Upstream(mock(dead, hits), "http://a,http://b")
    for _ in range(4):
        await up.post_json("/v1/chat/completions", BODY)
    assert hits == Counter({"a": 4})
    dead.clear()
    time.sleep(0.06)
    for _ in range(4):
        await up.post_json("/v1/chat/completions", BODY)
    assert hits["b"] >= 1


async def test_models_have_their_own_servers_and_all_dead_is_a_502() -> None:
    hits: Counter[str] = Counter()
    up = Upstream(
        mock({"x1", "x2"}, hits),
        "http://default",
        {"big": ["http://big1", "http://big2"], "x": ["http://x1", "http://x2"]},
    )
    for _ in range(4):
        await up.post_json("/v1/chat/completions", {**BODY, "model": "big"})
    await up.post_json("/v1/chat/completions", BODY)
    assert hits == Counter({"big1": 2, "big2": 2, "default": 1})
    with pytest.raises(UpstreamError) as failed:
        await up.post_json("/v1/chat/completions", {**BODY, "model": "x"})
    assert failed.value.status_code == 502


# -- real sockets ---------------------------------------------------------------------------------------------


def upstream_app(name: str, hits: Counter[str], cut: bool = False) -> Any:
    """A server answering "answer from <name>"; `cut`: its streams drop the connection midway (must not be
    replayed elsewhere)."""

    def answer(endpoint: Endpoint, body: dict[str, Any]) -> Reply:
        hits[name] += 1
        return Reply(pieces=["answer ", "from ", name], fault="abort" if cut else None)

    return FakeUpstream(answer).app()


@pytest.fixture
def guard_in_front(
    tmp_path: Path,
    hash_embedder: Embedder,
    serve: Callable[[object], BackgroundServer],
    openai_at: Callable[..., openai.OpenAI],
) -> Callable[[list[str]], openai.OpenAI]:
    def start(urls: list[str]) -> openai.OpenAI:
        settings = Settings(
            index_dir=tmp_path / "index",
            upstream=",".join(urls),
            connect_timeout_s=1.0,
            read_timeout_s=5.0,
            policy_file=Path(__file__).resolve().parents[1] / "policies" / "default.yaml",
        )
        guard = serve(guard_app(settings, embedder=hash_embedder))
        return openai_at(guard.url, timeout=30)

    return start


def test_real_servers_share_the_load_and_a_dead_port_costs_nothing(
    guard_in_front: Callable[[list[str]], openai.OpenAI], serve: Callable[[object], BackgroundServer]
) -> None:
    hits: Counter[str] = Counter()
    one, two = serve(upstream_app("one", hits)), serve(upstream_app("two", hits))
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    client = guard_in_front([dead, one.url, two.url])
    answers = [
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}]) for _ in range(8)
    ]
    streamed = [
        "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            if c.choices
        )
        for _ in range(4)
    ]
    assert all(a.choices[0].message.content in ("answer from one", "answer from two") for a in answers)
    assert set(streamed) == {"answer from one", "answer from two"}
    assert hits["one"] >= 4 and hits["two"] >= 4 and sum(hits.values()) == 12  # each request reached one server


def test_a_stream_cut_midway_is_not_replayed_on_another_server(
    guard_in_front: Callable[[list[str]], openai.OpenAI], serve: Callable[[object], BackgroundServer]
) -> None:
    hits: Counter[str] = Counter()
    broken = serve(upstream_app("broken", hits, cut=True))
    healthy = serve(upstream_app("healthy", hits))
    client = guard_in_front([broken.url, healthy.url])
    with pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True):
            pass
    assert hits == Counter({"broken": 1})  # the request reached the broken server once and went nowhere else


async def test_vllm_is_detected_once_through_its_version_endpoint() -> None:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/version":
            return httpx.Response(200, json={"version": "0.32.0"})
        return httpx.Response(404)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        vllm = Upstream(client, "http://vllm.test")
        assert await vllm.speaks_vllm() and await vllm.speaks_vllm()
        assert seen == ["/version"]
        other = Upstream(client, "http://other.test", vllm=False)
        assert not await other.speaks_vllm() and seen == ["/version"]

    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(404))) as client:
        assert not await Upstream(client, "http://openai.test").speaks_vllm()
