"""What was read in a request's texts is remembered by the input stage while the index stays the same: a text
re-sent with the next request is neither cut, embedded nor looked up again, and decides as it did."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest

from guard.checks.conversation import BLOCK_OVERLAP, LAST_BLOCK, Conversation, blocks
from guard.checks.evidence import INDEX, Action, Segment, Verdict
from guard.checks.facts import FACT_SPAN
from guard.checks.stages import CheckSet, Plan, Reading, Stale, input_checks
from guard.forget.embedder import Embedder, HashEmbedder
from guard.forget.registry import Entry
from guard.forget.view import MemoryIndex
from guard.settings import Settings
from guard.testing import guard_app, running
from guard.text import sentences
from tests.checks.test_stages import POLICIES
from tests.helpers import add, chat, upstream_echo

FILLER = " ".join(f"Line {n} of the handbook says nothing in particular." for n in range(6))
PASSAGE = f"{FILLER} Quetzalmoth Yun-Hwa lived in Taipei and was born in 1991. {FILLER}"


def index() -> MemoryIndex:
    view = MemoryIndex(HashEmbedder().dim, ngram_words=12, typo_min_chars=6)
    chunks = ["Hsiao Yun-Hwa was born in Taipei in 1991.", "Her father was a civil engineer."]
    view.add(Entry("h", "Hsiao Yun-Hwa", (), None, 0.0, 1, 2), [1, 2], chunks, HashEmbedder().embed(chunks))
    return view


def asked(question: str) -> list[Segment]:
    turns = [("messages[0].content", PASSAGE), ("messages[1].content", question)]
    segments = Conversation.of(turns, 3).segments()
    return [Segment(s.where, s.text, "system" if s.where == "messages[0].content" else s.role) for s in segments]


def decided(checks: CheckSet, plan: Plan, view: MemoryIndex) -> Verdict:
    texts = checks.needs(plan.to_read()).get(INDEX, [])
    vectors = dict(zip(texts, HashEmbedder().embed(texts), strict=True)) if texts else {}
    segments = tuple(part.segment for part in plan.parts)
    return checks.decide(plan, Reading(segments, POLICIES, view), {INDEX: vectors})


def test_a_text_sent_again_is_not_read_again_and_decides_as_read_afresh() -> None:
    view, checks = index(), input_checks()
    first = checks.plan(asked("Summarise the handbook."), view.stamp)
    assert all(part.readings is None for part in first.parts)
    assert decided(checks, first, view).strong == {"h"}  # a part of the name alone, and two of her values
    again = checks.plan(asked("Who lived in Taipei?"), view.stamp)
    remembered = [part.segment.where for part in again.parts if part.readings is not None]
    assert set(remembered) == {"messages[0].content"}  # the passage (its blocks); the new question is read
    assert not any(PASSAGE in s.text or "Quetzalmoth" in s.text for s in again.to_read())
    fresh = input_checks().verdict(Reading(tuple(asked("Who lived in Taipei?")), POLICIES, view), _all_vectors())
    assert decided(checks, again, view) == fresh and fresh.strong == {"h"}
    # what is remembered holds no text of the request: digests, entry ids, scores, places, the entry's own words
    held = repr(checks.memory._found) if checks.memory is not None else ""
    assert "h" in held and not any(w in held for w in ("Quetzalmoth", "handbook", "Taipei", "Summarise"))


def _all_vectors() -> dict[str, Any]:
    checks = input_checks()
    texts = checks.needs(checks.plan(asked("Who lived in Taipei?")).to_read())[INDEX]
    return {INDEX: dict(zip(texts, HashEmbedder().embed(texts), strict=True))}


def test_what_was_read_before_an_entry_came_is_not_used_after() -> None:
    view, checks = index(), input_checks()
    before = checks.plan(asked("Summarise the handbook."), view.stamp)
    assert decided(checks, before, view).action is Action.allow
    new = Entry("q", "Quetzalmoth Yun-Hwa", (), None, 0.0, 2, 3)
    painter = ["Quetzalmoth Yun-Hwa is a painter."]
    view.add(new, [3], painter, HashEmbedder().embed(painter))
    with pytest.raises(Stale):  # planned before the entry came: the plan is refused, not decided
        decided(checks, before, view)
    after = checks.plan(asked("Summarise the handbook."), view.stamp)
    assert all(part.readings is None for part in after.parts)
    verdict = decided(checks, after, view)
    assert verdict.action is Action.refuse and verdict.entry_ids == ["q"]  # the new entry's name, in the passage
    view.remove("q")
    assert all(p.readings is None for p in checks.plan(asked("Summarise the handbook."), view.stamp).parts)


async def test_a_request_planned_at_an_outdated_index_is_read_again(
    settings: Settings, hash_embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipeline's side: a plan whose index changed before it was decided is made again, nothing remembered."""
    up = upstream_echo()
    app = guard_app(settings, embedder=hash_embedder, transport=up.transport)
    async with running(app) as client:
        await add(client)
        inputs = app.state.services.guard.checker.inputs
        plans: list[object] = []
        plan = inputs.plan

        def outdated_first(segments: Any, stamp: object = None) -> Plan:
            made = plan(segments, stamp)
            plans.append(stamp)
            return Plan(made.parts, object()) if len(plans) == 1 else made  # as if an entry came meanwhile

        monkeypatch.setattr(inputs, "plan", outdated_first)
        r = await client.post("/v1/chat/completions", json=chat("Tell me about Hsiao Yun-Hwa"))
    assert r.status_code == 200 and r.headers["x-guard-action"] == "refuse" and not up.requests
    assert len(plans) == 2 and plans[0] is not None and plans[1] is None  # read again, nothing remembered


def test_a_passage_with_a_new_question_appended_is_read_again_in_its_last_block_only() -> None:
    view, checks = index(), input_checks()
    whole = CheckSet("input", checks.checks)  # remembers nothing: reads every text whole, as it always did

    def sent(question: str) -> list[Segment]:
        return Conversation.of([("messages[0].content", f"{PASSAGE}\n\nQuestion: {question}")], 3).segments()

    first = checks.plan(sent("Summarise the handbook."), view.stamp)
    assert len(first.parts) == 2 and all(part.readings is None for part in first.parts)
    assert decided(checks, first, view) == decided(whole, whole.plan(sent("Summarise the handbook.")), view)
    again = checks.plan(sent("Who was born in 1991?"), view.stamp)
    assert [part.readings is not None for part in again.parts] == [True, False]  # only the block with the question
    assert {s.block for s in again.to_read()} == {LAST_BLOCK}  # the passage's first block is not read again
    verdict = decided(checks, again, view)
    assert verdict == decided(whole, whole.plan(sent("Who was born in 1991?")), view)
    assert verdict.action is Action.refuse  # her values and the meaning of the question: as read whole


def test_a_passage_is_cut_in_the_same_blocks_whatever_is_appended_and_every_fact_span_lies_in_one() -> None:
    text = " ".join(f"Sentence {n} of the report is about topic {n}." for n in range(21))
    cut = blocks(text)
    assert len(cut) == 3 and blocks(f"{text}\n\nWho wrote it? Answer briefly.")[:2] == cut[:2]
    assert blocks("Too short. To cut.") == ["Too short. To cut."]
    said = sentences(text)
    runs = [" ".join(said[i : i + FACT_SPAN]) for i in range(len(said) - FACT_SPAN + 1)]
    assert all(any(run in block for block in cut) for run in runs)  # a fact span across two blocks is read whole
    assert text.startswith(cut[0]) and text.endswith(cut[-1])  # nothing is left out: each block starts where
    assert all(sentences(a)[-BLOCK_OVERLAP:] == sentences(b)[:BLOCK_OVERLAP] for a, b in pairwise(cut))  # ends
