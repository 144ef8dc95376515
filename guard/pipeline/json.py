"""The non-streaming path: one upstream call, every choice through the output check."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from guard.checks.evidence import Action
from guard.context import RequestContext
from guard.errors import UpstreamError
from guard.openai.shapes import choice_fields, replace_with_refusal, strip_unchecked
from guard.pipeline.checker import Checker, Forward
from guard.pipeline.timing import Meter
from guard.upstream import PATHS


@dataclass
class JsonResult:
    body: dict[str, Any]
    action: Action
    overhead_ms: float
    route: str = "none"  # which upstream answered: "a", "b", or "none" when refused


async def complete(ctx: RequestContext, forward: Forward, checker: Checker, meter: Meter) -> JsonResult:
    """Send the request (or its rewrite) upstream and check every choice of the answer."""
    action, route = forward.action, forward.route
    early = forward.early
    upstream_started = early.started if early is not None else time.perf_counter()
    with meter.faults(route):
        if early is not None:
            response = await early.task
        else:
            response = await forward.upstream.post_json(PATHS[ctx.endpoint], dict(forward.body))
        upstream_ms = meter.upstream_ms(upstream_started)
        check = checker.output(ctx, forward.watch)
        touched = bool(forward.watch)
        for choice in response.get("choices") or []:
            if not isinstance(choice, dict):
                raise UpstreamError("upstream returned a malformed choice")
            out = await check(choice_fields(ctx.endpoint, choice, delta=False))
            if out.blocked:
                replace_with_refusal(ctx.endpoint, choice, checker.policy_of(out, ctx).refusal_text)
                action = Action.filter
            if out.blocked or out.monitored or forward.watch:
                touched = True
                strip_unchecked(choice)
        if touched:  # the model's distribution over the prompt says what it knows: not for a touched request
            response.pop("prompt_logprobs", None)
    checker.metrics.requests.labels(ctx.endpoint, action.value, route).inc()
    return JsonResult(response, action, meter.overhead_ms(ctx.started, upstream_ms), route)
