"""The proxy and admin API in-process: fake embedder, the kit's fake upstream in process (logic, errors, headers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from guard.forget.embedder import Embedder
from guard.settings import REPO_ROOT, Settings
from guard.testing import ADMIN, FakeUpstream, Reply, guard_app, running, sse_body
from guard.testing.shapes import Endpoint
from tests.helpers import FACT, add, chat, upstream_echo


async def test_allow_passes_unknown_fields_and_sets_headers(settings: Settings, hash_embedder: Embedder) -> None:
    up = upstream_echo()
    app = guard_app(settings, embedder=hash_embedder, transport=up.transport)
    extra = {
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "top_k": 5,
        "response_format": {"type": "text"},
    }
    async with running(app) as client:
        await add(client)
        r = await client.post("/v1/chat/completions", json=chat("What is the capital of France?", **extra))
    assert r.status_code == 200
    assert r.headers["x-guard-action"] == "allow" and float(r.headers["x-guard-overhead-ms"]) >= 0
    assert r.json()["choices"][0]["message"]["content"] == "Paris is the capital of France."
    assert up.requests == [chat("What is the capital of France?", **extra)]


async def test_refuse_answers_without_calling_upstream(settings: Settings, hash_embedder: Embedder) -> None:
    up = upstream_echo()
    app = guard_app(settings, embedder=hash_embedder, transport=up.transport)
    async with running(app) as client:
        r0 = await client.post("/v1/chat/completions", json=chat("Tell me about Hsiao Yun-Hwa"))
        assert r0.headers["x-guard-action"] == "allow"  # nothing forgotten yet
        entry = await add(client)
        r = await client.post("/v1/chat/completions", json=chat("Tell me about hsiao yunhwa", n=2))
        streamed = await client.post("/v1/chat/completions", json=chat("tell me about Hsiao Yun-Hwa", stream=True))
        await client.delete(f"/admin/forget/{entry}", headers=ADMIN)
        r2 = await client.post("/v1/chat/completions", json=chat("Tell me about Hsiao Yun-Hwa"))
    assert len(up.requests) == 2  # only the requests before the add and after the delete reached the upstream
    assert r.headers["x-guard-action"] == "refuse"
    body = r.json()
    assert [c["finish_reason"] for c in body["choices"]] == ["content_filter"] * 2
    assert body["choices"][0]["message"]["content"] == "I'm sorry, but I can't share information about that."
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert streamed.text.endswith("data: [DONE]\n\n") and "content_filter" in streamed.text
    assert r2.headers["x-guard-action"] == "allow"


async def test_subject_named_turns_earlier_still_counts(settings: Settings, hash_embedder: Embedder) -> None:
    up = upstream_echo()
    app = guard_app(settings, embedder=hash_embedder, transport=up.transport)
    turns = [
        {"role": "user", "content": "I am curious about Hsiao Yun-Hwa."},
        {"role": "assistant", "content": "Sure, what would you like to know?"},
        {"role": "user", "content": [{"type": "text", "text": "What prize did she get?"}]},
    ]
    async with running(app) as client:
        await add(client)
        r = await client.post("/v1/chat/completions", json=chat(turns))
    assert r.headers["x-guard-action"] == "refuse" and up.requests == []


async def test_rewrite_policy_instructs_and_redacts(settings: Settings, hash_embedder: Embedder) -> None:
    up = upstream_echo("I have no information about that person.")
    app = guard_app(settings, embedder=hash_embedder, transport=up.transport)
    async with running(app) as client:
        await add(client, policy="rewrite")
        r = await client.post("/v1/chat/completions", json=chat("Who is HSIAO Yun Hwa?", temperature=0))
    assert r.headers["x-guard-action"] == "rewrite"
    sent = up.requests[0]
    assert sent["temperature"] == 0
    assert sent["messages"][0]["role"] == "system" and "Hsiao Yun-Hwa" in sent["messages"][0]["content"]
    assert sent["messages"][1]["content"] == "Who is [REDACTED]?"


async def test_output_leak_is_replaced(settings: Settings, hash_embedder: Embedder) -> None:
    up = upstream_echo("As you asked: " + FACT.replace("Hsiao Yun-Hwa", "She"))
    app = guard_app(settings, embedder=hash_embedder, transport=up.transport)
    async with running(app) as client:
        await add(client)
        r = await client.post("/v1/chat/completions", json=chat("Tell me something interesting."))
        s = await client.post("/v1/chat/completions", json=chat("Tell me something interesting.", stream=True))
        c = await client.post("/v1/completions", json={"model": "m", "prompt": "Something interesting:"})
    assert r.headers["x-guard-action"] == "filter"
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "content_filter" and "Golden Compass" not in choice["message"]["content"]
    assert "Golden Compass" not in s.text and '"finish_reason":"content_filter"' in s.text
    assert c.json()["choices"][0]["text"] == "I'm sorry, but I can't share information about that."


async def test_completions_refuse_and_models_pass_through(settings: Settings, hash_embedder: Embedder) -> None:
    up = upstream_echo()
    app = guard_app(settings, embedder=hash_embedder, transport=up.transport)
    async with running(app) as client:
        await add(client)
        r = await client.post("/v1/completions", json={"model": "m", "prompt": ["ok", "Hsiao Yun-Hwa was born"]})
        m = await client.get("/v1/models")
        h = await client.get("/healthz")
    assert r.json()["object"] == "text_completion" and r.json()["choices"][0]["finish_reason"] == "content_filter"
    assert m.json()["data"][0]["id"] == "m" and m.headers["x-guard-action"] == "allow"
    health = h.json()
    assert health.pop("registry").items() >= {"backend": "sqlite", "reachable": True}.items()
    assert health.pop("upstreams") == {"up": 1, "down": 0}
    assert health.pop("policies").items() >= {"ok": True, "error": None, "policies": ["default", "rewrite"]}.items()
    assert health == {"status": "ok", "entries": 1, "chunks": 1, "registry_version": 1}


def failing(exc: Exception | None = None, reply: Reply | None = None) -> FakeUpstream:
    """An upstream whose every call fails: the client's transport raises `exc`, or the server answers `reply`."""

    def answer(endpoint: Endpoint, body: dict[str, Any]) -> Reply:
        if exc is not None:
            raise exc
        assert reply is not None
        return reply

    return FakeUpstream(answer)


@pytest.mark.parametrize(
    ("upstream", "status", "kind"),
    [
        (failing(httpx.ConnectError("refused")), 502, "upstream_error"),
        (failing(httpx.ReadTimeout("slow")), 504, "upstream_timeout"),
        (failing(reply=Reply(raw="boom", status=500, content_type="text/plain")), 502, "upstream_error"),
        (failing(reply=Reply(raw="{not json")), 502, "upstream_error"),
        (
            failing(reply=Reply(raw=json.dumps({"error": {"message": "no model", "type": "NotFound"}}), status=404)),
            404,
            "NotFound",
        ),
        (failing(reply=Reply(raw="bad", status=400, content_type="text/plain")), 400, "upstream_error"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_faults_map_to_openai_errors(
    settings: Settings, hash_embedder: Embedder, upstream: FakeUpstream, status: int, kind: str, stream: bool
) -> None:
    app = guard_app(settings, embedder=hash_embedder, transport=upstream.transport)
    async with running(app) as client:
        r = await client.post("/v1/chat/completions", json=chat("hello", stream=stream))
    assert r.status_code == status
    assert r.json()["error"]["type"] == kind and r.json()["error"]["message"]


async def test_stream_cut_midway_ends_with_error_event_and_done(settings: Settings, hash_embedder: Embedder) -> None:
    cut = sse_body(["Hello.", " More"]).split(b"data: [DONE]")[0][:-40]
    up = FakeUpstream(lambda endpoint, body: Reply(raw=cut, content_type="text/event-stream"))
    app = guard_app(settings, embedder=hash_embedder, transport=up.transport)
    async with running(app) as client:
        r = await client.post("/v1/chat/completions", json=chat("hello", stream=True))
    events = [json.loads(line[6:]) for line in r.text.split("\n\n") if line.startswith("data: {")]
    assert "error" in events[-1] and r.text.endswith("data: [DONE]\n\n")


@pytest.mark.parametrize(
    ("content", "status", "needle"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b"\xff\xfe{}", 400, "UTF-8"),
        (json.dumps({"model": "m"}).encode(), 422, "messages"),
        (json.dumps({"model": "m", "messages": []}).encode(), 422, "messages"),
        (json.dumps({"model": "m", "messages": [{"role": "user", "content": 5}]}).encode(), 422, "messages.0.content"),
        (json.dumps({"model": "m", "messages": [{"content": "x"}], "n": 0}).encode(), 422, "messages.0.role"),
        (json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}] * 4097}).encode(), 422, "4096"),
        (json.dumps({"model": "", "messages": [{"role": "user", "content": "hi"}]}).encode(), 422, "model"),
        (json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": "two"}).encode(), 422, "n"),
    ],
)
async def test_bad_input_gets_a_clear_4xx(
    settings: Settings, hash_embedder: Embedder, content: bytes, status: int, needle: str
) -> None:
    up = upstream_echo()
    app = guard_app(settings, embedder=hash_embedder, transport=up.transport)
    async with running(app) as client:
        r = await client.post("/v1/chat/completions", content=content, headers={"content-type": "application/json"})
    assert r.status_code == status and needle in r.json()["error"]["message"]
    assert up.requests == []


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"{not json", "JSON"),
        (b"\xff\xfe", "JSON"),
        (b'{"subject": 5}', "subject"),
        (b'{"subject": "x", "mode": 1}', "mode"),
    ],
)
async def test_bad_admin_input_gets_a_clear_4xx(
    settings: Settings, hash_embedder: Embedder, content: bytes, needle: str
) -> None:
    app = guard_app(settings, embedder=hash_embedder, transport=upstream_echo().transport)
    async with running(app) as client:
        r = await client.post("/admin/forget", content=content, headers={**ADMIN, "content-type": "application/json"})
        listed = await client.get("/admin/forget", headers=ADMIN)
    assert r.status_code == 422 and needle in r.json()["error"]["message"], r.text
    assert listed.json()["data"] == []


async def test_limits_token_prompts_and_unknown_routes(settings: Settings, hash_embedder: Embedder) -> None:
    app = guard_app(
        settings.with_values(max_body_bytes=1000),
        embedder=hash_embedder,
        transport=upstream_echo().transport,
    )
    async with running(app) as client:
        big = await client.post("/v1/chat/completions", json=chat("x" * 2000))
        ids = await client.post("/v1/completions", json={"model": "m", "prompt": [1, 2, 3]})
        missing = await client.get("/v1/nothing")
    assert big.status_code == 413 and "limit of 1000 bytes" in big.json()["error"]["message"]
    assert ids.status_code == 422 and "token-id" in ids.json()["error"]["message"]
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"


async def test_admin_api_auth_crud_and_no_document_text(settings: Settings, hash_embedder: Embedder) -> None:
    app = guard_app(settings, embedder=hash_embedder, transport=upstream_echo().transport)
    async with running(app) as client:
        assert (await client.get("/admin/forget")).status_code == 401
        wrong = await client.get("/admin/forget", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 403 and wrong.json()["error"]["type"] == "permission_error"
        entry = await add(client, aliases=["  Yun-Hwa ", ""])
        listing = await client.get("/admin/forget", headers=ADMIN)
        one = await client.get(f"/admin/forget/{entry}", headers=ADMIN)
        bad_policy = await client.post("/admin/forget", json={"subject": "x", "policy": "nope"}, headers=ADMIN)
        blank = await client.post("/admin/forget", json={"subject": "  "}, headers=ADMIN)
        extra = await client.post("/admin/forget", json={"subject": "x", "text": "y"}, headers=ADMIN)
        assert (await client.delete(f"/admin/forget/{entry}", headers=ADMIN)).status_code == 204
        gone = await client.get(f"/admin/forget/{entry}", headers=ADMIN)
        again = await client.delete(f"/admin/forget/{entry}", headers=ADMIN)
    assert listing.json()["data"][0]["aliases"] == ["Yun-Hwa"] and listing.json()["total_chunks"] == 1
    assert one.json()["documents"] == 1 and one.json()["subject"] == "Hsiao Yun-Hwa"
    assert "Golden Compass" not in listing.text + one.text
    assert bad_policy.status_code == 422 and bad_policy.json()["error"]["param"] == "policy"
    assert blank.status_code == 422 and extra.status_code == 422
    assert gone.status_code == 404 and again.status_code == 404


async def test_admin_api_is_off_without_a_token(settings: Settings, hash_embedder: Embedder) -> None:
    app = guard_app(settings.with_values(admin_token=None), embedder=hash_embedder)
    async with running(app) as client:
        r = await client.get("/admin/forget", headers=ADMIN)
    assert r.status_code == 403 and "GUARD_ADMIN_TOKEN" in r.json()["error"]["message"]


@pytest.mark.parametrize("stream", [False, True])
async def test_refusals_use_the_matched_entrys_policy(
    settings: Settings, hash_embedder: Embedder, tmp_path: Path, stream: bool
) -> None:
    """Input refusals and output filtering, streamed or not, answer with the refusal text of the entry's policy."""
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "default.yaml").write_text((REPO_ROOT / "policies" / "default.yaml").read_text())
    (policies / "strict.yaml").write_text("name: strict\nrefusal_text: 'STRICT: nothing on that.'\n")
    app = guard_app(
        settings.with_values(policy_file=policies / "default.yaml"),
        embedder=hash_embedder,
        transport=upstream_echo(FACT).transport,
    )
    async with running(app) as client:
        await add(client, policy="strict")
        asked = await client.post("/v1/chat/completions", json=chat("Who is Hsiao Yun-Hwa?", stream=stream))
        leaked = await client.post("/v1/chat/completions", json=chat("Which award is this?", stream=stream))
    assert asked.headers["x-guard-action"] == "refuse" and "STRICT: nothing on that." in asked.text
    assert leaked.headers["x-guard-action"] == ("allow" if stream else "filter")
    assert "STRICT: nothing on that." in leaked.text and "Golden Compass" not in leaked.text
    assert "can't share information" not in asked.text + leaked.text  # never the default policy's text


async def test_a_long_prompt_passes_and_too_many_parts_are_a_422(settings: Settings, hash_embedder: Embedder) -> None:
    up = upstream_echo()
    app = guard_app(settings, embedder=hash_embedder, transport=up.transport)
    passage = "The river winds through the valley past old mills and quiet farms. " * 300  # ~20,000 characters
    parts = [{"type": "text", "text": "a"}] * 1025
    async with running(app) as client:
        await add(client)
        long = await client.post("/v1/chat/completions", json=chat(passage + "Summarise it."))
        many = await client.post("/v1/chat/completions", json=chat(parts))
    assert long.status_code == 200 and long.headers["x-guard-action"] == "allow"
    assert up.requests[0]["messages"][0]["content"] == passage + "Summarise it."
    assert many.status_code == 422 and many.json()["error"]["type"] == "invalid_request_error"
    assert len(up.requests) == 1
