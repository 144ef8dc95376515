"""A non-streamed answer assembled from the upstream's stream (policy `stream_upstream`).

A client that does not stream waits for the whole answer, and the upstream generates it token by token all the
same. Asked for a stream instead, the guard reads the answer while it is generated and embeds each sentence as
soon as it is complete (`guard.pipeline.json`). The output check of the whole answer, once the last token is in,
then finds them in the embedder's cache: only deciding is left. What the client gets is the non-streamed shape,
assembled from the chunks: the upstream's id, created, model and other top-level fields, each choice's message
(or text) joined, its finish and stop reasons, and the usage (asked for with `stream_options.include_usage`).

Requests whose streamed answer is not simply the non-streamed one cut into pieces are sent as they are: tools and
functions (a server's streaming tool-call parser is not its non-streaming one), logprobs and prompt logprobs,
`echo`, `best_of`, and a client's own `stream_options` (the upstream says what it makes of them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from guard.errors import UpstreamError
from guard.openai.protocol import Endpoint

SENT_AS_IS = ("tools", "functions", "logprobs", "top_logprobs", "prompt_logprobs", "echo", "best_of", "stream_options")


def streamable(body: Mapping[str, Any]) -> bool:
    """Can this non-streamed request be streamed from the upstream and assembled without changing the answer?"""
    return not any(body.get(key) is not None and body.get(key) is not False for key in SENT_AS_IS)


def streaming(body: Mapping[str, Any]) -> dict[str, Any]:
    """The request as sent upstream: streamed, with the usage in a last chunk."""
    return {**body, "stream": True, "stream_options": {"include_usage": True}}


class Assembler:
    """Chunks in (`add`), the non-streamed body out (`body`)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.top: dict[str, Any] = {}  # id, created, model, system_fingerprint...: as the first chunk gave them
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: Any = None

    def add(self, event: Mapping[str, Any]) -> list[tuple[int, str]]:
        """Take one chunk; (choice index, the whole text so far) of each field it extended."""
        for key, value in event.items():
            if key == "usage":
                self.usage = value if value is not None else self.usage
            elif key not in ("choices", "object"):
                self.top.setdefault(key, value)
        grown: list[tuple[int, str]] = []
        for raw in event.get("choices") or []:
            if not isinstance(raw, dict) or not isinstance(raw.get("index", 0), int):
                raise UpstreamError("upstream sent a malformed stream chunk")
            index = raw.get("index", 0)
            choice = self.choices.get(index)
            if choice is None:
                choice = self.choices[index] = self._new(index)
            grown += ((index, text) for text in self._extend(choice, raw))
            for key in ("finish_reason", "stop_reason"):
                if raw.get(key) is not None:
                    choice[key] = raw[key]
        return grown

    def choice(self, index: int) -> dict[str, Any]:
        return self.choices[index]

    def body(self) -> dict[str, Any]:
        obj = "chat.completion" if self.endpoint == "chat" else "text_completion"
        out = {**self.top, "object": obj, "choices": [self.choices[i] for i in sorted(self.choices)]}
        if self.usage is not None:
            out["usage"] = self.usage
        return out

    def _new(self, index: int) -> dict[str, Any]:
        if self.endpoint == "chat":
            message: dict[str, Any] = {"role": "assistant", "content": None}
            return {"index": index, "message": message, "logprobs": None, "finish_reason": None}
        return {"index": index, "text": "", "logprobs": None, "finish_reason": None}

    def _extend(self, choice: dict[str, Any], raw: Mapping[str, Any]) -> list[str]:
        """Join the chunk's text to the choice's; the whole text of each field that grew."""
        if self.endpoint == "completions":
            text = raw.get("text")
            if not isinstance(text, str) or not text:
                return []
            choice["text"] += text
            return [choice["text"]]
        delta = raw.get("delta")
        if delta is None:
            return []
        if not isinstance(delta, dict):
            raise UpstreamError("upstream sent a malformed stream chunk")
        message, grown = choice["message"], []
        for key, value in delta.items():
            if key == "role" and isinstance(value, str):
                message["role"] = value
            elif isinstance(value, str):  # content, reasoning, reasoning_content, refusal
                message[key] = (message.get(key) or "") + value
                if value:
                    grown.append(message[key])
            elif key == "tool_calls" and isinstance(value, list):
                grown += _calls(message.setdefault("tool_calls", []), value)
            elif value is not None and key not in message:
                message[key] = value  # anything else, as first given
        return grown


def _calls(calls: list[dict[str, Any]], pieces: list[Any]) -> list[str]:
    """Join streamed tool-call pieces (by their `index`) into whole calls; the whole text of each part that grew."""
    grown: list[str] = []
    for piece in pieces:
        if not isinstance(piece, dict):
            raise UpstreamError("upstream sent a malformed stream chunk")
        at = piece.get("index", len(calls))
        if not isinstance(at, int) or not 0 <= at <= len(calls):
            raise UpstreamError("upstream sent a malformed stream chunk")
        if at == len(calls):
            calls.append({"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
        call, fn = calls[at], piece.get("function") or {}
        for key in ("id", "type"):
            if piece.get(key) is not None:
                call[key] = piece[key]
        for key in ("name", "arguments"):
            if isinstance(fn.get(key), str):
                call["function"][key] += fn[key]
                if fn[key]:
                    grown.append(call["function"][key])
    return grown
