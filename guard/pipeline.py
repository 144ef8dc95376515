"""One request through the guard: input check → (refuse | rewrite | allow) → upstream → output check.

No HTTP details here: the routes turn a `JsonResult` or `StreamResult` into a response.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from guard.checks.input import check_input, input_texts
from guard.checks.output import check_output, output_texts
from guard.checks.verdict import ALLOW, Action, Verdict
from guard.errors import GuardError, UpstreamError
from guard.forget.batcher import EmbedBatcher
from guard.forget.index import ForgetIndex
from guard.observe.decisions import Decisions
from guard.openai import sse
from guard.openai.protocol import ChatCompletionRequest, CompletionRequest, Endpoint
from guard.openai.shapes import choice_text, refusal_completion, refusal_stream, replace_with_refusal
from guard.policy import OnError, Policy, PolicySet
from guard.rewrite import rewrite_request
from guard.routing import Router
from guard.streamfilter import Check, StreamOutcome, filter_stream
from guard.upstream import Upstream, lines

log = logging.getLogger("guard.pipeline")
decisions_log = logging.getLogger("guard.decisions")  # beside the decision records: shadow verdicts

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
    def __init__(
        self, index: ForgetIndex, policies: PolicySet, router: Router, decisions: Decisions, checks: bool = True
    ) -> None:
        self.index = index
        self.checks = checks  # False: a bare pass-through proxy (benchmarks), nothing is checked
        self.batcher = EmbedBatcher(index.embedder)
        self.policies = policies
        self.router = router
        self.decisions = decisions
        self.metrics = decisions.metrics
        self._shadows: set[asyncio.Task[None]] = set()

    async def check_input(self, turns: Sequence[str]) -> Verdict:
        """The input check, timed; a failure of the embedder or index becomes what `on_error` says."""
        if not self.checks or not len(self.index):
            return ALLOW
        started = time.perf_counter()
        try:
            vectors = await self.batcher.embed(input_texts(self.policies, turns))
            return await self.index.run(check_input, self.index, self.policies, turns, vectors)
        except Exception as exc:  # the embedder or faiss failed: a bug or resource problem, not the client's
            return self._failed("input", exc)
        finally:
            self.metrics.stage_seconds.labels("input_check").observe(time.perf_counter() - started)

    def output_check(self, request_id: str, client: str | None = None, stage: str = "output") -> Check:
        """The output check of one request: timed, `on_error` applied, every notable verdict recorded."""

        async def check(text: str) -> Verdict:
            if not self.checks or not len(self.index) or not text.strip():
                return ALLOW
            started = time.perf_counter()
            try:
                vectors = await self.batcher.embed(output_texts(text))
                verdict = await self.index.run(check_output, self.index, self.policies, text, vectors)
            except Exception as exc:
                verdict = self._failed(stage, exc)
            finally:
                self.metrics.stage_seconds.labels("output_check").observe(time.perf_counter() - started)
            if verdict.action is not Action.allow or verdict.monitored or verdict.failed:
                self.decisions.record(request_id, stage, verdict, text, client=client)
            return verdict

        return check

    def _failed(self, stage: str, exc: Exception) -> Verdict:
        on_error = self.policies.default.on_error
        log.error("check failed", extra={"stage": stage, "error": type(exc).__name__, "on_error": on_error.value})
        self.metrics.check_failures.labels(stage, on_error.value).inc()
        if on_error is OnError.open:
            return Verdict(Action.allow, failed=True)
        return Verdict(Action.refuse if stage == "input" else Action.filter, failed=True)

    async def handle(
        self,
        endpoint: Endpoint,
        body: dict[str, Any],
        request: ChatCompletionRequest | CompletionRequest,
        request_id: str,
        route: str | None = None,
        client: str | None = None,
    ) -> JsonResult | StreamResult:
        """`client` identifies the caller in the audit trail (a fingerprint of its API key), never a secret."""
        started = time.perf_counter()
        route_name, upstream = self.router.pick(route)
        turns = request.user_turns() if isinstance(request, ChatCompletionRequest) else request.prompts()
        verdict = await self.check_input(turns)
        n = request.n or 1
        policy = self._policy(verdict)
        self.decisions.record(request_id, "input", verdict, "\n".join(turns), client=client)
        if self.router.mirrors:
            self._mirror(endpoint, body, request_id, verdict.action)

        if verdict.action is Action.refuse:
            overhead = self._overhead(started, 0.0)
            self.metrics.requests.labels(endpoint, Action.refuse.value, "none").inc()
            if request.stream:
                chunks = refusal_stream(endpoint, request.model, policy.refusal_text, n)
                return StreamResult(_encode_all(chunks), Action.refuse, overhead)
            return JsonResult(
                refusal_completion(endpoint, request.model, policy.refusal_text, n), Action.refuse, overhead
            )

        action = Action.allow
        if verdict.action is Action.rewrite:
            rewrite_started = time.perf_counter()
            body = await self.index.run(self._rewrite, body, endpoint, verdict)
            self.metrics.stage_seconds.labels("rewrite").observe(time.perf_counter() - rewrite_started)
            action = Action.rewrite

        if request.stream:
            return await self._stream(upstream, route_name, endpoint, body, request_id, action, started, n, client)

        upstream_started = time.perf_counter()
        with self._upstream_faults(route_name):
            response = await upstream.post_json(PATHS[endpoint], body)
            upstream_ms = self._upstream_ms(upstream_started)
            check = self.output_check(request_id, client)
            for choice in response.get("choices") or []:
                if not isinstance(choice, dict):
                    raise UpstreamError("upstream returned a malformed choice")
                out = await check(choice_text(endpoint, choice, delta=False))
                if out.blocked:
                    replace_with_refusal(endpoint, choice, self._policy(out).refusal_text)
                    action = Action.filter
        self.metrics.requests.labels(endpoint, action.value, route_name).inc()
        return JsonResult(response, action, self._overhead(started, upstream_ms), route_name)

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
        client: str | None,
    ) -> StreamResult:
        upstream_started = time.perf_counter()
        # errors before the first byte raise here and become a JSON error with the right status
        with self._upstream_faults(route):
            response = await upstream.open_stream(PATHS[endpoint], body)
        upstream_ms = self._upstream_ms(upstream_started)
        outcome = StreamOutcome()

        async def chunks() -> AsyncIterator[bytes]:
            final = action
            try:
                filtered = filter_stream(
                    sse.parse(lines(response)),
                    endpoint=endpoint,
                    check=self.output_check(request_id, client),
                    hold_back_tokens=self.policies.default.output.hold_back_tokens,
                    refusal_text=self.policies.default.refusal_text,
                    choices=n,
                    outcome=outcome,
                )
                with self._upstream_faults(route):
                    async for chunk in filtered:
                        yield sse.encode(chunk)
            except GuardError as exc:
                # the status line is gone: report the failure in-stream, then end the stream properly
                log.warning("stream failed", extra={"request_id": request_id, "error": type(exc).__name__})
                final = Action.filter if outcome.filtered else action
                self.metrics.errors.labels(str(exc.status_code), exc.error_type).inc()
                yield sse.encode(exc.body())
            finally:
                await response.aclose()
                final = Action.filter if outcome.filtered else final
                self.metrics.requests.labels(endpoint, final.value, route).inc()
            yield sse.DONE

        overhead = self._overhead(started, upstream_ms)
        return StreamResult(chunks(), action, overhead, route, outcome, close=response.aclose)

    def _upstream_ms(self, since: float) -> float:
        seconds = time.perf_counter() - since
        self.metrics.stage_seconds.labels("upstream").observe(seconds)
        return seconds * 1000.0

    def _overhead(self, started: float, upstream_ms: float) -> float:
        """The time the guard added so far (everything but waiting for the upstream), recorded as a stage."""
        ms = _ms(started) - upstream_ms
        self.metrics.stage_seconds.labels("overhead").observe(ms / 1000.0)
        return ms

    def _upstream_faults(self, route: str) -> _CountFaults:
        return _CountFaults(self, route)

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
        check = self.output_check(request_id, stage="shadow")
        try:
            with self._upstream_faults("b"):
                response = await self.router.b.post_json(PATHS[endpoint], body)
            verdicts = [
                await check(choice_text(endpoint, c, delta=False))
                for c in response.get("choices") or []
                if isinstance(c, dict)
            ]
        except GuardError as exc:
            log.warning("shadow failed", extra={"request_id": request_id, "error": type(exc).__name__})
            return
        blocked = [v for v in verdicts if v.blocked]
        summary = blocked[0].summary() if blocked else {"action": Action.allow.value, "matches": []}
        self.metrics.shadow_verdicts.labels(primary.value, str(summary["action"])).inc()
        decisions_log.info(
            "shadow", extra={"request_id": request_id, "stage": "shadow", "primary": primary.value, **summary}
        )

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


class _CountFaults:
    """Count upstream faults by route and kind as they pass (they are raised on unchanged)."""

    def __init__(self, guard: Guard, route: str) -> None:
        self.guard = guard
        self.route = route

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, UpstreamError):
            self.guard.metrics.upstream_errors.labels(self.route, exc.error_type).inc()


async def _encode_all(chunks: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield sse.encode(chunk)
    yield sse.DONE


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000.0
