"""Live A/B in the proxy: a share of traffic to a second upstream, a header override, shadow mirroring."""

from __future__ import annotations

import logging
import random
from typing import Any

import httpx
import pytest

from guard.forget.embedder import Embedder
from guard.routing import Router
from guard.settings import Settings
from guard.testing import ADMIN, FakeUpstream, Reply, guard_app, running
from guard.testing.shapes import Endpoint
from guard.upstream import Upstream

LEAK = "Hsiao Yun-Hwa won the Golden Compass award in 2019."


def two_upstreams() -> FakeUpstream:
    """A answers plainly; B (a 'weight-edited' model here) still knows the fact. One fake, told apart by host."""

    def answer(endpoint: Endpoint, body: dict[str, Any]) -> Reply:
        host = fake.hosts[-1]
        content = LEAK if host == "b.test" else f"answer from {host}"
        return Reply(content, pieces=[content])  # a stream of one chunk

    fake = FakeUpstream(answer)
    return fake


def ab_settings(settings: Settings, **update: Any) -> Settings:
    return settings.with_values(upstream="http://a.test", upstream_b="http://b.test", **update)


def ask(text: str = "Tell me something.", **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}], **extra}


async def test_share_routes_traffic_and_the_header_overrides(settings: Settings, hash_embedder: Embedder) -> None:
    up = two_upstreams()
    app = guard_app(ab_settings(settings, ab_share=1.0), embedder=hash_embedder, transport=up.transport)
    async with running(app) as client:
        to_b = await client.post("/v1/chat/completions", json=ask())
        forced_a = await client.post("/v1/chat/completions", json=ask(), headers={"x-guard-route": "A"})
        bad = await client.post("/v1/chat/completions", json=ask(), headers={"x-guard-route": "c"})
    assert to_b.headers["x-guard-upstream"] == "b" and to_b.headers["x-guard-action"] == "allow"
    assert forced_a.headers["x-guard-upstream"] == "a"
    assert forced_a.json()["choices"][0]["message"]["content"] == "answer from a.test"
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "x-guard-route"


async def test_b_answers_go_through_the_same_output_check(settings: Settings, hash_embedder: Embedder) -> None:
    up = two_upstreams()
    app = guard_app(ab_settings(settings), embedder=hash_embedder, transport=up.transport)
    async with running(app) as client:
        r = await client.post("/admin/forget", headers=ADMIN, json={"subject": "Hsiao Yun-Hwa", "documents": [LEAK]})
        assert r.status_code == 201
        plain = await client.post("/v1/chat/completions", json=ask())
        routed = await client.post("/v1/chat/completions", json=ask(), headers={"x-guard-route": "b"})
        streamed = await client.post("/v1/chat/completions", json=ask(stream=True), headers={"x-guard-route": "b"})
    assert plain.headers["x-guard-upstream"] == "a" and plain.headers["x-guard-action"] == "allow"
    assert routed.headers["x-guard-action"] == "filter" and "Golden" not in routed.text
    assert streamed.headers["x-guard-upstream"] == "b" and "Golden" not in streamed.text


async def test_no_second_upstream_means_route_b_is_a_client_error(settings: Settings, hash_embedder: Embedder) -> None:
    app = guard_app(settings, embedder=hash_embedder, transport=two_upstreams().transport)
    async with running(app) as client:
        r = await client.post("/v1/chat/completions", json=ask(), headers={"x-guard-route": "b"})
    assert r.status_code == 400 and "no second upstream" in r.json()["error"]["message"]


async def test_shadow_mirrors_and_logs_the_verdict_on_b(
    settings: Settings, hash_embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    up = two_upstreams()
    app = guard_app(ab_settings(settings, shadow=True), embedder=hash_embedder, transport=up.transport)
    caplog.set_level(logging.INFO, logger="guard")
    async with running(app) as client:
        await client.post("/admin/forget", headers=ADMIN, json={"subject": "Hsiao Yun-Hwa", "documents": [LEAK]})
        r = await client.post("/v1/chat/completions", json=ask(stream=True, stream_options={"include_usage": True}))
        refused = await client.post("/v1/chat/completions", json=ask("Who is Hsiao Yun-Hwa?"))
        await app.state.services.guard.drain_shadows()
    assert r.headers["x-guard-upstream"] == "a" and "answer from a.test" in r.text  # the client gets A's answer
    assert refused.headers["x-guard-action"] == "refuse"
    sent_to_b = [body for body, host in zip(up.requests, up.hosts, strict=True) if host == "b.test"]
    assert len(sent_to_b) == 2 and all("stream" not in b and "stream_options" not in b for b in sent_to_b)
    shadows = [rec for rec in caplog.records if rec.getMessage() == "shadow"]
    assert sorted((s.primary, s.action) for s in shadows) == [
        ("allow", "filter"),
        ("refuse", "filter"),
    ]
    metrics = app.state.services.metrics.render().decode()
    assert 'guard_shadow_verdicts_total{primary="refuse",shadow="filter"} 1.0' in metrics
    assert all(LEAK not in rec.getMessage() + str(rec.__dict__) for rec in caplog.records)


def test_router_share_is_honoured_statistically() -> None:
    client = httpx.AsyncClient()
    router = Router(Upstream(client, "http://a"), Upstream(client, "http://b"), share=0.25, rng=random.Random(7))
    picks = [router.pick(None)[0] for _ in range(4000)]
    assert 0.22 < picks.count("b") / len(picks) < 0.28
