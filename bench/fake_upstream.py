"""A fast fake OpenAI-compatible upstream for benchmarks: no model, JSON or SSE.

.venv/bin/python -m uvicorn bench.fake_upstream:app --port 8101 --log-level warning

Every answer is different (a request counter and a varying sentence), so no cache in front of it can pass
for a speed-up. `FAKE_TOKEN_MS` paces streamed tokens (default 0: as fast as possible); `FAKE_TOKENS` sets the
length of a streamed answer in tokens (default: the answer's words).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

TOKEN_MS = float(os.environ.get("FAKE_TOKEN_MS", "0"))
TOKENS = int(os.environ.get("FAKE_TOKENS", "0"))
SENTENCES = [
    "That is a good question.",
    "The answer depends on the context, and on what you already know.",
    "Most sources agree on the main points, though the details vary.",
    "It is worth checking a recent reference for the exact figures.",
    "In short, there are several reasonable ways to look at it.",
    "Many people find it easier to start with a simple example.",
]
_counter = itertools.count()


def answer() -> str:
    n = next(_counter)
    picks = [SENTENCES[(n + k) % len(SENTENCES)] for k in range(3)]
    return f"{picks[0]} Request {n} reached the model. {picks[1]} {picks[2]}"


async def _chunks(model: str, text: str) -> AsyncIterator[bytes]:
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model}
    words = text.split(" ")
    if TOKENS:
        words = [words[i % len(words)] for i in range(TOKENS)]
    for i, w in enumerate(words):
        if TOKEN_MS:
            await asyncio.sleep(TOKEN_MS / 1000)
        delta = {"content": (" " if i else "") + w}
        chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
    yield b"data: " + json.dumps({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}).encode()
    yield b"\n\ndata: [DONE]\n\n"


async def chat(request: Request) -> Response:
    body = await request.json()
    model = str(body.get("model", "fake"))
    text = answer()
    if body.get("stream"):
        return StreamingResponse(_chunks(model, text), media_type="text/event-stream")
    message = {"role": "assistant", "content": text}
    return JSONResponse(
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1,
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
        }
    )


app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
