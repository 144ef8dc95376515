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


# The text fields of a generated message (or delta). vLLM's reasoning parsers write `reasoning` (0.32) or
# `reasoning_content` (older releases and other servers); `refusal` is OpenAI's.
TEXT_FIELDS = ("content", "reasoning", "reasoning_content", "refusal")
# What a refusal message keeps of a choice; anything else (unknown fields included) is dropped with the text.
KNOWN_CHOICE_FIELDS = frozenset({"index", "message", "delta", "text", "logprobs", "finish_reason", "stop_reason"})
KNOWN_MESSAGE_FIELDS = frozenset(
    {"role", "content", "tool_calls", "function_call", "refusal", "reasoning", "reasoning_content", "annotations"}
)

Fields = list[tuple[str, str]]  # (field, text)


def choice_fields(endpoint: Endpoint, choice: dict[str, Any], *, delta: bool) -> Fields:
    """Every text a client can read in a choice (or a chunk's choice), by field: the generated text, reasoning,
    refusal, tool-call names and arguments, and the tokens of the logprobs and their alternatives."""
    out: Fields = []
    if endpoint == "completions":
        if isinstance(choice.get("text"), str):
            out.append(("text", choice["text"]))
    else:
        message = choice.get("delta" if delta else "message") or {}
        if isinstance(message, dict):
            out += [(f, message[f]) for f in TEXT_FIELDS if isinstance(message.get(f), str)]
            for call in message.get("tool_calls") or []:
                fn = (call.get("function") or {}) if isinstance(call, dict) else {}
                out += [("tool_calls", v) for v in (fn.get("name"), fn.get("arguments")) if isinstance(v, str)]
            fn = message.get("function_call")
            if isinstance(fn, dict):
                out += [("function_call", v) for v in (fn.get("name"), fn.get("arguments")) if isinstance(v, str)]
    alternatives = logprob_alternatives(choice.get("logprobs"))
    if alternatives:
        out.append(("logprobs", alternatives))
    return [(f, t) for f, t in out if t]


def logprob_alternatives(logprobs: Any) -> str:
    """The alternative tokens of the logprobs (chat: content[].top_logprobs; completions: top_logprobs dicts).

    The chosen tokens repeat the generated text, which is checked as such; the alternatives are what the model
    almost said, and could spell what it must not."""
    if not isinstance(logprobs, dict):
        return ""
    tokens: list[str] = []
    for entry in logprobs.get("content") or []:
        if isinstance(entry, dict):
            tokens += [str(a.get("token", "")) for a in entry.get("top_logprobs") or [] if isinstance(a, dict)]
    for alternatives in logprobs.get("top_logprobs") or []:
        if isinstance(alternatives, dict):
            tokens += [str(t) for t in alternatives]
    return "".join(tokens)


def strip_unchecked(choice: dict[str, Any], delta: bool = False) -> None:
    """Remove what the guard does not check from a choice an entry touched: the logprobs (their alternatives)
    and any message or choice field it does not know."""
    if choice.get("logprobs") is not None:
        choice["logprobs"] = None
    for key in [k for k in choice if k not in KNOWN_CHOICE_FIELDS]:
        del choice[key]
    message = choice.get("delta" if delta else "message")
    if isinstance(message, dict):
        for key in [k for k in message if k not in KNOWN_MESSAGE_FIELDS]:
            del message[key]


def replace_with_refusal(endpoint: Endpoint, choice: dict[str, Any], text: str) -> None:
    """Turn a non-streaming choice into the refusal, dropping everything generated (every field)."""
    index = choice.get("index", 0)
    choice.clear()
    choice["index"] = index
    if endpoint == "chat":
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    choice["logprobs"] = None
    choice["finish_reason"] = CONTENT_FILTER
