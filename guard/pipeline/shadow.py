"""The shadow path: the original request is also sent to upstream B in the background; B's answer is checked
and the verdict logged and counted beside the primary's (live A/B without exposing B's answers)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from guard.checks.evidence import Action
from guard.context import RequestContext
from guard.errors import GuardError
from guard.openai.shapes import choice_fields
from guard.pipeline.checker import Checker
from guard.pipeline.timing import Meter
from guard.upstream import PATHS, Upstream

log = logging.getLogger("guard.pipeline")
decisions_log = logging.getLogger("guard.decisions")  # beside the decision records

MAX_SHADOW_IN_FLIGHT = 64


class Shadow:
    def __init__(self, upstream: Upstream, checker: Checker, meter: Meter) -> None:
        self.upstream = upstream
        self.checker = checker
        self.meter = meter
        self._tasks: set[asyncio.Task[None]] = set()

    def mirror(self, ctx: RequestContext, body: Mapping[str, Any], primary: Action) -> None:
        """Send the original request to B in the background (non-streaming)."""
        if len(self._tasks) >= MAX_SHADOW_IN_FLIGHT:
            log.warning("shadow dropped", extra={"request_id": ctx.request_id, "reason": "too many in flight"})
            return
        plain = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        task = asyncio.create_task(self._run(ctx, plain, primary))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, ctx: RequestContext, body: dict[str, Any], primary: Action) -> None:
        check = self.checker.output(ctx, stage="shadow")
        try:
            with self.meter.faults("b"):
                response = await self.upstream.post_json(PATHS[ctx.endpoint], body)
            verdicts = [
                await check(choice_fields(ctx.endpoint, c, delta=False))
                for c in response.get("choices") or []
                if isinstance(c, dict)
            ]
        except GuardError as exc:
            log.warning("shadow failed", extra={"request_id": ctx.request_id, "error": type(exc).__name__})
            return
        blocked = [v for v in verdicts if v.blocked]
        summary = blocked[0].summary() if blocked else {"action": Action.allow.value, "matches": []}
        self.checker.metrics.shadow_verdicts.labels(primary.value, str(summary["action"])).inc()
        decisions_log.info(
            "shadow", extra={"request_id": ctx.request_id, "stage": "shadow", "primary": primary.value, **summary}
        )

    async def drain(self) -> None:
        """Wait for the shadow requests in flight (tests; graceful shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
