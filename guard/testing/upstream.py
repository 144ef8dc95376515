"""The one fake OpenAI-compatible upstream, for the tests, the benchmarks and the TOFU oracle. No model: what it
answers comes from a script, `answer(endpoint, body) -> str | Reply`, set per test; it records every request.

It speaks JSON and SSE, paced like a model (`first_ms` before the answer, a token every `token_ms`), with reasoning
content and tool calls, and faulty on request. Served on a socket (`BackgroundServer(fake.app())`, or uvicorn's
factory below) or in process (`fake.transport`, for an app's upstream client; it buffers streams).

    # benchmarks: a fast upstream whose every answer differs (no cache in front of it passes for a speed-up)
    FAKE_TOKEN_MS=20 .venv/bin/python -m uvicorn --factory guard.testing.upstream:from_env --port 8101

Faults (`fault=`, or a `Reply`'s): "status" (500 with an OpenAI error body), "html" (503 with an HTML page),
"malformed" (200, not JSON), "garbage" (bytes that are not HTTP at all, then the connection closes; sockets only),
"hang" (no answer at all until the client leaves), and in a stream, after its first token: "cut" (the stream ends
without [DONE]), "abort" (half an event, then the connection drops), "stall" (it goes silent).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from guard.testing.shapes import Endpoint, chunk, chunks, completion_body, sse, tool_call, tool_call_chunks, words

Fault = Literal["status", "html", "malformed", "garbage", "hang", "cut", "abort", "stall"]
STREAM_FAULTS = ("cut", "abort", "stall")


@dataclass
class Reply:
    """One scripted answer. By default built from `text` (and `reasoning`, `tool`); `body` (JSON) or `events`
    (stream chunks) are sent as they are, `raw` as the whole response body, with `status` and `content_type`."""

    text: str = ""
    reasoning: str | None = None
    reasoning_field: str = "reasoning"  # vLLM's older servers: "reasoning_content"
    tool: tuple[str, str] | None = None  # a tool call: (function name, JSON arguments)
    pieces: Sequence[str] | None = None  # how a streamed `text` is cut (default: the upstream's `pieces`)
    body: dict[str, Any] | None = None
    events: Sequence[dict[str, Any]] | None = None
    raw: bytes | str | None = None
    status: int = 200
    content_type: str = "application/json"
    fault: Fault | None = None
    message: dict[str, Any] = field(default_factory=dict)  # more fields of a non-streamed chat message


Answer = Callable[[Endpoint, dict[str, Any]], "str | Reply"]  # (endpoint, request body) -> what to answer

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


def fixed(reply: str | Reply) -> Answer:
    """The same answer to every request."""
    return lambda endpoint, body: reply


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
        self.hosts: list[str] = []  # the host each request was addressed to (one fake for several upstreams)
        self.arrived: list[float] = []  # when each request arrived (time.monotonic)
        self.cancelled = 0  # answers abandoned while waiting (the client's call was cancelled)
        self.released = threading.Event()  # the client hung up on a stalled or hanging answer
        # per stream served: how many chunks were sent, whether it ran to its end or was cancelled (client left)
        self.streams: list[dict[str, Any]] = []
        self._app: Starlette | None = None

    def say(self, reply: str | Reply) -> None:
        """Answer every request from now on with `reply`."""
        self.answer = fixed(reply)

    def app(self) -> Starlette:
        if self._app is None:
            self._app = Starlette(
                routes=[
                    Route("/health", self._health, methods=["GET"]),
                    Route("/v1/models", self._models, methods=["GET"]),
                    Route("/v1/chat/completions", self._chat, methods=["POST"]),
                    Route("/v1/completions", self._completions, methods=["POST"]),
                ]
            )
        return self._app

    @property
    def transport(self) -> httpx.AsyncBaseTransport:
        """The fake in process, for an app's upstream client (no socket; a stream arrives whole)."""
        return httpx.ASGITransport(app=self.app())

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": self.model or "m", "object": "model"}]})

    async def _chat(self, request: Request) -> Response:
        return await self._respond("chat", request)

    async def _completions(self, request: Request) -> Response:
        return await self._respond("completions", request)

    async def _respond(self, endpoint: Endpoint, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        self.hosts.append(request.url.hostname or "")
        self.arrived.append(time.monotonic())
        model = str(body.get("model", "fake"))
        if self.model is not None and model != self.model:
            error = {"message": f"The model `{model}` does not exist.", "type": "NotFoundError", "code": 404}
            return JSONResponse({"error": error}, status_code=404)
        scripted = self.answer(endpoint, body)
        reply = Reply(text=scripted) if isinstance(scripted, str) else scripted
        fault = reply.fault or self.fault
        if fault is not None and fault not in STREAM_FAULTS:
            return await self._fault(fault, request)
        if self.first_ms and not await self._pause(request, self.first_ms / 1000):
            return Response(status_code=499)  # the client left: nobody reads this
        if reply.raw is not None:
            return Response(reply.raw, reply.status, media_type=reply.content_type)
        pieces = list(reply.pieces or self.pieces(reply.text))
        if self.tokens:
            pieces = [pieces[i % len(pieces)] for i in range(self.tokens)]
        if not body.get("stream"):  # generated at the same pace as a stream, answered once complete
            if self.token_ms and not await self._pause(request, self.token_ms * (len(pieces) + 1) / 1000):
                return Response(status_code=499)
            return JSONResponse(reply.body or self._body(endpoint, model, reply, pieces), reply.status)
        events = list(reply.events or self._events(endpoint, model, reply, pieces))
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):  # as OpenAI and vLLM send it: no choices
            count = len("".join(pieces).split())  # as `completion_body` counts
            tail = {"usage": {"prompt_tokens": 1, "completion_tokens": count, "total_tokens": count + 1}}
            events.append({**{k: v for k, v in events[0].items() if k != "choices"}, "choices": [], **tail})
        stream = self._stream(events, fault)
        return StreamingResponse(stream, reply.status, media_type="text/event-stream")

    @staticmethod
    def _body(endpoint: Endpoint, model: str, reply: Reply, pieces: list[str]) -> dict[str, Any]:
        message = dict(reply.message)
        if reply.reasoning is not None:
            message[reply.reasoning_field] = reply.reasoning
        if reply.tool is not None:
            message["tool_calls"] = [tool_call(*reply.tool)]
        body = completion_body(endpoint, model, "".join(pieces), **message)
        if reply.tool is not None:
            body["choices"][0]["message"]["content"] = reply.text or None
            body["choices"][0]["finish_reason"] = "tool_calls"
        return body

    def _events(self, endpoint: Endpoint, model: str, reply: Reply, pieces: list[str]) -> list[dict[str, Any]]:
        if endpoint == "completions" or (reply.reasoning is None and reply.tool is None):
            return chunks(endpoint, model, pieces)
        events = chunks("chat", model, [p for p in pieces if p])
        said: list[dict[str, Any]] = [{reply.reasoning_field: p} for p in self.pieces(reply.reasoning or "") if p]
        thinking = [chunk(model, **delta) for delta in said]
        calls = tool_call_chunks(model, *reply.tool) if reply.tool is not None else []
        if calls:
            events[-1]["choices"][0]["finish_reason"] = "tool_calls"
        return [events[0], *thinking, *events[1:-1], *calls, events[-1]]

    async def _pause(self, request: Request, seconds: float) -> bool:
        """Wait `seconds`; False (at once) when the client hangs up meanwhile."""
        end = time.monotonic() + seconds
        try:
            while (left := end - time.monotonic()) > 0:
                await asyncio.sleep(min(left, 0.05))
                if await request.is_disconnected():
                    self.released.set()
                    return False
        except asyncio.CancelledError:  # in process: the client's call was cancelled
            self.cancelled += 1
            raise
        return True

    async def _fault(self, fault: Fault, request: Request) -> Response:
        if fault == "status":
            return JSONResponse({"error": {"message": "upstream exploded", "type": "internal_error"}}, 500)
        if fault == "html":
            return Response("<html><body>503 Service Unavailable</body></html>", 503, media_type="text/html")
        if fault == "malformed":
            return Response("{not json", 200, media_type="application/json")
        if fault == "hang":
            await self._pause(request, 3600)
            return Response(status_code=499)
        # "garbage": not HTTP at all, written on the connection itself (uvicorn's cycle holds it)
        transport: Any = getattr(getattr(request.receive, "__self__", None), "transport", None)
        if not callable(getattr(transport, "write", None)):  # asyncio's or uvloop's transport
            raise RuntimeError("the 'garbage' fault needs a socket served by uvicorn")
        transport.write(b"NOT HTTP AT ALL\r\n\r\n")
        transport.close()
        await asyncio.sleep(0.05)  # the server notices the connection is gone and sends nothing more
        return Response(status_code=499)

    async def _stream(self, events: list[dict[str, Any]], fault: Fault | None) -> AsyncIterator[bytes]:
        state: dict[str, Any] = {"sent": 0, "completed": False, "cancelled": False}
        self.streams.append(state)
        started = time.monotonic()
        try:
            for i, event in enumerate(events):
                if self.token_ms and i and event["choices"]:  # the usage chunk follows the last at once
                    # a token every token_ms from the start, as a server's clock gives them: the oversleeps of
                    # one sleep a token would add up to milliseconds a stream that a non-streamed answer lacks
                    await asyncio.sleep(max(0.0, started + i * self.token_ms / 1000 - time.monotonic()))
                yield sse([event], done=False)
                state["sent"] = i + 1
                if i == 1 and fault == "cut":
                    return
                if i == 1 and fault == "abort":
                    yield sse([event], done=False)[:20]
                    raise ConnectionAbortedError("the fake upstream dropped the connection mid-stream")
                if i == 1 and fault == "stall":
                    await asyncio.sleep(3600)
            yield b"data: [DONE]\n\n"
            state["completed"], state["ended_at"] = True, time.monotonic()
        except asyncio.CancelledError:
            state["cancelled"] = True
            self.released.set()
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
