"""A non-streamed answer assembled from a stream (`guard.openai.assemble`): the same body as the non-streamed
answer, whatever the cut into chunks."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guard.errors import UpstreamError
from guard.openai.assemble import Assembler, streamable, streaming
from guard.openai.protocol import Endpoint
from guard.testing import shapes as fake

TEXT = "Paris is the capital of France. It lies on the Seine.\nIts museums are famous!"


def usage_chunk(events: list[dict[str, Any]], words: int) -> dict[str, Any]:
    head = {k: v for k, v in events[0].items() if k != "choices"}
    return {**head, "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": words, "total_tokens": words + 1}}


def assembled(endpoint: Endpoint, events: list[dict[str, Any]]) -> dict[str, Any]:
    assembler = Assembler(endpoint)
    for event in events:
        assembler.add(event)
    return assembler.body()


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_the_assembled_body_is_the_non_streamed_one(endpoint: Endpoint) -> None:
    events = fake.chunks(endpoint, "m", fake.words(TEXT), rid="r1")
    events.append(usage_chunk(events, len(TEXT.split())))
    expected = fake.completion_body(endpoint, "m", TEXT, rid="r1")
    got = assembled(endpoint, events)
    assert got.pop("created") == pytest.approx(expected.pop("created"), abs=2)
    assert got == expected


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=30))
def test_any_cut_into_pieces_joins_back(pieces: list[str]) -> None:
    body = assembled("chat", fake.chunks("chat", "m", pieces))
    assert body["choices"][0]["message"]["content"] == "".join(pieces)
    assert body["choices"][0]["finish_reason"] == "stop"


def test_choices_reasoning_tool_calls_and_reasons_are_joined_per_choice() -> None:
    def chunk(index: int, delta: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {
            "id": "r",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "system_fingerprint": "fp",
            "choices": [{"index": index, "delta": delta, "finish_reason": None, **extra}],
        }

    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "look", "arguments": '{"q": '}}
    events = [
        chunk(1, {"role": "assistant", "content": ""}),
        chunk(0, {"role": "assistant", "reasoning_content": "Think first."}),
        chunk(1, {"content": "Second."}),
        chunk(0, {"reasoning_content": " Then act."}),
        chunk(0, {"tool_calls": [call]}),
        chunk(0, {"tool_calls": [{"index": 0, "function": {"arguments": '"x"}'}}]}),
        chunk(0, {}, finish_reason="tool_calls"),
        chunk(1, {}, finish_reason="stop", stop_reason="</s>"),
    ]
    assembler = Assembler("chat")
    grown = [assembler.add(e) for e in events]
    assert grown[2] == [(1, "Second.")] and grown[3] == [(0, "Think first. Then act.")]
    body = assembler.body()
    assert body["object"] == "chat.completion" and body["system_fingerprint"] == "fp" and "usage" not in body
    first, second = body["choices"]
    assert first["message"] == {
        "role": "assistant",
        "content": None,
        "reasoning_content": "Think first. Then act.",
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "look", "arguments": '{"q": "x"}'}}],
    }
    assert first["finish_reason"] == "tool_calls" and "stop_reason" not in first
    assert second["message"]["content"] == "Second." and (second["finish_reason"], second["stop_reason"]) == (
        "stop",
        "</s>",
    )


@pytest.mark.parametrize("choices", [["not a choice"], [{"index": "0", "delta": {}}], [{"index": 0, "delta": "text"}]])
def test_a_malformed_chunk_is_an_upstream_error(choices: list[Any]) -> None:
    with pytest.raises(UpstreamError):
        Assembler("chat").add({"id": "r", "choices": choices})


def test_a_tool_call_piece_out_of_order_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError):
        Assembler("chat").add({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 3}]}}]})


@pytest.mark.parametrize(
    ("extra", "ok"),
    [
        ({}, True),
        ({"n": 2, "temperature": 0, "response_format": {"type": "json_object"}}, True),
        ({"logprobs": False, "tools": None}, True),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, False),
        ({"logprobs": True, "top_logprobs": 2}, False),
        ({"logprobs": 0}, False),  # completions: the sampled token's logprob
        ({"prompt_logprobs": 1}, False),
        ({"echo": True}, False),
        ({"stream_options": {"include_usage": True}}, False),
    ],
)
def test_what_is_streamed_and_what_is_sent_as_is(extra: dict[str, Any], ok: bool) -> None:
    body = {"model": "m", "messages": [], **extra}
    assert streamable(body) is ok
    sent = streaming(body)
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True} and "stream" not in body
