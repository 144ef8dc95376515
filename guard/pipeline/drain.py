"""In-flight streams at shutdown: they get a grace period to finish; then each one still open is ended with an
in-stream error event and `data: [DONE]`, so a client sees why it stopped instead of a cut connection.

`guard serve` starts the drain on SIGTERM/SIGINT (while uvicorn stops accepting). A stream waiting on the
upstream is cancelled out of that wait; one waiting on a slow client ends at its next chunk. The cost on the
way is two attribute writes per chunk.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from guard.errors import error_body

log = logging.getLogger("guard.shutdown")

SHUTDOWN = error_body(
    "forget-guard is shutting down: this stream was ended before it finished; send the request again",
    "server_error",
    code="shutting_down",
)


@dataclass(eq=False)
class Flow:
    """One open stream: the task that pumps it, and whether it is waiting on the upstream right now."""

    task: asyncio.Task[object] | None
    reading: bool = False
    cut: bool = False

    def end(self) -> None:
        self.cut = True
        if self.reading and self.task is not None:
            self.task.cancel()  # out of the upstream wait; the stream catches it (see `ended`)

    def ended(self) -> bool:
        """True when a CancelledError the stream caught was this cut (and takes the cancellation back)."""
        if not self.cut:
            return False
        if self.task is not None and self.task.cancelling():
            self.task.uncancel()
        return True


@dataclass
class Drain:
    flows: set[Flow] = field(default_factory=set)
    draining: bool = False
    cut: bool = False
    _loop: asyncio.AbstractEventLoop | None = None

    def bind(self) -> None:
        """Remember the event loop (at start-up), so a signal handler can start the drain on it."""
        self._loop = asyncio.get_running_loop()

    def open(self) -> Flow:
        flow = Flow(asyncio.current_task())
        if self.cut:
            flow.cut = True
        self.flows.add(flow)
        return flow

    def close(self, flow: Flow) -> None:
        self.flows.discard(flow)

    def start_threadsafe(self, grace_s: float) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.start, grace_s)

    def start(self, grace_s: float) -> None:
        if self.draining:
            return
        self.draining = True
        log.info("draining", extra={"streams": len(self.flows), "grace_s": grace_s})
        asyncio.get_running_loop().call_later(grace_s, self.end_all)

    def end_all(self) -> None:
        self.cut = True
        if self.flows:
            log.warning("ending open streams at shutdown", extra={"streams": len(self.flows)})
        for flow in list(self.flows):
            flow.end()
