"""Server-sent events: parse the upstream's stream into JSON chunks, encode chunks for the client."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from guard.errors import UpstreamError

DONE = b"data: [DONE]\n\n"


def encode(chunk: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(chunk, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


async def parse(lines: AsyncIterator[str]) -> AsyncGenerator[dict[str, Any]]:
    """Yield each `data:` event as a dict; stop at `[DONE]`.

    A malformed event, an in-stream error event or a stream cut before `[DONE]` raises UpstreamError.
    """
    data: list[str] = []
    async for line in lines:
        if line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
            continue
        if line.strip() or not data:
            continue  # comments, `event:`/`id:` fields, keep-alives
        payload = "\n".join(data)
        data = []
        if payload.strip() == "[DONE]":
            return
        try:
            event = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise UpstreamError("upstream sent a malformed stream event") from exc
        if not isinstance(event, dict):
            raise UpstreamError("upstream sent a malformed stream event")
        if "error" in event and "choices" not in event:
            err = event["error"] if isinstance(event["error"], dict) else {}
            raise UpstreamError(f"upstream stream error: {err.get('message', 'unknown')}")
        yield event
    if not data or "".join(data).strip() != "[DONE]":
        raise UpstreamError("upstream stream ended before [DONE]")
