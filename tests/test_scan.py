"""The scan API and LiteLLM's generic guardrail hook, in process (hash embedder): verdicts, policy bindings, keys,
the call's watch carried from the request check to the answer check, and bad input as 4xx."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from guard.forget.embedder import Embedder
from guard.policy import key_id
from guard.settings import REPO_ROOT, Settings
from guard.testing import guard_app, running
from tests.helpers import FACT, add, upstream_echo

ASK = "Tell me about Hsiao Yun-Hwa"
DEFAULT_REFUSAL = "I'm sorry, but I can't share information about that."
LEAK = "She won the Golden Compass award for her book Leading with Empathy in 2019."
HOOK = "/beta/litellm_basic_guardrail_api"
JSON = {"content-type": "application/json"}


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def hook(input_type: str, texts: list[str], call: str = "call-1", **extra: Any) -> dict[str, Any]:
    return {"input_type": input_type, "texts": texts, "litellm_call_id": call, "request_data": {}, **extra}


async def test_scan_refuses_a_forgotten_subject_and_names_entry_and_evidence(
    settings: Settings, hash_embedder: Embedder
) -> None:
    app = guard_app(settings, embedder=hash_embedder, transport=upstream_echo().transport)
    async with running(app) as client:
        before = await client.post("/v1/guard/check", json={"messages": user(ASK)})
        entry = await add(client)
        r = await client.post("/v1/guard/check", json={"model": "m", "messages": user(ASK)})
        fine = await client.post("/v1/guard/check", json={"messages": user("What is the capital of France?")})
    assert before.json()["action"] == "allow"
    body = r.json()
    assert r.status_code == 200 and body["stage"] == "input"
    assert body["action"] == "refuse" and body["blocked"] is True and body["entry_ids"] == [entry]
    assert body["refusal_text"] == DEFAULT_REFUSAL and body["evidence"]
    assert "Golden Compass" not in r.text and "Leading with Empathy" not in r.text  # never forgotten text
    assert fine.json() == {
        "stage": "input",
        "action": "allow",
        "blocked": False,
        "entry_ids": [],
        "evidence": [],
        "refusal_text": None,
        "watched": [],
        "messages": None,
    }


async def test_output_scan_filters_an_answer_that_leaks(settings: Settings, hash_embedder: Embedder) -> None:
    app = guard_app(settings, embedder=hash_embedder, transport=upstream_echo().transport)
    question = user("Which award did the author of Leading with Empathy win?")
    async with running(app) as client:
        await add(client)
        asked = await client.post("/v1/guard/check", json={"messages": question})
        leak = await client.post("/v1/guard/check", json={"messages": question, "answer": f"Sure. {FACT}"})
        clean = await client.post("/v1/guard/check", json={"messages": question, "answer": "Paris is in France."})
    assert not asked.json()["blocked"]
    assert leak.json()["stage"] == "output" and leak.json()["action"] == "filter"
    assert leak.json()["refusal_text"] == DEFAULT_REFUSAL
    assert clean.json()["action"] == "allow" and clean.json()["stage"] == "output"


async def test_scan_needs_a_client_key_and_binds_its_policy(
    tmp_path: Path, settings: Settings, hash_embedder: Embedder
) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    shutil.copy(REPO_ROOT / "policies" / "default.yaml", folder / "default.yaml")
    bound = f"refusal_text: Not for tenant B.\napplies_to:\n  clients: [{key_id('key-b')}]\n"
    (folder / "tenant.yaml").write_text(bound)
    settings = settings.with_values(policy_file=folder / "default.yaml", api_keys=SecretStr("key-a,key-b"))
    app = guard_app(settings, embedder=hash_embedder, transport=upstream_echo().transport)
    async with running(app) as client:
        await add(client)
        none = await client.post("/v1/guard/check", json={"messages": user(ASK)})
        texts = {}
        for key in ("key-a", "key-b"):
            r = await client.post("/v1/guard/check", json={"messages": user(ASK)}, headers=_bearer(key))
            texts[key] = r.json()["refusal_text"]
        hooked = await client.post(HOOK, json=hook("request", [ASK]), headers={"x-api-key": "key-b"})
        # LiteLLM's caller key, by its SHA-256, binds like the guard's own keys
        litellm_b = hook("request", [ASK], request_data={"user_api_key_hash": hashlib.sha256(b"key-b").hexdigest()})
        through = await client.post(HOOK, json=litellm_b, headers=_bearer("key-a"))
        wrong = await client.post(HOOK, json=hook("request", [ASK]), headers={"x-api-key": "key-c"})
    assert none.status_code == 401 and none.json()["error"]["code"] == "invalid_api_key"
    assert texts == {"key-a": DEFAULT_REFUSAL, "key-b": "Not for tenant B."}
    assert hooked.json() == {"action": "BLOCKED", "blocked_reason": "Not for tenant B."}
    assert through.json()["blocked_reason"] == "Not for tenant B."
    assert wrong.status_code == 401


async def test_litellm_hook_reads_the_answer_with_its_calls_question(
    settings: Settings, hash_embedder: Embedder
) -> None:
    app = guard_app(settings, embedder=hash_embedder, transport=upstream_echo().transport)
    messages = [{"role": "system", "content": "Be brief."}, *user("Which award did she win? The author, I mean.")]
    async with running(app) as client:
        await add(client)
        pre = await client.post(HOOK, json=hook("request", ["Be brief.", ASK], structured_messages=user(ASK)))
        allowed = await client.post(HOOK, json=hook("request", [m["content"] for m in messages], call="c2"))
        post = await client.post(HOOK, json=hook("response", [f"Well. {LEAK}"], call="c2"))
        fine = await client.post(HOOK, json=hook("response", ["Paris is the capital of France."], call="c2"))
        empty = await client.post(HOOK, json=hook("request", []))
    assert pre.json() == {"action": "BLOCKED", "blocked_reason": DEFAULT_REFUSAL}
    assert allowed.json() == {"action": "NONE"}
    assert post.json() == {"action": "BLOCKED", "blocked_reason": DEFAULT_REFUSAL}
    assert fine.json() == {"action": "NONE"} and empty.json() == {"action": "NONE"}


async def test_bad_input_is_a_4xx_with_the_field_named(settings: Settings, hash_embedder: Embedder) -> None:
    app = guard_app(settings, embedder=hash_embedder, transport=upstream_echo().transport)
    async with running(app) as client:
        bad = {
            "no messages": await client.post("/v1/guard/check", json={"messages": []}),
            "unknown field": await client.post("/v1/guard/check", json={"messages": user("x"), "answr": "y"}),
            "not json": await client.post(
                "/v1/guard/check", content=b"{", headers={"content-type": "application/json"}
            ),
            "input_type": await client.post(HOOK, json=hook("prompt", ["x"])),
            "texts": await client.post(HOOK, json={"input_type": "request", "texts": "x"}),
        }
        schema = (await client.get("/openapi.json")).json()
    for what, r in bad.items():
        assert r.status_code == 422, what
        assert r.json()["error"]["type"] == "invalid_request_error", what
    assert bad["input_type"].json()["error"]["param"] == "input_type"
    assert {"/v1/guard/check", HOOK} <= set(schema["paths"])
    assert "ScanRequest" in schema["components"]["schemas"]


def _bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def test_the_output_scan_applies_the_watch_the_input_check_leaves(
    settings: Settings, hash_embedder: Embedder
) -> None:
    """A surname alone watches the conversation strongly: then a bare title is a leak; without it, it is not."""
    app = guard_app(settings, embedder=hash_embedder, transport=upstream_echo().transport)
    watched, plain, title = user("What did Hsiao write?"), user("What did she write?"), "Leading with Empathy."
    async with running(app) as client:
        entry = await add(client)
        scans = [
            (await client.post("/v1/guard/check", json={"messages": m, "answer": title})).json()
            for m in (watched, plain)
        ]
        asked = await client.post(HOOK, json=hook("request", ["What did Hsiao write?"], call="w1"))
        same_call = await client.post(HOOK, json=hook("response", [title], call="w1"))
        other_call = await client.post(HOOK, json=hook("response", [title], call="w2"))
    assert (scans[0]["action"], scans[0]["watched"], scans[0]["entry_ids"]) == ("filter", [entry], [entry])
    assert (scans[1]["action"], scans[1]["watched"]) == ("allow", [])
    assert asked.json() == {"action": "NONE"}
    assert same_call.json() == {"action": "BLOCKED", "blocked_reason": DEFAULT_REFUSAL}
    assert other_call.json() == {"action": "NONE"}  # a call whose request was not checked here: the answer alone


async def test_a_rewriting_policy_rewrites_the_messages_and_litellms_texts(
    tmp_path: Path, settings: Settings, hash_embedder: Embedder
) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    default = (REPO_ROOT / "policies" / "default.yaml").read_text()
    default = default.replace("action: refuse ", "action: rewrite").replace(
        "redact_subject: false", "redact_subject: true"
    )
    (folder / "default.yaml").write_text(default)
    settings = settings.with_values(policy_file=folder / "default.yaml")
    app = guard_app(settings, embedder=hash_embedder, transport=upstream_echo().transport)
    async with running(app) as client:
        await add(client)
        scan = (await client.post("/v1/guard/check", json={"messages": user(ASK)})).json()
        hooked = (await client.post(HOOK, json=hook("request", ["Be brief.", ASK]))).json()
    assert scan["action"] == "rewrite" and scan["blocked"] is False and scan["refusal_text"] is None
    system, asked = scan["messages"]
    assert system["role"] == "system" and "Hsiao Yun-Hwa" in system["content"]  # the instruction names the subject
    assert asked["role"] == "user" and "Hsiao" not in asked["content"] and asked["content"].startswith("Tell me about")
    assert hooked["action"] == "GUARDRAIL_INTERVENED" and len(hooked["texts"]) == 2
    first, second = hooked["texts"]
    assert first == f"{system['content']}\n\nBe brief."
    assert second == asked["content"]


async def test_rows_the_proxy_would_refuse_are_a_422_from_the_hook(settings: Settings, hash_embedder: Embedder) -> None:
    app = guard_app(settings, embedder=hash_embedder, transport=upstream_echo().transport)
    rows = [{"role": "user", "content": ["not a part"]}]
    async with running(app) as client:
        r = await client.post(HOOK, json=hook("request", ["x"], structured_messages=rows))
    assert r.status_code == 422 and r.json()["error"]["param"].startswith("messages.0.content")
