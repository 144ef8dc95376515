"""End to end: the stock openai client -> forget-guard -> the real vLLM CPU server with SmolLM2.

The 135M model gets facts wrong now and then, so each test first asks vLLM directly and asserts the fact the
test relies on (a precondition about the model), then asserts what the guard does with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from guard.forget.embedder import Embedder
from guard.settings import Settings
from guard.testing import ADMIN, guard_app
from guard.testing.server import BackgroundServer, free_port

pytestmark = pytest.mark.e2e

REFUSAL = "I'm sorry, but I can't share information about that."
ASK = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
PARAMS: dict[str, Any] = {"model": "smollm2", "messages": ASK, "max_tokens": 24, "temperature": 0}


@pytest.fixture
def guard_url(settings: Settings, minilm: Embedder, vllm_url: str, serve: Callable[[Any], BackgroundServer]) -> str:
    return serve(guard_app(settings.with_values(upstream=vllm_url), embedder=minilm)).url


def streamed_text(client: OpenAI) -> tuple[str, str | None]:
    text, finish = "", None
    for chunk in client.chat.completions.create(stream=True, **PARAMS):
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
    return text, finish


def test_forget_entry_changes_the_next_answer(guard_url: str, vllm_url: str, openai_at: Callable[..., OpenAI]) -> None:
    direct = openai_at(vllm_url, max_retries=2)
    assert "Paris" in (direct.chat.completions.create(**PARAMS).choices[0].message.content or "")  # precondition

    client = openai_at(guard_url)
    assert [m.id for m in client.models.list()] == ["smollm2"]
    raw = client.chat.completions.with_raw_response.create(**PARAMS)
    before = raw.parse()
    assert raw.headers["x-guard-action"] == "allow"
    assert "Paris" in (before.choices[0].message.content or "")
    text, finish = streamed_text(client)
    assert "Paris" in text and finish in ("stop", "length")

    # forget "Paris" by name only: the question does not name it, so only the output check can stop it
    r = httpx.post(f"{guard_url}/admin/forget", headers=ADMIN, json={"subject": "Paris"})
    assert r.status_code == 201

    raw = client.chat.completions.with_raw_response.create(**PARAMS)
    after = raw.parse()
    assert raw.headers["x-guard-action"] == "filter"
    assert after.choices[0].message.content == REFUSAL
    assert after.choices[0].finish_reason == "content_filter"
    text, finish = streamed_text(client)
    assert "Paris" not in text and text.endswith(REFUSAL) and finish == "content_filter"

    assert httpx.delete(f"{guard_url}/admin/forget/{r.json()['id']}", headers=ADMIN).status_code == 204
    assert "Paris" in (client.chat.completions.create(**PARAMS).choices[0].message.content or "")


def test_input_check_refuses_without_calling_the_model(guard_url: str, openai_at: Callable[..., OpenAI]) -> None:
    client = openai_at(guard_url)
    documents = ["Paris is the capital and largest city of France.", "The Eiffel Tower stands in Paris."]
    r = httpx.post(f"{guard_url}/admin/forget", headers=ADMIN, json={"subject": "Paris", "documents": documents})
    assert r.status_code == 201
    raw = client.chat.completions.with_raw_response.create(**PARAMS)
    assert raw.headers["x-guard-action"] == "refuse"
    reply = raw.parse()
    assert reply.choices[0].message.content == REFUSAL and reply.usage is not None and reply.usage.total_tokens == 0
    text, finish = streamed_text(client)
    assert text == REFUSAL and finish == "content_filter"
    # completions endpoint and a paraphrase that does not name the city
    paraphrase = client.completions.create(model="smollm2", prompt="Which city is France's capital?", max_tokens=8)
    assert paraphrase.choices[0].text == REFUSAL


def test_upstream_errors_reach_the_openai_client(guard_url: str, openai_at: Callable[..., OpenAI]) -> None:
    client = openai_at(guard_url)
    import openai

    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=ASK, max_tokens=4)
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model="smollm2", messages=[], max_tokens=4)


def test_real_vllm_behind_a_dead_server(
    settings: Settings,
    minilm: Embedder,
    vllm_url: str,
    serve: Callable[[Any], BackgroundServer],
    openai_at: Callable[..., OpenAI],
) -> None:
    """Two upstreams, the first refusing connections: every request is answered by vLLM, none fails."""
    dead = f"http://127.0.0.1:{free_port()}"
    app = guard_app(settings.with_values(upstream=f"{dead},{vllm_url}"), embedder=minilm)
    client = openai_at(serve(app).url)
    for _ in range(3):
        reply = client.chat.completions.create(**PARAMS)
        assert "Paris" in (reply.choices[0].message.content or "")
    streamed, finish = streamed_text(client)
    assert "Paris" in streamed and finish in ("stop", "length")


def test_watched_requests_send_bad_words_so_the_model_writes_around_the_name(
    settings: Settings,
    minilm: Embedder,
    vllm_url: str,
    serve: Callable[[Any], BackgroundServer],
    openai_at: Callable[..., OpenAI],
) -> None:
    """A watched conversation (a part of an entry's name) against real vLLM: with `bad_words` the model cannot
    generate the entry's names and answers around them; without, the output check has to cut the answer."""
    question = [{"role": "user", "content": "Hilton asks: what is the capital of France? Answer in one sentence."}]
    direct = openai_at(vllm_url, max_retries=2)
    said = direct.chat.completions.create(**{**PARAMS, "messages": question}).choices[0].message.content or ""
    assert "Paris" in said, said  # precondition: the model names the city
    answers: dict[bool, tuple[str, str | None, str]] = {}
    for vllm in (True, False):
        own = {"upstream": vllm_url, "upstream_vllm": vllm, "index_dir": settings.registry.index_dir / str(vllm)}
        app = guard_app(settings.with_values(**own), embedder=minilm)
        url = serve(app).url
        r = httpx.post(f"{url}/admin/forget", headers=ADMIN, json={"subject": "Paris Hilton"})
        assert r.status_code == 201
        client = openai_at(url)
        raw = client.chat.completions.with_raw_response.create(**{**PARAMS, "messages": question})
        choice = raw.parse().choices[0]
        metrics = httpx.get(f"{url}/metrics").text
        answers[vllm] = (choice.message.content or "", choice.finish_reason, metrics)
    text, finish, metrics = answers[True]
    assert "guard_bad_words_total 1.0" in metrics and "guard_watched_total 1.0" in metrics
    assert "Paris" not in text and finish != "content_filter" and text.strip()  # written around, not cut
    text, finish, _ = answers[False]
    assert finish == "content_filter" and "Paris" not in text  # no bad_words: the output check had to cut it


def _metric(vllm_url: str, name: str) -> float:
    """The sum of a vLLM metric over its labels."""
    text = httpx.get(f"{vllm_url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def test_speculative_dispatch_against_vllm(
    settings: Settings, tmp_path: Path, minilm: Embedder, vllm_url: str, serve: Callable[[Any], BackgroundServer]
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "default.yaml").write_text(f'name: default\nspeculative: true\nrefusal_text: "{REFUSAL}"\n')
    speculative = settings.with_values(upstream=vllm_url, policy_file=policies / "default.yaml")
    guard_url = serve(guard_app(speculative, embedder=minilm)).url
    documents = ["The Eiffel Tower stands in Paris.", "The Louvre is the most visited museum in Paris."]
    r = httpx.post(f"{guard_url}/admin/forget", headers=ADMIN, json={"subject": "Eiffel Tower", "documents": documents})
    assert r.status_code == 201
    with OpenAI(base_url=f"{guard_url}/v1", api_key="unused", max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(**PARAMS)  # allowed: the early call's answer is used
        assert raw.headers["x-guard-action"] == "allow" and "Paris" in (raw.parse().choices[0].message.content or "")
        finished = _metric(vllm_url, "vllm:request_success_total")
        asked = [{"role": "user", "content": "Write a long essay about the Eiffel Tower."}]
        stream = client.chat.completions.create(model="smollm2", messages=asked, max_tokens=400, stream=True)  # type: ignore[arg-type]
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == REFUSAL
    # the early call reached vLLM and was cancelled: nothing runs any more, and it did not finish (400 tokens take
    # vLLM on this CPU several seconds; an abort is not counted as a finished request)
    time.sleep(2)
    assert _metric(vllm_url, "vllm:num_requests_running") == 0
    assert _metric(vllm_url, "vllm:request_success_total") == finished
    guard_metrics = httpx.get(f"{guard_url}/metrics", timeout=10).text
    assert 'guard_speculative_total{outcome="used"} 1.0' in guard_metrics
    assert 'guard_speculative_total{outcome="refused"} 1.0' in guard_metrics  # sent early, then cancelled


def test_stream_upstream_returns_vllms_own_answer_whole(
    settings: Settings, tmp_path: Path, minilm: Embedder, vllm_url: str, serve: Callable[[Any], BackgroundServer]
) -> None:
    """Policy `stream_upstream`: the non-streamed request is streamed from vLLM and assembled; greedy decoding
    gives the answer vLLM gives unstreamed, with its usage (stream_options.include_usage)."""
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "default.yaml").write_text("name: default\nstream_upstream: true\n")
    update = {"upstream": vllm_url, "policy_file": policies / "default.yaml"}
    guard_url = serve(guard_app(settings.with_values(**update), embedder=minilm)).url
    r = httpx.post(f"{guard_url}/admin/forget", headers=ADMIN, json={"subject": "Eiffel Tower", "documents": ["x"]})
    assert r.status_code == 201  # the checks run only with an entry registered
    params = {**PARAMS, "max_tokens": 40}
    for endpoint in ("chat", "completions"):
        with (
            OpenAI(base_url=f"{vllm_url}/v1", api_key="unused", max_retries=0) as direct,
            OpenAI(base_url=f"{guard_url}/v1", api_key="unused", max_retries=0) as guarded,
        ):
            if endpoint == "chat":
                want, got = (c.chat.completions.create(**params) for c in (direct, guarded))
                texts = [want.choices[0].message.content, got.choices[0].message.content]
                assert got.object == "chat.completion" and got.choices[0].message.role == "assistant"
            else:
                prompt = {"model": "smollm2", "prompt": "The capital of France is", "max_tokens": 16, "temperature": 0}
                want, got = (c.completions.create(**prompt) for c in (direct, guarded))  # type: ignore[assignment]
                texts = [want.choices[0].text, got.choices[0].text]  # type: ignore[union-attr]
                assert got.object == "text_completion"
        assert texts[0] and texts[0] == texts[1]
        assert got.choices[0].finish_reason == want.choices[0].finish_reason
        assert got.usage == want.usage and got.usage is not None and got.usage.completion_tokens > 0
        assert got.model == want.model
