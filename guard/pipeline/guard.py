"""One request through the guard: input check → refuse | rewrite | allow → the JSON or the stream path.

No HTTP here: the routes build the `RequestContext` and turn a `JsonResult` or `StreamResult` into a response.
"""

from __future__ import annotations

import time

from guard.checks.evidence import Action, Verdict, Watch
from guard.context import RequestContext
from guard.forget.index import ForgetIndex
from guard.openai.assemble import streamable, streaming
from guard.openai.shapes import refusal_completion
from guard.pipeline.checker import Checker, Forward
from guard.pipeline.drain import Drain
from guard.pipeline.json import JsonResult, complete
from guard.pipeline.shadow import Shadow
from guard.pipeline.speculate import Early
from guard.pipeline.stream import StreamResult, open_stream, refused
from guard.pipeline.timing import Meter
from guard.rewrite import rewrite_request, with_bad_words
from guard.routing import Router
from guard.upstream import PATHS, Upstream


class Guard:
    """The request path over parts built once in the app's start-up (`guard.app`): the checker is shared."""

    def __init__(self, index: ForgetIndex, checker: Checker, router: Router) -> None:
        self.index = index
        self.router = router
        self.metrics = checker.metrics
        self.checker = checker
        self.meter = Meter(self.metrics)
        self.drain = Drain()  # open streams, ended with an error event at shutdown past the grace period
        self.shadow = Shadow(router.b, self.checker, self.meter) if router.b is not None else None

    async def handle(self, ctx: RequestContext) -> JsonResult | StreamResult:
        route, upstream = self.router.pick(ctx.route)
        assembled = self._assembled(ctx)
        early = self._speculate(ctx, upstream, assembled)
        try:
            result = await self._handle(ctx, route, upstream, early, assembled)
        except BaseException:  # a failed check, or the client left: the early call must not run on
            if early is not None and not early.task.done():
                await early.discard()
            raise
        if isinstance(result, JsonResult):  # a stream is counted when it ends (`guard.pipeline.stream`)
            self.meter.count(ctx.endpoint, result.action, result.route)
        return result

    def _assembled(self, ctx: RequestContext) -> bool:
        """Is this non-streamed request streamed from the upstream and assembled (policy `stream_upstream`)? Not
        when nothing is checked (checks off, or no entry): then there is nothing to embed while it is generated."""
        if not ctx.policy.stream_upstream or ctx.stream or not self.checker.checking():
            return False
        return streamable(ctx.body)

    def _speculate(self, ctx: RequestContext, upstream: Upstream, assembled: bool) -> Early | None:
        """The request sent upstream now, before its input check, when its policy allows (see `speculate`)."""
        if not ctx.policy.speculative or not self.checker.checking():
            return None
        if assembled:
            return Early(upstream.open_stream(PATHS[ctx.endpoint], streaming(ctx.body)))
        send = upstream.open_stream if ctx.stream else upstream.post_json
        return Early(send(PATHS[ctx.endpoint], dict(ctx.body)))

    async def _drop(self, early: Early | None, outcome: str) -> None:
        if early is not None:
            await early.discard()
            self.metrics.speculative.labels(outcome).inc()

    async def _handle(
        self, ctx: RequestContext, route: str, upstream: Upstream, early: Early | None, assembled: bool
    ) -> JsonResult | StreamResult:
        verdict = await self.checker.input(ctx)
        if self.router.mirrors and self.shadow is not None:
            self.shadow.mirror(ctx, ctx.body, verdict.action)

        if verdict.action is Action.refuse:
            await self._drop(early, "refused")
            text = verdict.refusal_text
            overhead = self.meter.overhead_ms(ctx.started, 0.0)
            if ctx.stream:
                self.meter.count(ctx.endpoint, Action.refuse, "none")
                return refused(ctx, text, overhead)
            return JsonResult(refusal_completion(ctx.endpoint, ctx.model, text, ctx.n), Action.refuse, overhead)

        body, action = ctx.body, Action.allow
        if verdict.action is Action.rewrite:
            await self._drop(early, "rewritten")  # a rewrite waits for the verdict
            early = None
            started = time.perf_counter()
            body = await self.index.run(self._rewrite, ctx, verdict)
            self.metrics.stage_seconds.labels("rewrite").observe(time.perf_counter() - started)
            action = Action.rewrite

        watch = self.checker.watch(ctx, verdict)
        if watch:
            self.metrics.watched.inc()
        if watch and await upstream.speaks_vllm():
            await self._drop(early, "watched")  # sent again, with the watched names as bad words
            early = None
            body = with_bad_words(body, await self.index.run(self._bad_words, watch))
            self.metrics.bad_words.inc()
        if early is not None:
            self.metrics.speculative.labels("used").inc()
        forward = Forward(body, action, upstream, route, watch, early, assembled)
        if ctx.stream:
            return await open_stream(ctx, forward, self.checker, self.meter, self.drain)
        return await complete(ctx, forward, self.checker, self.meter)

    def _bad_words(self, watch: Watch) -> list[str]:
        """The watched entries' names, aliases and the parts of their names (reader thread)."""
        words: list[str] = []
        for entry_id in sorted(watch.entries - watch.namesakes):  # a namesake's name is the client's to hear
            entry = self.index.get(entry_id)
            if entry is not None:
                words += [entry.subject, *entry.aliases]
                words += [p.capitalize() for p in sorted(self.index.view.parts_of(entry_id))]
        return words

    async def rewritten(self, ctx: RequestContext, verdict: Verdict) -> dict[str, object]:
        """The request as a rewrite verdict makes it (the scan API hands it back instead of sending it)."""
        return await self.index.run(self._rewrite, ctx, verdict)

    def _rewrite(self, ctx: RequestContext, verdict: Verdict) -> dict[str, object]:
        entries = [e for e in (self.index.get(i) for i in verdict.entry_ids) if e is not None]
        subjects = [e.subject for e in entries]
        names = [n for e in entries for n in (e.subject, *e.aliases)]
        policy = verdict.policy or ctx.policy
        return rewrite_request(dict(ctx.body), ctx.endpoint, subjects, names, policy)

    async def drain_shadows(self) -> None:
        if self.shadow is not None:
            await self.shadow.drain()
