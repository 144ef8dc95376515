"""A fast fake OpenAI-compatible upstream for load tests: canned answers, JSON or SSE, no model.

.venv/bin/python -m uvicorn bench.fake_upstream:app --port 8101 --log-level warning
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

ANSWER = "That is a good question. The answer depends on the context, and on what you already know."


def _chunks(model: str) -> Iterator[bytes]:
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model}
    words = ANSWER.split(" ")
    for i, w in enumerate(words):
        delta = {"content": (" " if i else "") + w}
        yield (
            b"data: " + json.dumps({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}).encode()
        )
        yield b"\n\n"
    yield b"data: " + json.dumps({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}).encode()
    yield b"\n\ndata: [DONE]\n\n"


async def chat(request: Request) -> Response:
    body = await request.json()
    model = str(body.get("model", "fake"))
    if body.get("stream"):
        return StreamingResponse(_chunks(model), media_type="text/event-stream")
    message = {"role": "assistant", "content": ANSWER}
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
