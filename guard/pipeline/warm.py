"""Embedding an answer's sentences while the rest of it is generated.

The output check of a sentence (streamed) or of a whole answer (not streamed) embeds each of its sentences with
MiniLM, a few ms each on a CPU. The upstream meanwhile takes a token time or more before the next piece arrives.
A `Warmer` embeds what is complete as soon as it is (into the embedder's cache, which keys by text), so that the
check finds it there and only decides. It does no model work the check would not do: the same pieces, once.
One call runs at a time; what arrives meanwhile replaces what waits. A failure is left to the check itself,
which applies `on_error`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from guard.openai.shapes import Fields


class Warmer:
    """`growing`: each call's fields are the whole answer so far, which only grows; only what was not warmed
    before is (the text after the last warmed end), so that a long answer costs linear, not quadratic, work.
    `running`: where its task is held until done (the loop keeps only weak references to tasks); the owner's,
    so that a warm-up outlives the request that started it (its model call fills the cache all the same)."""

    def __init__(
        self,
        warm: Callable[[Fields], Awaitable[None]],
        growing: bool = False,
        running: set[asyncio.Task[None]] | None = None,
    ) -> None:
        self._warm = warm
        self._running = running if running is not None else set()
        self._task: asyncio.Task[None] | None = None
        self._next: Fields | None = None
        self._growing = growing
        self._warmed: dict[str, int] = {}  # growing: per field, how much of its text was warmed
        self.calls = 0  # warm-ups run (tests)

    def __call__(self, fields: Fields) -> None:
        """Embed these fields' pieces soon (after the call under way, if any)."""
        if self._task is not None and not self._task.done():
            self._next = fields
            return
        self._task = asyncio.get_running_loop().create_task(self._run(fields))
        self._running.add(self._task)
        self._task.add_done_callback(self._running.discard)

    async def _run(self, fields: Fields | None) -> None:
        while fields is not None:
            if self._growing:
                fields = self._new(fields)
            self.calls += 1
            with contextlib.suppress(Exception):
                await self._warm(fields)
            fields, self._next = self._next, None

    def _new(self, fields: Fields) -> Fields:
        out: Fields = []
        for field, text in fields:
            start = self._warmed.get(field, 0)
            if len(text) > start:
                out.append((field, text[start:]))
                self._warmed[field] = len(text)
        return out

    def cancel(self) -> None:
        """Nothing more to warm: the check has run, or the request ended. A model call under way still fills the
        cache (it runs on the embedder's thread); only the waiting is dropped."""
        self._next = None
        if self._task is not None:
            self._task.cancel()
