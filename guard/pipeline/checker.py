"""Running a stage's checks for one request: embed (micro-batched, per embedding space), read the index, decide,
record.

A stage reads one `Reading` (its texts, the request's policies, the index's view, the watch) built here once.
The verdict leaves with the policy that rules it (`Verdict.policy`: its refusal text, its rewrite), so no caller
looks a policy up again. A failure of the embedder or the index becomes what the global `on_error` says, and is
counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from guard.checks.conversation import ANSWERED, LOCATED, QA, says_little
from guard.checks.coverage import relax_input, relax_output
from guard.checks.decide import floors, input_action
from guard.checks.evidence import ALLOW, INDEX, MEANING, NO_WATCH, Action, Evidence, Segment, Verdict, Watch
from guard.checks.stages import CheckSet, Plan, Reading, Stale, input_checks, output_checks
from guard.context import RequestContext
from guard.forget.batcher import EmbedBatcher
from guard.forget.embedder import Embedder, Vectors
from guard.forget.index import ForgetIndex
from guard.forget.view import IndexView
from guard.judge import Judge
from guard.observe.decisions import Decisions
from guard.openai.shapes import Fields
from guard.pipeline.cascade import AUDIT_EVERY, Cascade, best_scores
from guard.pipeline.regressions import CoverageWatch
from guard.pipeline.speculate import Early
from guard.pipeline.warm import Warmer
from guard.policy import OnError, PolicySet
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
    """Built once in the app's start-up (`guard.app`) and shared by every request."""

    def __init__(
        self,
        index: ForgetIndex,
        policies: PolicySet,
        decisions: Decisions,
        *,
        enabled: bool = True,
        judge: Judge | None = None,
        fast: Embedder | None = None,
        audit_every: int = AUDIT_EVERY,
        coverage: CoverageWatch | None = None,
    ) -> None:
        self.index = index
        self.judge = judge  # asked about the uncertain band only (see `guard.judge`)
        self.policies = policies
        self.decisions = decisions
        self.metrics = decisions.metrics
        self.enabled = enabled  # False: a bare pass-through proxy (benchmarks), nothing is checked
        self.coverage = coverage or CoverageWatch(index, decisions)
        self.batcher = EmbedBatcher(index.embedder)
        # `fast`: the int8 first stage (`guard.pipeline.cascade`), audited live into the metrics
        self.cascade = Cascade(self.batcher, fast, audit_every=audit_every, audited=self._audited)
        meaning = index.memory.meaning
        # the other embedding spaces' models (the index's own goes through the cascade)
        self.batchers = {MEANING: EmbedBatcher(meaning.embedder)} if meaning is not None else {}
        self.inputs: CheckSet = input_checks()
        self.outputs: CheckSet = output_checks()
        self._warming: set[asyncio.Task[None]] = set()  # warm-ups under way (`guard.pipeline.warm`)

    def close(self) -> None:
        self.coverage.close()
        self.cascade.close()  # its audits first: they embed through the batcher
        self.batcher.close()
        for batcher in self.batchers.values():
            batcher.close()

    async def input(self, ctx: RequestContext) -> Verdict:
        """The input check of a request, recorded; the verdict carries the policy that rules it."""
        reading = Reading(tuple(ctx.conversation.segments()), ctx.policies, self.index.view)
        verdict = await self._stage("input", self.inputs, reading)
        verdict = relax_input(verdict, ctx.model, self.index.memory.coverage, ctx.policies, reading.view)
        text = "\n".join(ctx.conversation.texts())
        if self.judge is not None and verdict.action is Action.allow and verdict.watched and not verdict.failed:
            verdict = await self._judged("input", text, verdict.watched, verdict, reading)
        self.decisions.record(ctx.request_id, "input", verdict, text, client=ctx.client)
        return _ruled(verdict, reading)

    def watch(self, ctx: RequestContext, verdict: Verdict) -> Watch:
        """What the output check of an allowed or rewritten request is strict for: the watched entries, and the
        entries a rewrite was made for."""
        entries, strong = set(verdict.watched), set(verdict.strong)
        if verdict.action is Action.rewrite:
            entries.update(verdict.entry_ids)
            strong.update(verdict.entry_ids)
        near = verdict.near - entries
        question = ctx.conversation.question()
        if not entries and not near and not verdict.asked and not question:
            return NO_WATCH
        said = " ".join(t.text for t in ctx.conversation.turns)
        echo = frozenset(tokens(said))
        if not entries and not near and not verdict.asked:  # near no entry: the answer is read where its words stand
            return Watch(echo=echo, question=question)
        history = ctx.conversation.said_by("assistant")
        return Watch(
            frozenset(entries), frozenset(strong), echo, history, question, near, verdict.asked, verdict.namesakes
        )

    def output(self, ctx: RequestContext, watch: Watch = NO_WATCH, stage: str = "output") -> OutputCheck:
        """The output check of one request (every readable field of a choice); notable verdicts are recorded."""

        async def check(fields: Fields) -> Verdict:
            text = "\n".join(t for _, t in fields)
            if not text.strip():
                return ALLOW
            segments = [Segment(f"output.{field}", t, "assistant") for field, t in _merged(fields)]
            if watch and watch.history:  # earlier answers and this one together: a fact given in halves
                segments.append(Segment("history", f"{watch.history}\n{text}", "history"))
            if (watch.entries or watch.near) and watch.question and says_little(text, watch.question):
                segments.append(Segment("qa", f"{watch.question}\n{text}", QA))
            if watch.question:  # near no entry: read only where the answer's words stand (`LOCATED`)
                where = "qa" if watch.entries or watch.asked else LOCATED
                segments.append(Segment(where, f"{watch.question}\n{text}", ANSWERED, len(watch.question)))
            reading = Reading(tuple(segments), ctx.policies, self.index.view, watch)
            verdict = await self._stage(stage, self.outputs, reading)
            if self.judge is not None and watch and verdict.action is Action.allow and not verdict.failed:
                verdict = await self._judged("output", text, watch.entries, verdict, reading)
            coverage = self.index.memory.coverage
            verdict, regressions = relax_output(verdict, ctx.model, coverage, ctx.policies, reading.view)
            if regressions:
                self.coverage.regressed(ctx, regressions)
            if verdict.action is not Action.allow or verdict.monitored or verdict.failed:
                self.decisions.record(ctx.request_id, stage, verdict, text, client=ctx.client)
            return _ruled(verdict, reading)

        return check

    def checking(self) -> bool:
        """Can a check find anything now? Not with the checks off (a bare proxy) or an empty index."""
        return self.enabled and bool(len(self.index))

    def warmer(self, growing: bool = False) -> Warmer:
        """Embeds the pieces the output check will read of an answer's complete sentences while the rest is
        generated (`guard.pipeline.warm`)."""
        return Warmer(self._warm, growing, running=self._warming)

    async def _warm(self, fields: Fields) -> None:
        if not self.checking():
            return
        segments = [Segment(f"output.{field}", t, "assistant") for field, t in _merged(fields)]
        reading = Reading(tuple(segments), self.policies, self.index.view)
        await self._vectors(self.outputs, self.outputs.plan(segments).to_read(), reading)

    async def _judged(
        self, stage: str, text: str, entries: frozenset[str], verdict: Verdict, reading: Reading
    ) -> Verdict:
        """The judge's ruling on an uncertain verdict: a named entry refuses / filters, anything else keeps it."""
        assert self.judge is not None
        found = [(i, e) for i, e in ((i, reading.view.get(i)) for i in sorted(entries)) if e is not None]
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
        action = input_action([entry.id], reading.policies, reading.view)
        return Verdict(action, match, verdict.monitored, watched=verdict.watched, strong=verdict.strong)

    async def _stage(self, stage: str, checks: CheckSet, reading: Reading) -> Verdict:
        if not self.checking():
            return ALLOW
        started = time.perf_counter()
        try:
            plan = checks.plan(reading.segments, reading.view.stamp)
            try:
                return await self._decide(checks, plan, reading)
            except Stale:  # an entry came or went since the plan: read everything at the index as it is now
                reading = reading.at(self.index.view)
                return await self._decide(checks, checks.plan(reading.segments), reading)
        except Exception as exc:  # the embedder or faiss failed: a bug or resource problem, not the client's
            return self._failed(stage, exc)
        finally:
            kind = "input_check" if stage == "input" else "output_check"
            self.metrics.stage_seconds.labels(kind).observe(time.perf_counter() - started)

    async def _decide(self, checks: CheckSet, plan: Plan, reading: Reading) -> Verdict:
        """Embed what the plan leaves to read, then read and decide on the index's reader thread."""
        vectors = await self._vectors(checks, plan.to_read(), reading)
        return await self.index.run(checks.decide, plan, reading, vectors)

    async def _vectors(
        self, checks: CheckSet, segments: list[Segment], reading: Reading
    ) -> dict[str, dict[str, Vectors]]:
        """The vectors the checks need, per embedding space: MiniLM in two stages when a first stage is set
        (`guard.pipeline.cascade`), the other spaces by their own model (none: their checks read nothing)."""
        out: dict[str, dict[str, Vectors]] = {}
        for space, texts in checks.needs(segments).items():
            if space == INDEX:
                found = await self._index_vectors(texts, checks.passages(segments), reading)
            elif (batcher := self.batchers.get(space)) is not None:
                found = await batcher.embed(texts)
            else:
                continue
            out[space] = dict(zip(texts, found, strict=True))
        return out

    async def _index_vectors(self, texts: list[str], passages: set[str], reading: Reading) -> Vectors:
        view = reading.view

        async def best(vectors: Vectors) -> Any:
            return await self.index.run(best_scores, view, vectors)

        return await self.cascade.embed(texts, passages, floors(reading.policies), best)

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


def _ruled(verdict: Verdict, reading: Reading) -> Verdict:
    """The verdict with the policy that rules what is done: its first matched entry's, else the request's."""
    if verdict.action is Action.allow:
        return verdict
    view: IndexView = reading.view
    entry = next((e for e in (view.get(i) for i in verdict.entry_ids) if e is not None), None)
    return replace(verdict, policy=reading.policies.for_entry(entry))


def _merged(fields: Fields) -> Fields:
    """One text per field (a tool call's name and arguments, a stream's pieces), in first-seen order."""
    merged: dict[str, list[str]] = {}
    for field, text in fields:
        merged.setdefault(field, []).append(text)
    return [
        (field, "".join(parts) if field in ("content", "text") else " ".join(parts)) for field, parts in merged.items()
    ]
