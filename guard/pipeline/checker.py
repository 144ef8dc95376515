"""Running a stage's checks for one request: embed (micro-batched), read the index, decide, record.

A failure of the embedder or the index becomes what the global `on_error` says, and is counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from guard.checks.coverage import Regression, relax_input, relax_output
from guard.checks.decide import floors
from guard.checks.evidence import ALLOW, NO_WATCH, Action, Evidence, Segment, Verdict, Watch
from guard.checks.meaning import MEANING
from guard.checks.stages import CheckSet, Plan, Stale, input_checks, output_checks
from guard.context import RequestContext
from guard.forget.batcher import EmbedBatcher
from guard.forget.embedder import Embedder, Vectors
from guard.forget.index import ForgetIndex
from guard.forget.registry import Coverage
from guard.forget.view import IndexView
from guard.judge import Judge
from guard.observe.decisions import Decisions
from guard.openai.shapes import Fields
from guard.pipeline.cascade import AUDIT_EVERY, Cascade, best_scores
from guard.pipeline.speculate import Early
from guard.pipeline.warm import Warmer
from guard.policy import InputAction, OnError, Policy, PolicySet
from guard.text import tokens
from guard.upstream import Upstream

log = logging.getLogger("guard.pipeline")

OutputCheck = Callable[[Fields], Awaitable[Verdict]]


@dataclass(frozen=True)
class Forward:
    """What goes upstream once the input check let a request through."""

    body: Mapping[str, Any]  # the request as received, or its rewrite
    action: Action  # allow or rewrite, so far
    upstream: Upstream
    route: str  # "a" or "b"
    watch: Watch = NO_WATCH  # entries the output check is strict for
    early: Early | None = None  # the same request, already sent before the verdict (`guard.pipeline.speculate`)
    assembled: bool = False  # not streamed by the client, streamed from the upstream (`guard.openai.assemble`)


class Checker:
    def __init__(
        self,
        index: ForgetIndex,
        policies: PolicySet,
        decisions: Decisions,
        enabled: bool = True,
        judge: Judge | None = None,
        fast: Embedder | None = None,
        audit_every: int = AUDIT_EVERY,
    ) -> None:
        self.index = index
        self.judge = judge  # asked about the uncertain band only (see `guard.judge`)
        self.policies = policies
        self.decisions = decisions
        self.metrics = decisions.metrics
        self.enabled = enabled  # False: a bare pass-through proxy (benchmarks), nothing is checked
        self.batcher = EmbedBatcher(index.embedder)
        # `fast`: the int8 first stage (`guard.pipeline.cascade`), audited live into the metrics
        self.cascade = Cascade(self.batcher, fast, audit_every=audit_every, audited=self._audited)
        meaning = index.memory.meaning
        self.meaning_batcher = EmbedBatcher(meaning.embedder) if meaning is not None else None
        self.inputs: CheckSet = input_checks()
        self.outputs: CheckSet = output_checks()
        self._reverts: set[asyncio.Task[None]] = set()  # coverage reverts being written to the registry

    def close(self) -> None:
        if self._reverts:  # given up at shutdown: the registry still says covered until the next regression
            log.error("coverage reverts not written to the registry at shutdown", extra={"reverts": len(self._reverts)})
        for task in self._reverts:
            task.cancel()
        self.cascade.close()  # its audits first: they embed through the batcher
        self.batcher.close()
        if self.meaning_batcher is not None:
            self.meaning_batcher.close()

    async def input(self, ctx: RequestContext) -> Verdict:
        """The input check of a request, recorded."""
        policies = ctx.policies
        verdict = await self._stage("input", self.inputs, ctx.conversation.segments(), policies)
        verdict = relax_input(verdict, ctx.model, self.index.memory.coverage, policies, self.index.view)
        if self.judge is not None and verdict.action is Action.allow and verdict.watched and not verdict.failed:
            text = "\n".join(ctx.conversation.texts())
            verdict = await self._judged("input", text, verdict.watched, verdict, policies)
        self.decisions.record(ctx.request_id, "input", verdict, "\n".join(ctx.conversation.texts()), client=ctx.client)
        return verdict

    def watch(self, ctx: RequestContext, verdict: Verdict) -> Watch:
        """What the output check of an allowed or rewritten request is strict for: the watched entries, and the
        entries a rewrite was made for."""
        entries, strong = set(verdict.watched), set(verdict.strong)
        if verdict.action is Action.rewrite:
            entries.update(verdict.entry_ids)
            strong.update(verdict.entry_ids)
        if not entries:
            return NO_WATCH
        said = " ".join(t.text for t in ctx.conversation.turns)
        history = ctx.conversation.said_by("assistant")
        return Watch(frozenset(entries), frozenset(strong), frozenset(tokens(said)), history)

    def output(self, ctx: RequestContext, watch: Watch = NO_WATCH, stage: str = "output") -> OutputCheck:
        """The output check of one request (every readable field of a choice); notable verdicts are recorded."""

        async def check(fields: Fields) -> Verdict:
            text = "\n".join(t for _, t in fields)
            if not text.strip():
                return ALLOW
            segments = [Segment(f"output.{field}", t, "assistant") for field, t in _merged(fields)]
            if watch and watch.history:  # earlier answers and this one together: a fact given in halves
                segments.append(Segment("history", f"{watch.history}\n{text}", "history"))
            verdict = await self._stage(stage, self.outputs, segments, ctx.policies, watch)
            if self.judge is not None and watch and verdict.action is Action.allow and not verdict.failed:
                verdict = await self._judged("output", text, watch.entries, verdict, ctx.policies)
            memory = self.index.memory
            verdict, regressions = relax_output(verdict, ctx.model, memory.coverage, ctx.policies, self.index.view)
            if regressions:
                self._regressed(ctx, regressions)
            if verdict.action is not Action.allow or verdict.monitored or verdict.failed:
                self.decisions.record(ctx.request_id, stage, verdict, text, client=ctx.client)
            return verdict

        return check

    def checking(self) -> bool:
        """Can a check find anything now? Not with the checks off (a bare proxy) or an empty index."""
        return self.enabled and bool(len(self.index))

    def warmer(self, growing: bool = False) -> Warmer:
        """Embeds the pieces the output check will read of an answer's complete sentences while the rest is
        generated (`guard.pipeline.warm`)."""
        return Warmer(self._warm, growing)

    async def _warm(self, fields: Fields) -> None:
        if not self.checking():
            return
        segments = [Segment(f"output.{field}", t, "assistant") for field, t in _merged(fields)]
        to_read = self.outputs.plan(segments).to_read()
        texts = self.outputs.embed(to_read)
        if texts:
            await self._embed(self.outputs, to_read, texts, self.index.view, self.policies)
        other = self.outputs.embed_meaning(to_read) if self.meaning_batcher is not None else []
        if other and self.meaning_batcher is not None:
            await self.meaning_batcher.embed(other)

    def _regressed(self, ctx: RequestContext, regressions: list[Regression]) -> None:
        """A covered entry leaked by its model: counted and logged; reverted (here at once, then in the registry
        for every replica) when its policy says so."""
        for r in regressions:
            self.metrics.coverage_regressions.labels(ctx.model, r.entry_id).inc()
            fields = {"request_id": ctx.request_id, "model": ctx.model, "entry": r.entry_id, "reverted": r.revert}
            log.warning("coverage regression", extra=fields)
            if self.decisions.audit is not None:
                self.decisions.audit.write("coverage.regression", fields)
            row = self.index.memory.coverage.revert(ctx.model, r.entry_id) if r.revert else None
            if row is not None:
                task = asyncio.create_task(self._record_revert(row))
                self._reverts.add(task)
                task.add_done_callback(self._reverts.discard)

    async def _record_revert(self, row: Coverage, tries: int = 6) -> None:
        """Write a revert to the registry, for every replica (retried while it is unreachable; enforced here
        meanwhile)."""
        for attempt in range(tries):
            try:
                await self.index.set_coverage(row.model, [row])
                return
            except Exception as exc:
                error = type(exc).__name__
            await asyncio.sleep(2.0**attempt)
        log.error(
            "coverage revert not recorded in the registry; enforced on this replica only",
            extra={"model": row.model, "entry": row.entry_id, "error": error},
        )

    async def _judged(
        self, stage: str, text: str, entries: frozenset[str], verdict: Verdict, policies: PolicySet
    ) -> Verdict:
        """The judge's ruling on an uncertain verdict: a named entry refuses / filters, anything else keeps it."""
        assert self.judge is not None
        found = [(i, e) for i, e in ((i, self.index.get(i)) for i in sorted(entries)) if e is not None]
        if not found:
            return verdict
        ruling = await self.judge.rule(stage, text, [(i, e.subject) for i, e in found])
        self.metrics.judge_seconds.labels(stage).observe(ruling.seconds)
        self.metrics.judge_rulings.labels(stage, ruling.outcome).inc()
        entry = dict(found).get(ruling.entry_id or "")
        if entry is None:
            return verdict
        match = (Evidence(entry.id, "judge", 1.0, "judge"),)
        if stage == "output":
            return Verdict(Action.filter, match, verdict.monitored)
        refuse = policies.for_entry(entry).input.action is InputAction.refuse
        action = Action.refuse if refuse else Action.rewrite
        return Verdict(action, match, verdict.monitored, watched=verdict.watched, strong=verdict.strong)

    async def _stage(
        self,
        stage: str,
        checks: CheckSet,
        segments: Sequence[Segment],
        policies: PolicySet,
        watch: Watch | None = None,
    ) -> Verdict:
        if not self.checking():
            return ALLOW
        started = time.perf_counter()
        try:
            view = self.index.view
            plan = checks.plan(segments, view.stamp)
            try:
                return await self._decide(checks, plan, view, policies, watch)
            except Stale:  # an entry came or went since the plan: read everything at the index as it is now
                return await self._decide(checks, checks.plan(segments), self.index.view, policies, watch)
        except Exception as exc:  # the embedder or faiss failed: a bug or resource problem, not the client's
            return self._failed(stage, exc)
        finally:
            kind = "input_check" if stage == "input" else "output_check"
            self.metrics.stage_seconds.labels(kind).observe(time.perf_counter() - started)

    async def _decide(
        self, checks: CheckSet, plan: Plan, view: IndexView, policies: PolicySet, watch: Watch | None
    ) -> Verdict:
        """Embed what the plan leaves to read (MiniLM, and the multilingual model for other languages), then
        read and decide on the index's reader thread."""
        segments = plan.to_read()
        texts = checks.embed(segments)
        vectors: dict[str, Vectors] = {}
        if texts:
            vectors.update(zip(texts, await self._embed(checks, segments, texts, view, policies), strict=True))
        other = checks.embed_meaning(segments) if self.meaning_batcher is not None else []
        if other and self.meaning_batcher is not None:
            found = await self.meaning_batcher.embed(other)
            vectors.update((MEANING + t, v) for t, v in zip(other, found, strict=True))
        return await self.index.run(checks.decide, plan, view, vectors, policies, watch)

    async def _embed(
        self, checks: CheckSet, segments: list[Segment], texts: list[str], view: IndexView, policies: PolicySet
    ) -> Vectors:
        """MiniLM vectors of `texts`, in two stages when a first stage is set (`guard.pipeline.cascade`)."""

        async def best(vectors: Vectors) -> Any:
            return await self.index.run(best_scores, view, vectors)

        return await self.cascade.embed(texts, checks.passages(segments), floors(policies), best)

    def _audited(self, shortfall: float, missed: bool) -> None:
        self.metrics.first_stage_shortfall.observe(shortfall)
        if missed:
            self.metrics.first_stage_misses.inc()

    def _failed(self, stage: str, exc: Exception) -> Verdict:
        on_error = self.policies.settings.on_error
        log.error("check failed", extra={"stage": stage, "error": type(exc).__name__, "on_error": on_error.value})
        self.metrics.check_failures.labels(stage, on_error.value).inc()
        if on_error is OnError.open:
            return Verdict(Action.allow, failed=True)
        return Verdict(Action.refuse if stage == "input" else Action.filter, failed=True)

    def policy_of(self, verdict: Verdict, ctx: RequestContext) -> Policy:
        """The policy of the first matched entry; the request's own when nothing matched."""
        for entry_id in verdict.entry_ids:
            entry = self.index.get(entry_id)
            if entry is not None:
                return ctx.policies.for_entry(entry)
        return ctx.policy


def _merged(fields: Fields) -> Fields:
    """One text per field (a tool call's name and arguments, a stream's pieces), in first-seen order."""
    merged: dict[str, list[str]] = {}
    for field, text in fields:
        merged.setdefault(field, []).append(text)
    return [
        (field, "".join(parts) if field in ("content", "text") else " ".join(parts)) for field, parts in merged.items()
    ]
