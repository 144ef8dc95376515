"""OpenAI-shaped bodies for the fake upstream and for tests: completions, stream chunks, server-sent events."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from typing import Any, Literal

Endpoint = Literal["chat", "completions"]


def completion_body(endpoint: Endpoint, model: str, text: str, rid: str = "", **message: Any) -> dict[str, Any]:
    """A non-streaming answer with one choice; `message` adds fields to the chat message (e.g. reasoning)."""
    if endpoint == "chat":
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text, **message}}
        obj = "chat.completion"
    else:
        choice, obj = {"index": 0, "text": text}, "text_completion"
    choice.update(logprobs=None, finish_reason="stop")
    words = len(text.split())
    return {
        "id": rid or f"fake-{uuid.uuid4().hex[:12]}",
        "object": obj,
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": {"prompt_tokens": 1, "completion_tokens": words, "total_tokens": words + 1},
    }


def chunk(model: str = "m", rid: str = "up", index: int = 0, finish: str | None = None, **delta: Any) -> dict[str, Any]:
    """One chat stream chunk whose delta holds `delta` (content, reasoning, tool_calls, role...)."""
    choice = {"index": index, "delta": delta, "finish_reason": finish}
    return {"id": rid, "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [choice]}


def chunks(
    endpoint: Endpoint, model: str, pieces: Sequence[str], rid: str = "", field: str = "content"
) -> list[dict[str, Any]]:
    """A stream's chunks: (chat: a role chunk first) a chunk per piece (in the delta's `field`), a finish chunk."""
    base = {
        "id": rid or f"fake-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion.chunk" if endpoint == "chat" else "text_completion",
        "created": int(time.time()),
        "model": model,
    }

    def choice(piece: str | None, first: bool = False) -> dict[str, Any]:
        if endpoint == "chat":
            delta: dict[str, Any] = {"role": "assistant", "content": ""} if first else {}
            if piece is not None and not first:
                delta[field] = piece
            out: dict[str, Any] = {"index": 0, "delta": delta}
        else:
            out = {"index": 0, "text": piece or ""}
        out["finish_reason"] = "stop" if piece is None and not first else None
        return {**base, "choices": [out]}

    head = [choice("", first=True)] if endpoint == "chat" else []
    return [*head, *(choice(p) for p in pieces), choice(None)]


def tool_call_chunks(
    model: str, name: str, arguments: str, size: int = 8, call_id: str = "call_a"
) -> list[dict[str, Any]]:
    """A streamed tool call as vLLM sends it: the call's head, then its arguments `size` characters at a time."""
    head = {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
    parts = [arguments[i : i + size] for i in range(0, len(arguments), size)]
    return [
        chunk(model, tool_calls=[head]),
        *(chunk(model, tool_calls=[{"index": 0, "function": {"arguments": p}}]) for p in parts),
    ]


def tool_call(name: str, arguments: str, call_id: str = "call_a") -> dict[str, Any]:
    """A tool call in a non-streamed message."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def sse(events: Sequence[dict[str, Any]], done: bool = True) -> bytes:
    """Server-sent events as an OpenAI server writes them, with the closing `data: [DONE]`."""
    body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    return body + (b"data: [DONE]\n\n" if done else b"")


def words(text: str) -> list[str]:
    """A text cut into word-sized stream pieces, spaces kept: joined they give the text back."""
    parts = text.split(" ")
    return [p if i == 0 else " " + p for i, p in enumerate(parts)]


def chat_reply(content: str, model: str = "m") -> dict[str, Any]:
    """A chat completion (JSON) with `content`."""
    return completion_body("chat", model, content, rid="chatcmpl-up")


def sse_body(pieces: list[str], model: str = "m") -> bytes:
    """A chat stream: a role chunk, one chunk per piece, a finish chunk, [DONE]."""
    return sse(chunks("chat", model, pieces, rid="chatcmpl-up"))
