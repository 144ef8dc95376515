"""The streaming path: upstream SSE → hold-back output filter → SSE to the client.

Errors before the first byte raise (and become a JSON error with the right status); after it, the status line
is gone, so a failure ends the stream with an in-stream error event and `data: [DONE]`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from guard.checks.evidence import Action
from guard.context import RequestContext
from guard.errors import GuardError
from guard.openai import sse
from guard.openai.shapes import refusal_stream
from guard.pipeline.checker import Checker, Forward
from guard.pipeline.drain import SHUTDOWN, Drain
from guard.pipeline.holdback import HoldBack, StreamOutcome, filter_stream
from guard.pipeline.timing import Meter
from guard.pipeline.warm import Warmer
from guard.upstream import PATHS, lines

log = logging.getLogger("guard.pipeline")


@dataclass
class StreamResult:
    chunks: AsyncIterator[bytes]
    action: Action
    overhead_ms: float
    route: str = "none"
    outcome: StreamOutcome = field(default_factory=StreamOutcome)
    # closes the upstream response even if the client went away before the stream started (idempotent)
    close: Callable[[], Awaitable[None]] | None = None


def refused(ctx: RequestContext, refusal_text: str, overhead_ms: float) -> StreamResult:
    """A refused streaming request: the refusal per choice, then [DONE]; the upstream is never called."""
    return StreamResult(
        _encode_all(refusal_stream(ctx.endpoint, ctx.model, refusal_text, ctx.n)), Action.refuse, overhead_ms
    )


async def open_stream(
    ctx: RequestContext, forward: Forward, checker: Checker, meter: Meter, drain: Drain
) -> StreamResult:
    """Open the upstream stream (errors before its first byte raise) and filter it on the way to the client.
    At shutdown, past the grace period, `drain` ends it with an error event (`guard.pipeline.drain`)."""
    early = forward.early
    upstream_started = early.started if early is not None else time.perf_counter()
    with meter.faults(forward.route):
        if early is not None:
            response: httpx.Response = await early.task
        else:
            response = await forward.upstream.open_stream(PATHS[ctx.endpoint], dict(forward.body))
    upstream_ms = meter.upstream_ms(upstream_started)
    flow = _Flow(ctx, forward, checker, meter, drain, response)
    overhead = meter.overhead_ms(ctx.started, upstream_ms)
    return StreamResult(flow.chunks(), forward.action, overhead, forward.route, flow.outcome, response.aclose)


class _Flow:
    """One stream from the upstream to the client, through the hold-back filter when something can be held."""

    def __init__(
        self,
        ctx: RequestContext,
        forward: Forward,
        checker: Checker,
        meter: Meter,
        drain: Drain,
        response: httpx.Response,
    ) -> None:
        self.ctx, self.forward, self.checker, self.meter, self.drain = ctx, forward, checker, meter, drain
        self.response = response
        self.outcome = StreamOutcome()
        # Nothing to forget (the checks off, or no entry when the request came: admin changes count from the
        # next request): the chunks leave as they come, not a sentence at a time, since no check could hold one.
        self.checking = checker.checking()

    def _events(self, warm: Warmer) -> AsyncGenerator[dict[str, Any]]:
        events = sse.parse(lines(self.response))
        if not self.checking:
            return events
        ctx, watch = self.ctx, self.forward.watch
        hold = HoldBack(
            endpoint=ctx.endpoint,
            check=self.checker.output(ctx, watch),
            hold_back_chars=ctx.policies.settings.hold_back_chars,
            choices=ctx.n,
            hold_all=bool(watch.strong),  # under strong watch an answer leaves only once complete
            warm=warm,
        )
        return filter_stream(events, hold, self.outcome)

    async def chunks(self) -> AsyncIterator[bytes]:
        ctx, route, metrics = self.ctx, self.forward.route, self.checker.metrics
        cut = False
        flow = self.drain.open()
        warm = self.checker.warmer()
        try:
            filtered = self._events(warm)
            with self.meter.faults(route):
                while not flow.cut:
                    flow.reading = True  # the drain may cancel this wait (and only this one)
                    try:
                        chunk = await anext(filtered)
                    except StopAsyncIteration:
                        break
                    finally:
                        flow.reading = False
                    yield sse.encode(chunk)
                else:  # the drain ended it between two chunks
                    await filtered.aclose()
                    cut = True
        except asyncio.CancelledError:
            if not flow.ended():
                raise  # the client went away, or the server is cancelling: not ours to answer
            cut = True  # the drain ended it while it waited on the upstream
        except GuardError as exc:
            log.warning("stream failed", extra={"request_id": ctx.request_id, "error": type(exc).__name__})
            metrics.errors.labels(str(exc.status_code), exc.error_type).inc()
            yield sse.encode(exc.body())
        finally:
            warm.cancel()
            self.drain.close(flow)
            await self.response.aclose()
            final = Action.filter if self.outcome.filtered else self.forward.action
            self.meter.count(ctx.endpoint, final, route)
        if cut:
            metrics.errors.labels("503", "server_error").inc()
            yield sse.encode(SHUTDOWN)
        yield sse.DONE


async def _encode_all(chunks: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield sse.encode(chunk)
    yield sse.DONE
