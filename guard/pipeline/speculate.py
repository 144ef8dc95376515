"""Speculative dispatch: the request goes upstream at once, while its input check runs.

With an upstream whose first token takes ~100 ms, the input check (milliseconds to tens of ms) then costs nothing
the client sees. Nothing of the answer is read before the verdict: a refusal, a rewrite, or a watch that changes
the request (vLLM `bad_words`) cancels the early call — the upstream drops a cancelled request — and a rewrite or a
watched request is sent again, changed. The trade-off, documented in the README: the upstream sees every prompt,
also those then refused. Policy field `speculative` (off by default), read from the request's policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from typing import Any

import httpx


class Early:
    """An upstream call sent before the input verdict: its result (a JSON body or an open stream) is awaited by
    the JSON or stream path when the request is allowed, or `discard`ed."""

    def __init__(self, call: Awaitable[Any]) -> None:
        self.started = time.perf_counter()
        self.task: asyncio.Future[Any] = asyncio.ensure_future(call)

    async def discard(self) -> None:
        """Cancel the call (or close the stream it opened); its outcome, an error included, is dropped."""
        self.task.cancel()
        with contextlib.suppress(BaseException):
            result = await self.task
            if isinstance(result, httpx.Response):
                await result.aclose()
