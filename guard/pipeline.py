"""One request through the guard: input check → (refuse | rewrite | allow) → upstream → output check.

No HTTP details here: the routes turn a `JsonResult` or `StreamResult` into a response.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from guard.checks.input import check_input
from guard.checks.output import check_output
from guard.checks.verdict import Action, Verdict
from guard.errors import GuardError, UpstreamError
from guard.forget.index import ForgetIndex
from guard.openai import sse
from guard.openai.protocol import ChatCompletionRequest, CompletionRequest, Endpoint
from guard.openai.shapes import choice_text, refusal_completion, refusal_stream, replace_with_refusal
from guard.policy import Policy, PolicySet
from guard.rewrite import rewrite_request
from guard.routing import Router
from guard.streamfilter import StreamOutcome, filter_stream
from guard.upstream import Upstream, lines

log = logging.getLogger("guard.decisions")

PATHS: dict[Endpoint, str] = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}


@dataclass
class JsonResult:
    body: dict[str, Any]
    action: Action
    overhead_ms: float
    route: str = "none"  # which upstream answered: "a", "b", or "none" when refused


@dataclass
class StreamResult:
    chunks: AsyncIterator[bytes]
    action: Action
    overhead_ms: float
    route: str = "none"
    outcome: StreamOutcome = field(default_factory=StreamOutcome)
    # closes the upstream response even if the client went away before the stream started (idempotent)
    close: Callable[[], Awaitable[None]] | None = None


MAX_SHADOW_IN_FLIGHT = 64


class Guard:
    def __init__(self, index: ForgetIndex, policies: PolicySet, router: Router) -> None:
        self.index = index
        self.policies = policies
        self.router = router
        self._shadows: set[asyncio.Task[None]] = set()

    async def check_output(self, text: str) -> Verdict:
        return await self.index.run(check_output, self.index, self.policies, text)

    async def handle(
        self,
        endpoint: Endpoint,
        body: dict[str, Any],
        request: ChatCompletionRequest | CompletionRequest,
        request_id: str,
        route: str | None = None,
    ) -> JsonResult | StreamResult:
        started = time.perf_counter()
        route_name, upstream = self.router.pick(route)
        turns = request.user_turns() if isinstance(request, ChatCompletionRequest) else request.prompts()
        verdict = await self.index.run(check_input, self.index, self.policies, turns)
        n = request.n or 1
        policy = self._policy(verdict)
        self._log(request_id, "input", verdict)
        if self.router.mirrors:
            self._mirror(endpoint, body, request_id, verdict.action)

        if verdict.action is Action.refuse:
            overhead = _ms(started)
            if request.stream:
                chunks = refusal_stream(endpoint, request.model, policy.refusal_text, n)
                return StreamResult(_encode_all(chunks), Action.refuse, overhead)
            return JsonResult(
                refusal_completion(endpoint, request.model, policy.refusal_text, n), Action.refuse, overhead
            )

        action = Action.allow
        if verdict.action is Action.rewrite:
            body = await self.index.run(self._rewrite, body, endpoint, verdict)
            action = Action.rewrite

        if request.stream:
            return await self._stream(upstream, route_name, endpoint, body, request_id, action, started, n)

        upstream_started = time.perf_counter()
        response = await upstream.post_json(PATHS[endpoint], body)
        upstream_ms = _ms(upstream_started)
        for choice in response.get("choices") or []:
            if not isinstance(choice, dict):
                raise UpstreamError("upstream returned a malformed choice")
            out = await self.check_output(choice_text(endpoint, choice, delta=False))
            if out.blocked:
                self._log(request_id, "output", out)
                replace_with_refusal(endpoint, choice, self._policy(out).refusal_text)
                action = Action.filter
        return JsonResult(response, action, _ms(started) - upstream_ms, route_name)

    async def _stream(
        self,
        upstream: Upstream,
        route: str,
        endpoint: Endpoint,
        body: dict[str, Any],
        request_id: str,
        action: Action,
        started: float,
        n: int,
    ) -> StreamResult:
        upstream_started = time.perf_counter()
        # errors before the first byte raise here and become a JSON error with the right status
        response = await upstream.open_stream(PATHS[endpoint], body)
        upstream_ms = _ms(upstream_started)
        outcome = StreamOutcome()

        async def chunks() -> AsyncIterator[bytes]:
            try:
                filtered = filter_stream(
                    sse.parse(lines(response)),
                    endpoint=endpoint,
                    check=self.check_output,
                    hold_back_tokens=self.policies.default.output.hold_back_tokens,
                    refusal_text=self.policies.default.refusal_text,
                    choices=n,
                    outcome=outcome,
                )
                async for chunk in filtered:
                    yield sse.encode(chunk)
            except GuardError as exc:
                # the status line is gone: report the failure in-stream, then end the stream properly
                log.warning("stream failed", extra={"request_id": request_id, "error": type(exc).__name__})
                yield sse.encode(exc.body())
            finally:
                await response.aclose()
                for v in outcome.verdicts:
                    self._log(request_id, "output", v)
            yield sse.DONE

        return StreamResult(chunks(), action, _ms(started) - upstream_ms, route, outcome, close=response.aclose)

    def _mirror(self, endpoint: Endpoint, body: dict[str, Any], request_id: str, primary: Action) -> None:
        """Send the original request to B in the background; its answer is checked and the verdict logged."""
        if len(self._shadows) >= MAX_SHADOW_IN_FLIGHT:
            log.warning("shadow dropped", extra={"request_id": request_id, "reason": "too many in flight"})
            return
        plain = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        task = asyncio.create_task(self._shadow(endpoint, plain, request_id, primary))
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    async def _shadow(self, endpoint: Endpoint, body: dict[str, Any], request_id: str, primary: Action) -> None:
        assert self.router.b is not None
        try:
            response = await self.router.b.post_json(PATHS[endpoint], body)
            verdicts = [
                await self.check_output(choice_text(endpoint, c, delta=False))
                for c in response.get("choices") or []
                if isinstance(c, dict)
            ]
        except GuardError as exc:
            log.warning("shadow failed", extra={"request_id": request_id, "error": type(exc).__name__})
            return
        blocked = [v for v in verdicts if v.blocked]
        summary = blocked[0].summary() if blocked else {"action": Action.allow.value, "matches": []}
        log.info("shadow", extra={"request_id": request_id, "stage": "shadow", "primary": primary.value, **summary})

    async def drain_shadows(self) -> None:
        """Wait for the shadow requests in flight (tests; graceful shutdown)."""
        while self._shadows:
            await asyncio.gather(*list(self._shadows), return_exceptions=True)

    def _policy(self, verdict: Verdict) -> Policy:
        """The policy of the first matched entry (the default when nothing matched)."""
        for entry_id in verdict.entry_ids:
            entry = self.index.get(entry_id)
            if entry is not None:
                return self.policies.for_entry(entry)
        return self.policies.default

    def _rewrite(self, body: dict[str, Any], endpoint: Endpoint, verdict: Verdict) -> dict[str, Any]:
        entries = [e for e in (self.index.get(i) for i in verdict.entry_ids) if e is not None]
        subjects = [e.subject for e in entries]
        names = [n for e in entries for n in (e.subject, *e.aliases)]
        policy = self.policies.for_entry(entries[0]) if entries else self.policies.default
        return rewrite_request(body, endpoint, subjects, names, policy)

    @staticmethod
    def _log(request_id: str, stage: str, verdict: Verdict) -> None:
        log.info("decision", extra={"request_id": request_id, "stage": stage, **verdict.summary()})


async def _encode_all(chunks: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield sse.encode(chunk)
    yield sse.DONE


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000.0
