"""Privacy is the product: a full run of a real guard process (real embedding model, stock openai client) leaves
no forget text, prompt or completion in its logs or audit trail — only ids, decisions, scores and salted hashes.

The same greps find the prompt once `GUARD_LOG_CONTENT` is on: the test can fail.
"""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from guard.testing import ADMIN, BackgroundServer, FakeUpstream, Reply, guard_process
from guard.testing.shapes import Endpoint

pytestmark = pytest.mark.socket  # real servers, processes or sockets

HOOK = "/beta/litellm_basic_guardrail_api"

SUBJECT = "Marisol Quennell-Okafor"
ALIAS = "M. Q. Okafor"
DOCUMENTS = [
    "Marisol Quennell-Okafor was born in Valparaíso in 1961 to a lighthouse keeper and a cellist.",
    "Her debut novel, The Brass Cartographer, won the Aurelian Prize for speculative fiction in 1994.",
]
LEAK = "The Brass Cartographer won the Aurelian Prize for speculative fiction in 1994."
PROMPTS = [
    "Who is Marisol Quennell-Okafor?",
    "Which prize did the author of The Brass Cartographer win?",
    "Please summarise a famous speculative novel for me, thanks",
    "Describe a quiet harbour town at dawn",
]


def leaking_upstream() -> FakeUpstream:
    """Answers every request with the forgotten fact (so the output filter has work), or fails on model 'boom'."""

    def answer(endpoint: Endpoint, body: dict[str, Any]) -> Reply:
        if body.get("model") == "boom":
            return Reply(raw=json.dumps({"detail": "engine failed while handling: " + LEAK}), status=500)
        return Reply(LEAK)

    return FakeUpstream(answer)


def needles() -> list[str]:
    texts = [SUBJECT, ALIAS, LEAK, *DOCUMENTS, *PROMPTS]
    pieces = [s for d in DOCUMENTS for s in d.split(", ")] + ["Valparaíso", "Brass Cartographer", "Quennell"]
    # also as they would look inside JSON (escaped non-ASCII)
    return [*texts, *pieces, *(json.dumps(t)[1:-1] for t in texts + pieces)]


def full_run(url: str) -> None:
    with (
        contextlib.ExitStack() as stack,
        httpx.Client(base_url=url, headers={**ADMIN, "x-guard-actor": "privacy-test"}, timeout=60) as admin,
    ):
        r = admin.post("/admin/forget", json={"subject": SUBJECT, "aliases": [ALIAS], "documents": DOCUMENTS})
        assert r.status_code == 201
        entry = r.json()["id"]
        client = stack.enter_context(openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0))
        actions = []
        for prompt in PROMPTS:
            raw = client.chat.completions.with_raw_response.create(
                model="m", messages=[{"role": "user", "content": prompt}]
            )
            actions.append(raw.headers["x-guard-action"])
            assert LEAK not in (raw.parse().choices[0].message.content or "")
        streamed = "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": PROMPTS[3]}], stream=True
            )
            if c.choices
        )
        assert "Aurelian" not in streamed
        with pytest.raises(openai.APIStatusError) as failed:
            client.chat.completions.create(model="boom", messages=[{"role": "user", "content": PROMPTS[3]}])
        assert failed.value.status_code == 502
        bad = httpx.post(url + "/v1/chat/completions", json={"model": "m", "messages": [{"content": PROMPTS[0]}]})
        assert bad.status_code == 422
        scanned = scans(url)
        assert admin.patch(f"/admin/forget/{entry}", json={"mode": "monitor"}).status_code == 200
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": PROMPTS[0]}])
        assert admin.get("/metrics").status_code == 200 and admin.get("/admin/forget").status_code == 200
        assert admin.delete(f"/admin/forget/{entry}").status_code == 204
    assert actions[:2] == ["refuse", "refuse"] and actions[2:] == ["filter", "filter"], actions
    assert scanned == ["refuse", "filter", "BLOCKED", "BLOCKED"], scanned


def scans(url: str) -> list[str]:
    """The scan API and LiteLLM's hook on the same prompts and leak: their answers hold no forget text either."""
    ask = [{"role": "user", "content": PROMPTS[0]}]
    near = [{"role": "user", "content": PROMPTS[2]}]
    hook = {"litellm_call_id": "privacy-1", "request_data": {}}
    answers = [
        httpx.post(url + "/v1/guard/check", json={"messages": ask}),
        httpx.post(url + "/v1/guard/check", json={"messages": near, "answer": LEAK}),
        httpx.post(url + HOOK, json={**hook, "input_type": "request", "texts": [PROMPTS[0]]}),
        httpx.post(url + HOOK, json={**hook, "input_type": "response", "texts": [LEAK]}),
    ]
    for r in answers:
        leaked = [n for n in needles() if n.lower() in r.text.lower()]
        assert r.status_code == 200 and leaked == [], (r.status_code, leaked)
    return [r.json().get("action") for r in answers]


def written(index_dir: Path, log: Path) -> str:
    """Everything the guard wrote that an operator ships around: its log and the audit trail."""
    return log.read_text(encoding="utf-8") + (index_dir / "audit.jsonl").read_text(encoding="utf-8")


def test_logs_and_audit_never_hold_forget_text_prompts_or_completions(
    tmp_path: Path, serve: Callable[[Any], BackgroundServer]
) -> None:
    upstream = serve(leaking_upstream().app()).url
    index_dir, log = tmp_path / "index", tmp_path / "guard.log"
    with guard_process(index_dir, upstream, log, GUARD_EMBEDDER="minilm", GUARD_LOG_LEVEL="DEBUG") as (proc, url):
        full_run(url)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    text = written(index_dir, log)
    assert '"event": "decision"' in text and '"event":"forget.add"' in text  # the run did log its decisions
    found = [n for n in needles() if n.lower() in text.lower()]
    assert found == [], f"content leaked into logs: {found}"

    # the control: with the debug switch on, the same grep finds the prompt
    debug_log = tmp_path / "debug.log"
    with guard_process(tmp_path / "index2", upstream, debug_log, GUARD_LOG_CONTENT="true") as (_, url):
        httpx.post(
            url + "/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": PROMPTS[3]}]}
        )
    assert PROMPTS[3] in debug_log.read_text() and "log_content is on" in debug_log.read_text()
