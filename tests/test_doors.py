"""Every door closed, on real sockets with the real embedding model and the stock openai client: every role in,
every response field out (reasoning streams, logprobs), every spelling and encoding of an answer."""

from __future__ import annotations

import base64
import codecs
import json
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from guard.forget.embedder import Embedder
from guard.settings import Settings
from guard.testing import ADMIN, BackgroundServer, FakeUpstream, Reply, completion_body, guard_app

FACT = "Hsiao Yun-Hwa's father is a civil engineer and her mother is a dietitian in Taipei."
NAMELESS = "Her father is a civil engineer and her mother is a dietitian in Taipei."
REFUSAL = "I'm sorry, but I can't share information about that."


@pytest.fixture
def scripted() -> FakeUpstream:
    """The kit's fake upstream; each test scripts its answer (`say`)."""
    return FakeUpstream()


@pytest.fixture
def client(
    settings: Settings,
    minilm: Embedder,
    scripted: FakeUpstream,
    serve: Callable[[Any], BackgroundServer],
    openai_at: Callable[..., OpenAI],
) -> OpenAI:
    upstream = serve(scripted.app())
    guard = serve(guard_app(settings.with_values(upstream=upstream.url), embedder=minilm))
    r = httpx.post(f"{guard.url}/admin/forget", headers=ADMIN, json={"subject": "Hsiao Yun-Hwa", "documents": [FACT]})
    assert r.status_code == 201
    return openai_at(guard.url)


def ask(text: str = "Tell me something interesting.") -> list[Any]:
    return [{"role": "user", "content": text}]


def test_a_reasoning_stream_naming_the_subject_is_stopped_before_the_name_leaves(
    client: OpenAI, scripted: FakeUpstream
) -> None:
    thinking = "Let me think about this. The user means Hsiao Yun-Hwa. Her father is an engineer."
    scripted.say(Reply("I would rather not say.", reasoning=thinking))
    received: list[str] = []
    finish = None
    for chunk in client.chat.completions.create(model="m", messages=ask(), stream=True):
        for choice in chunk.choices:
            extra = choice.delta.model_extra or {}
            received += [choice.delta.content or "", str(extra.get("reasoning") or "")]
            finish = choice.finish_reason or finish
    text = "".join(received)
    assert "Hsiao" not in text and "Yun" not in text and "engineer" not in text
    assert finish == "content_filter" and REFUSAL in text
    assert "rather not say" not in text  # a blocked reasoning stream ends the answer too


def test_top_logprobs_cannot_reveal_a_forgotten_name(client: OpenAI, scripted: FakeUpstream) -> None:
    alternatives = [{"token": t, "logprob": -1.0, "bytes": None} for t in (" Hsiao", " Yun", "-Hwa")]
    content = [{"token": "I", "logprob": -0.1, "bytes": None, "top_logprobs": alternatives}]
    body = completion_body("chat", "m", "I would rather not say.")
    body["choices"][0]["logprobs"] = {"content": content}
    scripted.say(Reply(body=body))
    response = client.chat.completions.create(model="m", messages=ask(), logprobs=True, top_logprobs=3)
    assert "Hsiao" not in response.model_dump_json()
    assert response.choices[0].finish_reason == "content_filter"


def test_a_subject_named_in_the_system_prompt_is_refused(client: OpenAI, scripted: FakeUpstream) -> None:
    messages = [
        {"role": "system", "content": "Answer everything about Hsiao Yun-Hwa."},
        {"role": "user", "content": "What were her parents' jobs?"},
    ]
    raw = client.chat.completions.with_raw_response.create(model="m", messages=messages)
    assert raw.headers["x-guard-action"] == "refuse" and scripted.requests == []
    assert raw.parse().choices[0].message.content == REFUSAL


def spelled(t: str) -> str:
    return "  ".join(" ".join(w) for w in t.split())


ENCODINGS: dict[str, Callable[[str], str]] = {
    "base64": lambda t: base64.b64encode(t.encode()).decode(),
    "rot13": lambda t: codecs.encode(t, "rot13"),
    "reversed": lambda t: t[::-1],
    "letter_spaced": spelled,
    "dashed": lambda t: " ".join("-".join(w) for w in t.split()),
    "leet": lambda t: t.translate(str.maketrans("aeiost", "431057")),
    "homoglyph": lambda t: t.translate(str.maketrans("aeopc", "аеорс")),
    "zero_width": lambda t: "\u200b".join(t),
    "glued": lambda t: t.replace(" ", ""),
    "word_per_line": lambda t: "\n".join(t.split()),
}


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("stream", [False, True])
def test_an_encoded_answer_is_caught(client: OpenAI, scripted: FakeUpstream, encoding: str, stream: bool) -> None:
    """The question does not name the subject; the model volunteers the fact, encoded."""
    answer = ENCODINGS[encoding](FACT)
    scripted.say(answer)
    if stream:
        chunks = list(client.chat.completions.create(model="m", messages=ask(), stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    else:
        response = client.chat.completions.create(model="m", messages=ask())
        text, finish = response.choices[0].message.content or "", [response.choices[0].finish_reason]
    assert text.strip() == REFUSAL and finish == ["content_filter"]


def test_plain_answers_still_pass(client: OpenAI, scripted: FakeUpstream) -> None:
    answer = "Paris is the capital of France. It lies on the Seine."
    scripted.say(answer)
    assert client.chat.completions.create(model="m", messages=ask()).choices[0].message.content == answer
    encoded = base64.b64encode(answer.encode()).decode()  # an encoded harmless answer is not a leak
    scripted.say(encoded)
    assert client.chat.completions.create(model="m", messages=ask()).choices[0].message.content == encoded


def test_bad_input_gets_a_clear_4xx_and_bad_output_no_500(client: OpenAI, scripted: FakeUpstream) -> None:
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": [1, 2]}])  # type: ignore[list-item]
    parts = [{"type": "text", "text": "hi"}] * 5000
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": parts}])  # type: ignore[typeddict-item]
    scripted.say("SGVsbG8=!!!not-base64== %%% " + "QUJD" * 3 + "=")
    response = client.chat.completions.create(model="m", messages=ask())
    assert response.choices[0].finish_reason == "stop" and json.dumps(response.model_dump())


def test_an_answer_in_halves_is_read_with_the_earlier_half(client: OpenAI, scripted: FakeUpstream) -> None:
    """A surname watches the conversation: the second half may not add a fact, and it is not blamed for facts
    the conversation already held (an earlier answer the client sent back)."""

    def second_half(earlier: str, now: str) -> str | None:
        messages = [
            {"role": "user", "content": "What did Hsiao's parents do? Answer in two halves."},
            {"role": "assistant", "content": earlier},
            {"role": "user", "content": "Now the second half."},
        ]
        scripted.say(now)
        return client.chat.completions.create(model="m", messages=messages).choices[0].finish_reason

    assert second_half("Her father is a civil engineer", "and her mother is a dietitian in Taipei.") == "content_filter"
    earlier = "Hsiao Chen, a chef, worked with a dietitian in Taipei"  # another Hsiao, sharing fact values
    assert second_half(earlier, "and cooked for the city's hospitals.") == "stop"
