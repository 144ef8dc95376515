"""One fake OpenAI-compatible upstream for the tests, the benchmarks and the TOFU oracle: JSON or SSE,
paced, and faulty on request. No model: what it answers comes from an `Answer` function.

    # benchmarks: a fast upstream whose every answer differs (no cache in front of it passes for a speed-up)
    FAKE_TOKEN_MS=20 .venv/bin/python -m uvicorn --factory guard.eval.fake_upstream:from_env --port 8101

Faults (`fault=`): "status" (500 with an OpenAI error body), "html" (503 with an HTML page), "malformed" (200,
not JSON), "cut" (a stream that stops after its first token, without [DONE]), "stall" (a stream that goes
silent after its first token).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

Endpoint = Literal["chat", "completions"]
Answer = Callable[[Endpoint, dict[str, Any]], str]  # (endpoint, request body) -> the generated text
Fault = Literal["status", "html", "malformed", "cut", "stall"]

SENTENCES = [
    "That is a good question.",
    "The answer depends on the context, and on what you already know.",
    "Most sources agree on the main points, though the details vary.",
    "It is worth checking a recent reference for the exact figures.",
    "In short, there are several reasonable ways to look at it.",
    "Many people find it easier to start with a simple example.",
]


def varied_answers(novel: bool = False) -> Answer:
    """Every answer different (a counter and a varying sentence): the benchmarks' upstream. `novel`: every
    sentence too (numbered), as a model's are, so no cache of sentences seen before passes for a speed-up; the
    number comes from the request's text, so that targets sent the same request get answers of the same length."""
    counter = itertools.count()

    def answer(endpoint: Endpoint, body: dict[str, Any]) -> str:
        n = next(counter)
        if novel:
            key = json.dumps([body.get("messages"), body.get("prompt")], sort_keys=True)
            n = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest(), "big")
        picks = [SENTENCES[(n + k) % len(SENTENCES)] for k in range(3)]
        if novel:
            picks = [f"{p[:-1]} ({n}{chr(97 + k)})." for k, p in enumerate(picks)]
        return f"{picks[0]} Request {n} reached the model. {picks[1]} {picks[2]}"

    return answer


def fixed(text: str) -> Answer:
    return lambda endpoint, body: text


# -- OpenAI-shaped bodies ----------------------------------------------------------------------------------------


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


def chunks(endpoint: Endpoint, model: str, pieces: Sequence[str], rid: str = "") -> list[dict[str, Any]]:
    """A stream's chunks: (chat: a role chunk first) one chunk per piece, then a finish chunk."""
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
                delta["content"] = piece
            out: dict[str, Any] = {"index": 0, "delta": delta}
        else:
            out = {"index": 0, "text": piece or ""}
        out["finish_reason"] = "stop" if piece is None and not first else None
        return {**base, "choices": [out]}

    head = [choice("", first=True)] if endpoint == "chat" else []
    return [*head, *(choice(p) for p in pieces), choice(None)]


def sse(events: Sequence[dict[str, Any]], done: bool = True) -> bytes:
    """Server-sent events as an OpenAI server writes them, with the closing `data: [DONE]`."""
    body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    return body + (b"data: [DONE]\n\n" if done else b"")


def words(text: str) -> list[str]:
    """A text cut into word-sized stream pieces, spaces kept: joined they give the text back."""
    parts = text.split(" ")
    return [p if i == 0 else " " + p for i, p in enumerate(parts)]


# -- the server --------------------------------------------------------------------------------------------------


class FakeUpstream:
    def __init__(
        self,
        answer: Answer | None = None,
        *,
        model: str | None = None,
        token_ms: float = 0.0,
        tokens: int = 0,
        fault: Fault | None = None,
        first_ms: float = 0.0,
    ) -> None:
        self.answer = answer or varied_answers()
        self.model = model  # when set, other model names get a 404 as from vLLM
        self.token_ms = token_ms  # pace of streamed tokens
        self.tokens = tokens  # stream this many tokens (the answer's words repeated); 0: the answer's words
        self.fault = fault
        self.first_ms = first_ms  # wait before answering (a real model's time to first token)
        self.pieces: Callable[[str], list[str]] = words  # how a streamed answer is cut into chunks
        self.requests: list[dict[str, Any]] = []  # every request body received, in order
        # per stream served: how many chunks were sent, whether it ran to its end or was cancelled (client left)
        self.streams: list[dict[str, Any]] = []

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/health", self._health, methods=["GET"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/completions", self._completions, methods=["POST"]),
            ]
        )

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": self.model or "fake", "object": "model"}]})

    async def _chat(self, request: Request) -> Response:
        return await self._respond("chat", request)

    async def _completions(self, request: Request) -> Response:
        return await self._respond("completions", request)

    async def _respond(self, endpoint: Endpoint, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        model = str(body.get("model", "fake"))
        if self.model is not None and model != self.model:
            error = {"message": f"The model `{model}` does not exist.", "type": "NotFoundError", "code": 404}
            return JSONResponse({"error": error}, status_code=404)
        if self.fault == "status":
            return JSONResponse({"error": {"message": "upstream exploded", "type": "internal_error"}}, 500)
        if self.fault == "html":
            return Response("<html><body>503 Service Unavailable</body></html>", 503, media_type="text/html")
        if self.fault == "malformed":
            return Response("{not json", 200, media_type="application/json")
        text = self.answer(endpoint, body)
        if self.first_ms:
            await asyncio.sleep(self.first_ms / 1000)
        pieces = self.pieces(text)
        if self.tokens:
            pieces = [pieces[i % len(pieces)] for i in range(self.tokens)]
        if not body.get("stream"):  # generated at the same pace as a stream, answered once complete
            if self.token_ms:
                await asyncio.sleep(self.token_ms * (len(pieces) + 1) / 1000)
            return JSONResponse(completion_body(endpoint, model, "".join(pieces)))
        options = body.get("stream_options")
        usage = isinstance(options, dict) and bool(options.get("include_usage"))
        return StreamingResponse(self._stream(endpoint, model, pieces, usage), media_type="text/event-stream")

    async def _stream(
        self, endpoint: Endpoint, model: str, pieces: list[str], usage: bool = False
    ) -> AsyncIterator[bytes]:
        state: dict[str, Any] = {"sent": 0, "completed": False, "cancelled": False}
        self.streams.append(state)
        events = chunks(endpoint, model, pieces)
        if usage:  # as OpenAI and vLLM send it: a last chunk without choices
            count = len("".join(pieces).split())  # as `completion_body` counts
            tail = {"usage": {"prompt_tokens": 1, "completion_tokens": count, "total_tokens": count + 1}}
            events.append({**{k: v for k, v in events[0].items() if k != "choices"}, "choices": [], **tail})
        started = time.monotonic()
        try:
            for i, event in enumerate(events):
                if self.token_ms and i and event["choices"]:  # the usage chunk follows the last at once
                    # a token every token_ms from the start, as a server's clock gives them: the oversleeps of
                    # one sleep a token would add up to milliseconds a stream that a non-streamed answer lacks
                    await asyncio.sleep(max(0.0, started + i * self.token_ms / 1000 - time.monotonic()))
                yield sse([event], done=False)
                state["sent"] = i + 1
                if i == 1 and self.fault == "cut":
                    return
                if i == 1 and self.fault == "stall":
                    await asyncio.sleep(3600)
            yield b"data: [DONE]\n\n"
            state["completed"], state["ended_at"] = True, time.monotonic()
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise


def from_env() -> Starlette:
    """The benchmarks' upstream (uvicorn --factory): FAKE_TOKEN_MS paces streamed tokens, FAKE_TOKENS sets the
    length of a streamed answer in tokens, FAKE_FIRST_MS the wait before any answer (time to first token),
    FAKE_NOVEL=1 numbers every sentence (none is ever seen twice)."""
    return FakeUpstream(
        varied_answers(novel=os.environ.get("FAKE_NOVEL") == "1"),
        token_ms=float(os.environ.get("FAKE_TOKEN_MS", "0")),
        tokens=int(os.environ.get("FAKE_TOKENS", "0")),
        first_ms=float(os.environ.get("FAKE_FIRST_MS", "0")),
    ).app()
