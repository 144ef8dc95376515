"""The non-streaming path: one upstream call, every choice through the output check.

Under policy `stream_upstream` the call is a stream, assembled into the non-streamed answer
(`guard.openai.assemble`), so the output check's embedding runs while the answer is generated."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from guard.checks.evidence import Action
from guard.context import RequestContext
from guard.errors import UpstreamError
from guard.openai import sse
from guard.openai.assemble import Assembler, streaming
from guard.openai.shapes import choice_fields, replace_with_refusal, strip_unchecked
from guard.pipeline.checker import Checker, Forward
from guard.pipeline.holdback import ends_sentence
from guard.pipeline.timing import Meter
from guard.pipeline.warm import Warmer
from guard.upstream import PATHS, lines


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
        if forward.assembled:
            response = await _assembled(ctx, forward, checker)
        elif early is not None:
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
                replace_with_refusal(ctx.endpoint, choice, out.refusal_text)
                action = Action.filter
            if out.blocked or out.monitored or forward.watch:
                touched = True
                strip_unchecked(choice)
        if touched:  # the model's distribution over the prompt says what it knows: not for a touched request
            response.pop("prompt_logprobs", None)
    return JsonResult(response, action, meter.overhead_ms(ctx.started, upstream_ms), route)


async def _assembled(ctx: RequestContext, forward: Forward, checker: Checker) -> dict[str, Any]:
    """The answer streamed from the upstream and assembled (`guard.openai.assemble`); each time a choice's text
    ends a sentence, what the output check will read of it is embedded while the rest is generated."""
    if forward.early is not None:
        response: httpx.Response = await forward.early.task
    else:
        response = await forward.upstream.open_stream(PATHS[ctx.endpoint], streaming(forward.body))
    assembler, warmers = Assembler(ctx.endpoint), dict[int, Warmer]()
    try:
        async for event in sse.parse(lines(response)):
            for index in {i for i, text in assembler.add(event) if ends_sentence(text)}:
                warm = warmers.get(index) or warmers.setdefault(index, checker.warmer(growing=True))
                warm(choice_fields(ctx.endpoint, assembler.choice(index), delta=False))
    finally:
        for warm in warmers.values():
            warm.cancel()
        await response.aclose()
    return assembler.body()
