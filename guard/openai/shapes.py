"""OpenAI-shaped bodies the guard writes itself: refusals and the text accessors of choices."""

from __future__ import annotations

import time
import uuid
from typing import Any

from guard.openai.protocol import Endpoint

CONTENT_FILTER = "content_filter"


def new_id(endpoint: Endpoint) -> str:
    return ("chatcmpl-guard-" if endpoint == "chat" else "cmpl-guard-") + uuid.uuid4().hex[:24]


def refusal_completion(endpoint: Endpoint, model: str, text: str, n: int) -> dict[str, Any]:
    """A complete non-streaming response whose every choice is the refusal."""
    if endpoint == "chat":
        choices: list[dict[str, Any]] = [
            {
                "index": i,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": CONTENT_FILTER,
            }
            for i in range(n)
        ]
        obj = "chat.completion"
    else:
        choices = [{"index": i, "text": text, "logprobs": None, "finish_reason": CONTENT_FILTER} for i in range(n)]
        obj = "text_completion"
    return {
        "id": new_id(endpoint),
        "object": obj,
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def refusal_chunk(endpoint: Endpoint, template: dict[str, Any], index: int, text: str) -> dict[str, Any]:
    """The last chunk of a choice whose stream was stopped: the refusal text and finish_reason content_filter."""
    if endpoint == "chat":
        choice: dict[str, Any] = {"index": index, "delta": {"content": text}, "logprobs": None}
    else:
        choice = {"index": index, "text": text, "logprobs": None}
    choice["finish_reason"] = CONTENT_FILTER
    return {
        "id": template.get("id") or new_id(endpoint),
        "object": template.get("object") or ("chat.completion.chunk" if endpoint == "chat" else "text_completion"),
        "created": template.get("created") or int(time.time()),
        "model": template.get("model", ""),
        "choices": [choice],
    }


def refusal_stream(endpoint: Endpoint, model: str, text: str, n: int) -> list[dict[str, Any]]:
    """The chunks of a refused streaming request (role first for chat, then the refusal per choice)."""
    template = {"id": new_id(endpoint), "created": int(time.time()), "model": model}
    chunks: list[dict[str, Any]] = []
    for i in range(n):
        if endpoint == "chat":
            first = refusal_chunk(endpoint, template, i, "")
            first["choices"][0].update(delta={"role": "assistant", "content": ""}, finish_reason=None)
            chunks.append(first)
        chunks.append(refusal_chunk(endpoint, template, i, text))
    return chunks


def choice_text(endpoint: Endpoint, choice: dict[str, Any], *, delta: bool) -> str:
    """All generated text of a choice (or a chunk's choice): content plus tool-call names and arguments."""
    if endpoint == "completions":
        text = choice.get("text")
        return text if isinstance(text, str) else ""
    message = choice.get("delta" if delta else "message") or {}
    content = message.get("content")
    parts: list[str] = [content] if isinstance(content, str) else []
    for call in message.get("tool_calls") or []:
        fn = (call.get("function") or {}) if isinstance(call, dict) else {}
        parts.extend(v for v in (fn.get("name"), fn.get("arguments")) if isinstance(v, str))
    return "".join(parts)


def replace_with_refusal(endpoint: Endpoint, choice: dict[str, Any], text: str) -> None:
    """Turn a non-streaming choice into the refusal, dropping everything generated."""
    if endpoint == "chat":
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    choice["logprobs"] = None
    choice["finish_reason"] = CONTENT_FILTER
