"""Sentences embedded while the rest of the answer is generated (`guard.pipeline.warm`): in a stream, and for a
non-streamed request under policy `stream_upstream`, which is streamed from the upstream and returned whole.
Real sockets, a paced fake upstream, the real MiniLM and the stock openai client."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from guard.forget.embedder import Embedder, Vectors
from guard.settings import Settings, default_policy_file
from guard.testing import ADMIN, HANG_S, guard_app
from guard.testing.server import BackgroundServer
from guard.testing.upstream import FakeUpstream, fixed
from guard.text import sentences
from tests.helpers import FACT

ANSWER = "The weather was mild all week. Farmers in the valley planted early. Rain came on Friday. Everyone was glad."
ASK = [{"role": "user", "content": "How was the weather?"}]
REFUSAL = "I'm sorry, but I can't share information about that."


class Recording(Embedder):
    """The real model, noting when it embedded which texts, and what `probe` counted when each call began."""

    def __init__(self, inner: Embedder, probe: Callable[[], int] = lambda: 0) -> None:
        self.inner, self.dim, self.name = inner, inner.dim, inner.name
        self.probe = probe
        self.calls: list[tuple[float, list[str]]] = []
        self.began: list[tuple[int, list[str]]] = []
        self.lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> Vectors:
        began = self.probe()
        out = self.inner.embed(texts)
        with self.lock:
            self.calls.append((time.monotonic(), list(texts)))
            self.began.append((began, list(texts)))
        return out

    def times(self, text: str) -> list[float]:
        with self.lock:
            return [t for t, texts in self.calls for x in texts if x == text]


def policies(tmp_path: Path, **fields: Any) -> Path:
    d = tmp_path / "policies"
    d.mkdir(parents=True)
    for f in default_policy_file().parent.glob("*.yaml"):
        raw = yaml.safe_load(f.read_text("utf-8"))
        if f.name == "default.yaml":
            raw.update(fields)
        (d / f.name).write_text(yaml.safe_dump(raw, allow_unicode=True), "utf-8")
    return d / "default.yaml"


def guard(
    settings: Settings,
    tmp_path: Path,
    serve: Callable[[Any], BackgroundServer],
    upstream: str,
    embedder: Embedder,
    **fields: Any,
) -> str:
    update = {"upstream": upstream, "policy_file": policies(tmp_path, **fields), "index_dir": tmp_path / "index"}
    url = serve(guard_app(settings.with_values(**update), embedder=embedder)).url
    r = httpx.post(f"{url}/admin/forget", headers=ADMIN, json={"subject": "Hsiao Yun-Hwa", "documents": [FACT]})
    assert r.status_code == 201
    return url


def test_the_answer_is_the_same_and_its_sentences_are_embedded_while_it_is_generated(
    settings: Settings,
    tmp_path: Path,
    minilm: Embedder,
    serve: Callable[[Any], BackgroundServer],
    openai_at: Callable[..., openai.OpenAI],
) -> None:
    fake = FakeUpstream(fixed(ANSWER), token_ms=40)
    upstream = serve(fake.app()).url
    model = Recording(minilm)
    plain = guard(settings, tmp_path / "plain", serve, upstream, minilm)
    streamed = guard(settings, tmp_path / "streamed", serve, upstream, model, stream_upstream=True)

    answers = [
        openai_at(url).chat.completions.with_raw_response.create(model="m", messages=ASK)  # type: ignore[arg-type]
        for url in (plain, streamed)
    ]
    assert [a.headers["x-guard-action"] for a in answers] == ["allow", "allow"]
    before, after = (a.parse() for a in answers)
    assert after.choices[0].message.content == before.choices[0].message.content == ANSWER
    assert after.choices[0].finish_reason == before.choices[0].finish_reason == "stop"
    assert (
        after.usage == before.usage and after.usage is not None and after.usage.completion_tokens == len(ANSWER.split())
    )
    assert after.object == "chat.completion" and after.model == before.model
    assert "stream" not in fake.requests[0]
    assert fake.requests[1]["stream"] is True and fake.requests[1]["stream_options"] == {"include_usage": True}

    # each sentence went through the model once: the first ones while the upstream was still generating, and
    # the output check of the whole answer found them all in the cache
    generated = fake.streams[0]["ended_at"]
    parts = sentences(ANSWER)
    assert [len(model.times(s)) for s in parts] == [1, 1, 1, 1]
    assert all(model.times(s)[0] < generated for s in parts[:3])


def test_a_forgotten_fact_is_filtered_as_without_it(
    settings: Settings, tmp_path: Path, minilm: Embedder, serve: Callable[[Any], BackgroundServer]
) -> None:
    fake = FakeUpstream(fixed(f"Here is what I know. {FACT} That is all."), token_ms=5)
    upstream = serve(fake.app()).url
    for url in (
        guard(settings, tmp_path / "plain", serve, upstream, minilm, refusal_text=REFUSAL),
        guard(settings, tmp_path / "streamed", serve, upstream, minilm, stream_upstream=True, refusal_text=REFUSAL),
    ):
        r = httpx.post(f"{url}/v1/chat/completions", json={"model": "m", "messages": ASK}, timeout=30)
        assert r.status_code == 200 and r.headers["x-guard-action"] == "filter"
        choice = r.json()["choices"][0]
        assert choice["message"]["content"] == REFUSAL and choice["finish_reason"] == "content_filter"
        assert "Golden Compass" not in r.text
    assert [bool(body.get("stream")) for body in fake.requests] == [False, True]


def test_tools_are_sent_as_they_are_and_a_cut_stream_is_a_502(
    settings: Settings,
    tmp_path: Path,
    minilm: Embedder,
    serve: Callable[[Any], BackgroundServer],
    openai_at: Callable[..., openai.OpenAI],
) -> None:
    fake = FakeUpstream(fixed(ANSWER))
    url = guard(settings, tmp_path, serve, serve(fake.app()).url, minilm, stream_upstream=True)
    client = openai_at(url)
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    answer = client.chat.completions.create(model="m", messages=ASK, tools=tools)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == ANSWER and "stream" not in fake.requests[-1]

    fake.fault = "cut"  # the upstream stops after its first token, without [DONE]
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(model="m", messages=ASK)  # type: ignore[arg-type]
    assert failed.value.status_code == 502 and fake.requests[-1]["stream"] is True
    assert "stream" in str(failed.value.body)


def test_with_speculative_dispatch_the_early_call_is_the_stream(
    settings: Settings, tmp_path: Path, minilm: Embedder, serve: Callable[[Any], BackgroundServer]
) -> None:
    fake = FakeUpstream(fixed(ANSWER), first_ms=2000)
    url = guard(settings, tmp_path, serve, serve(fake.app()).url, minilm, stream_upstream=True, speculative=True)
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": "m", "messages": ASK}, timeout=30)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == ANSWER
    assert len(fake.requests) == 1 and fake.requests[0]["stream"] is True  # sent once, early, as a stream

    fake.first_ms = 3_600_000  # an early call's answer the refusal must not wait for (a wait fails at HANG_S)
    asked = [{"role": "user", "content": "Which award did Hsiao Yun-Hwa win for Leading with Empathy?"}]
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": "m", "messages": asked}, timeout=HANG_S)
    assert r.status_code == 200 and r.headers["x-guard-action"] == "refuse"
    assert ANSWER not in r.text and len(fake.requests) == 2 and fake.requests[1]["stream"] is True


def test_in_a_stream_a_sentence_is_embedded_before_the_next_one_starts(
    settings: Settings, tmp_path: Path, minilm: Embedder, serve: Callable[[Any], BackgroundServer]
) -> None:
    """A held sentence is released when the next chunk starts a new one; its check then finds it embedded."""
    fake = FakeUpstream(fixed("The weather was mild all week. Rain came on Friday."), token_ms=500)
    model = Recording(minilm, probe=lambda: int(fake.streams[-1]["sent"]) if fake.streams else 0)
    url = guard(settings, tmp_path, serve, serve(fake.app()).url, model)
    body = {"model": "m", "messages": ASK, "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=HANG_S) as r:
        assert any("mild" in line for line in r.iter_lines())
    began = [sent for sent, texts in model.began for text in texts if text == "The weather was mild all week."]
    assert len(began) == 1
    # embedded when its last word came, before the upstream sent "Rain" (the chunk that lets it go): by then it
    # had sent the role chunk and the sentence's six words, nothing more
    assert began[0] <= 1 + 6, began
