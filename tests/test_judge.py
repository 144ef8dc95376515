"""The optional judge (guard/judge.py), with a scripted fake judge endpoint: asked only about uncertain requests,
its ruling refuses or filters, and a slow, failing or unreadable judge leaves the checks' verdict in place."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from guard.forget.embedder import Embedder
from guard.judge import QUESTIONS
from guard.settings import Settings
from guard.testing import ADMIN, HANG_S, FakeUpstream, Reply, guard_app, running
from guard.testing.shapes import Endpoint
from tests.helpers import FACT, chat, upstream_echo

UNCERTAIN = "What awards did Hsiao win?"  # a part of the name alone: watched, not refused
CLEAR = "What is the capital of France?"


def fake_judge(reply: str | list[str] = "1", delay: float = 0.0, status: int = 200) -> FakeUpstream:
    """The kit's fake upstream as the judge model: replies `reply` (a script of replies, one per ruling, the last
    one repeated) after `delay` seconds, or fails with `status`; its `requests` are what it was asked."""
    replies = [reply] if isinstance(reply, str) else list(reply)

    def answer(endpoint: Endpoint, body: dict[str, Any]) -> Reply:
        if status != 200:
            return Reply(raw=json.dumps({"error": {"message": "down"}}), status=status)
        return Reply(replies.pop(0) if len(replies) > 1 else replies[0])

    return FakeUpstream(answer, first_ms=delay * 1000)


def _settings(settings: Settings, **judge: Any) -> Settings:
    return settings.with_values(**{"judge_url": "http://judge.test", "judge_timeout_s": 0.5, **judge})


async def _ask(
    settings: Settings,
    embedder: Embedder,
    judge: FakeUpstream | None,
    question: str,
    answer: str = "Fine.",
    stream: bool = False,
) -> tuple[httpx.Response, Any, str]:
    upstream = upstream_echo(answer)
    app = guard_app(
        settings, embedder=embedder, transport=upstream.transport, judge_transport=judge.transport if judge else None
    )
    async with running(app) as client:
        r = await client.post("/admin/forget", json={"subject": "Hsiao Yun-Hwa", "documents": [FACT]}, headers=ADMIN)
        assert r.status_code == 201
        response = await client.post("/v1/chat/completions", json=chat(question, stream=stream))
        metrics = (await client.get("/metrics")).text
    return response, upstream, metrics


@pytest.mark.parametrize(("reply", "action", "upstream_calls"), [("1", "refuse", 0), ("0", "allow", 1)])
async def test_an_uncertain_question_is_ruled_by_the_judge(
    settings: Settings, hash_embedder: Embedder, reply: str, action: str, upstream_calls: int
) -> None:
    judge = fake_judge(reply)
    r, upstream, metrics = await _ask(_settings(settings), hash_embedder, judge, UNCERTAIN)
    assert r.status_code == 200 and r.headers["x-guard-action"] == action
    assert len(upstream.requests) == upstream_calls
    assert len(judge.requests) == 1 + upstream_calls  # an allowed answer is still watched: the judge reads it too
    shown = judge.requests[0]["messages"][-1]["content"]
    assert "Hsiao Yun-Hwa" in shown and UNCERTAIN in shown
    outcome = "match" if reply == "1" else "none"
    assert f'guard_judge_rulings_total{{outcome="{outcome}",stage="input"}} 1.0' in metrics


async def test_clear_requests_never_reach_the_judge(settings: Settings, hash_embedder: Embedder) -> None:
    judge = fake_judge("1")
    r, upstream, _ = await _ask(_settings(settings), hash_embedder, judge, CLEAR)
    assert r.headers["x-guard-action"] == "allow" and len(upstream.requests) == 1
    named, _, _ = await _ask(_settings(settings), hash_embedder, judge, "Tell me about Hsiao Yun-Hwa.")
    assert named.headers["x-guard-action"] == "refuse"  # the checks were sure: no ruling needed
    assert judge.requests == []


@pytest.mark.parametrize(
    ("judge", "outcome"),
    [
        (fake_judge("1", delay=3600.0), "timeout"),
        (fake_judge(status=503), "error"),
        (fake_judge("maybe"), "unreadable"),
    ],
)
async def test_a_slow_failing_or_unreadable_judge_leaves_the_verdict(
    settings: Settings, hash_embedder: Embedder, judge: FakeUpstream, outcome: str
) -> None:
    asked = _ask(_settings(settings, judge_timeout_s=0.3), hash_embedder, judge, UNCERTAIN)
    r, upstream, metrics = await asyncio.wait_for(asked, HANG_S)  # bounded: the hour-long judge was not waited for
    assert r.headers["x-guard-action"] == "allow" and len(upstream.requests) == 1
    assert f'guard_judge_rulings_total{{outcome="{outcome}",stage="input"}} 1.0' in metrics


@pytest.mark.parametrize("stream", [False, True])
async def test_a_watched_answer_is_filtered_when_the_judge_says_it_reveals_the_subject(
    settings: Settings, hash_embedder: Embedder, stream: bool
) -> None:
    judge = fake_judge(["0", "1"])  # the question is not about her (it goes upstream, under watch); the answer is
    answer = "The committee praised her novel about a lighthouse."
    r, upstream, metrics = await _ask(_settings(settings), hash_embedder, judge, UNCERTAIN, answer, stream)
    assert len(upstream.requests) == 1
    assert "lighthouse" not in r.text
    if stream:
        assert r.text.rstrip().endswith("data: [DONE]")
    else:
        assert r.headers["x-guard-action"] == "filter"
    asked = [a["messages"][-1]["content"] for a in judge.requests]
    assert len(asked) == 2 and QUESTIONS["input"] in asked[0] and QUESTIONS["output"] in asked[1]
    assert 'guard_judge_rulings_total{outcome="match",stage="output"} 1.0' in metrics


async def test_the_judge_is_off_by_default(settings: Settings, hash_embedder: Embedder) -> None:
    judge = fake_judge("1")
    r, upstream, _ = await _ask(settings, hash_embedder, judge, UNCERTAIN)
    assert r.headers["x-guard-action"] == "allow" and len(upstream.requests) == 1
    assert judge.requests == []
