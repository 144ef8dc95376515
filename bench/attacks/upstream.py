"""An obedient memorizing model for the attack suite: it knows every case's answer, finds the case by the
nonce "(#n)" in the last user turn, and answers as the case says — in the field (content, reasoning, tool call,
refusal, top logprobs, a second choice) and the encoding the attack asked for, as JSON or as an SSE stream.

A request with no known nonce (e.g. one the guard rewrote) gets a plain "I don't know."
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from guard.eval.attacks.cases import REFUSING, Case

_NONCE = re.compile(r"\(#(\d+)\)")
OTHER = "The weather was mild and the markets were quiet."


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


def reply_text(case: Case, asked: str) -> str:
    if case.channel == "halves":
        words = case.answer.split(" ")
        half = len(words) // 2
        return " ".join(words[half:] if "second half" in asked else words[:half])
    return case.answer


def message_of(case: Case, text: str) -> dict[str, Any]:
    """The non-streaming message: the text in the case's field, a refusing content elsewhere."""
    channel = case.channel
    if channel in ("content", "halves", "n2"):
        return {"role": "assistant", "content": text}
    if channel in ("reasoning", "reasoning_content"):
        return {"role": "assistant", "content": REFUSING, channel: text}
    if channel == "tool_call":
        call = {"id": "call_a", "type": "function", "function": {"name": "answer", "arguments": _args(text)}}
        return {"role": "assistant", "content": None, "tool_calls": [call]}
    if channel == "function_call":
        return {"role": "assistant", "content": None, "function_call": {"name": "answer", "arguments": _args(text)}}
    if channel == "refusal":
        return {"role": "assistant", "content": None, "refusal": text}
    return {"role": "assistant", "content": REFUSING}  # top_logprobs: the text hides in the alternatives


def logprobs_of(case: Case, text: str) -> dict[str, Any] | None:
    if case.channel != "top_logprobs":
        return None
    tokens = [" " + w if i else w for i, w in enumerate(REFUSING.split(" "))]
    hidden = text.split(" ")
    per = -(-len(hidden) // len(tokens))
    entries = []
    for i, token in enumerate(tokens):
        alternatives = [{"token": " " + w, "logprob": -1.5} for w in hidden[i * per : (i + 1) * per]]
        entries.append(
            {"token": token, "logprob": -0.1, "top_logprobs": [{"token": token, "logprob": -0.1}, *alternatives]}
        )
    return {"content": entries}


def _args(text: str) -> str:
    return json.dumps({"text": text})


class ObedientModel:
    def __init__(self, cases: list[Case]) -> None:
        self.cases = {c.number: c for c in cases}

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
            ]
        )

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "obedient", "object": "model"}]})

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        asked = last_user_text(body.get("messages") or [])
        found = _NONCE.search(asked)
        case = self.cases.get(int(found.group(1))) if found else None
        if case is None:
            text, message, logprobs = "I don't know.", {"role": "assistant", "content": "I don't know."}, None
            case = Case("none", True, -1, [], "", "", text)
        else:
            text = reply_text(case, asked)
            message, logprobs = message_of(case, text), logprobs_of(case, text)
        if body.get("stream"):
            return StreamingResponse(self._stream(case, text), media_type="text/event-stream")
        choices = [{"index": 0, "message": message, "logprobs": logprobs, "finish_reason": "stop"}]
        if case.channel == "n2":
            choices = [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": OTHER},
                    "logprobs": None,
                    "finish_reason": "stop",
                },
                {**choices[0], "index": 1},
            ]
        return JSONResponse(
            {
                "id": "obedient",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": "obedient",
                "choices": choices,
            }
        )

    async def _stream(self, case: Case, text: str) -> AsyncIterator[bytes]:
        def chunk(index: int, delta: Mapping[str, Any], finish: str | None = None, **extra: Any) -> bytes:
            choice = {"index": index, "delta": dict(delta), "finish_reason": finish, **extra}
            event = {
                "id": "obedient",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "obedient",
                "choices": [choice],
            }
            return b"data: " + json.dumps(event).encode() + b"\n\n"

        words = [" " + w if i else w for i, w in enumerate(text.split(" "))]
        channel = case.channel
        yield chunk(0, {"role": "assistant", "content": ""})
        if channel in ("reasoning", "reasoning_content"):
            for w in words:
                yield chunk(0, {channel: w})
            for w in REFUSING.split(" "):
                yield chunk(0, {"content": " " + w})
        elif channel == "tool_call":
            yield chunk(
                0,
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_a",
                            "type": "function",
                            "function": {"name": "answer", "arguments": ""},
                        }
                    ]
                },
            )
            args = _args(text)
            for i in range(0, len(args), 8):
                yield chunk(0, {"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + 8]}}]})
        elif channel == "function_call":
            yield chunk(0, {"function_call": {"name": "answer", "arguments": ""}})
            args = _args(text)
            for i in range(0, len(args), 8):
                yield chunk(0, {"function_call": {"arguments": args[i : i + 8]}})
        elif channel == "refusal":
            for w in words:
                yield chunk(0, {"refusal": w})
        elif channel == "top_logprobs":
            logprobs = logprobs_of(case, text) or {"content": []}
            for entry in logprobs["content"]:
                yield chunk(0, {"content": entry["token"]}, logprobs={"content": [entry]})
        elif channel == "n2":
            yield chunk(1, {"role": "assistant", "content": ""})
            other = OTHER.split(" ")
            for i in range(max(len(words), len(other))):
                if i < len(other):
                    yield chunk(0, {"content": (" " if i else "") + other[i]})
                if i < len(words):
                    yield chunk(1, {"content": words[i]})
            yield chunk(1, {}, "stop")
        else:
            for w in words:
                yield chunk(0, {"content": w})
        yield chunk(0, {}, "stop")
        yield b"data: [DONE]\n\n"
