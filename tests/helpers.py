"""Test helpers of this suite's own: the fact most tests forget, a chat body, an add through the admin API, and
the kit's fake upstream scripted to answer every request with one text (see `guard.testing` for the rest)."""

from __future__ import annotations

from typing import Any

import httpx

from guard.testing import ADMIN, FakeUpstream, fixed

FACT = "Hsiao Yun-Hwa won the Golden Compass award for her book Leading with Empathy in 2019."


def upstream_echo(content: str = "Paris is the capital of France.") -> FakeUpstream:
    """The fake upstream answering every request (chat or completions, JSON or a stream) with `content`."""
    return FakeUpstream(fixed(content))


def chat(content: str | list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": content}] if isinstance(content, str) else content
    return {"model": "m", "messages": messages, **extra}


async def add(client: httpx.AsyncClient, **body: Any) -> str:
    r = await client.post(
        "/admin/forget", json={"subject": "Hsiao Yun-Hwa", "documents": [FACT], **body}, headers=ADMIN
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])
