"""The checks of each stage. A new kind of evidence is added here, without touching the pipeline.

A stage reads a `Reading` (its texts, the request's policies, the index as it is, the watch), built once by the
caller. `CheckSet.plan` cuts the texts into their normalised views, or finds what was read in them before (the
input stage remembers: a system prompt, a RAG passage and a chat's earlier turns are re-sent with every request);
`CheckSet.needs` lists, per embedding space, the texts to embed of what is left to read (the caller embeds them
in one micro-batch per space, off the index's thread); `CheckSet.decide` reads the rest, runs on the index's
reader thread and lets the policies decide.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from guard.checks.answers import AnswerCheck
from guard.checks.conversation import ANSWERED, QA, VIEW, expand, input_pieces, output_pieces, split
from guard.checks.decide import Stage, decide
from guard.checks.evidence import ALLOW, INDEX, Check, Embedded, Evidence, Segment, Verdict, Watch
from guard.checks.facts import FactCheck
from guard.checks.identity import IdentityCheck
from guard.checks.lexical import NameCheck
from guard.checks.meaning import MeaningCheck
from guard.checks.semantic import SemanticCheck
from guard.checks.verbatim import VerbatimCheck
from guard.forget.view import IndexView
from guard.normalize import unnatural
from guard.policy import PolicySet

REMEMBERED = 1024  # texts of requests whose readings the input stage remembers (their results, not their text)


@dataclass(frozen=True)
class Reading:
    """What one stage of a request reads, and against what: built once, handed down to every step of the stage."""

    segments: tuple[Segment, ...]
    policies: PolicySet  # the request's set (`RequestContext.policies`)
    view: IndexView  # the index as it is when the stage starts (read again if it changes meanwhile: `Stale`)
    watch: Watch | None = None  # output: the entries the conversation is watched for

    def at(self, view: IndexView) -> Reading:
        return Reading(self.segments, self.policies, view, self.watch)


@dataclass(frozen=True)
class Part:
    """One text of a request as the checks read it: the text and its normalised views, or what was read in them
    before (then the views are not cut again and nothing is embedded)."""

    segment: Segment
    key: bytes | None  # where the readings are remembered; None: never (the window, which changes every time)
    readings: tuple[Any, ...] | None = None  # one per check, remembered
    expanded: tuple[Segment, ...] = ()  # the text and its views, when there is something to read


@dataclass(frozen=True)
class Plan:
    parts: tuple[Part, ...]
    stamp: object  # the index's `stamp` the remembered readings were read at (None: nothing remembered)

    def to_read(self) -> list[Segment]:
        return [s for part in self.parts if part.readings is None for s in part.expanded]


class Stale(Exception):
    """The index changed between planning a request's reading and reading it: plan again."""


class CheckSet:
    def __init__(self, stage: Stage, checks: Sequence[Check], remember: int = 0) -> None:
        self.stage = stage
        self.checks = tuple(checks)
        self.memory = Memory(remember) if remember else None

    def plan(self, segments: Sequence[Segment], stamp: object = None) -> Plan:
        """Each text with its views, or with its remembered readings when the index's `stamp` is still the one
        they were read at. The same text twice is read once, where it comes first. A stage that remembers reads a
        long passage in blocks (`guard.checks.conversation.blocks`), each remembered: a passage re-sent with a new
        question appended to it is read again only in its last block."""
        parts: list[Part] = []
        seen: set[tuple[str, str, int]] = set()
        cut = [b for s in segments for b in split(s)] if self.memory is not None else segments
        for segment in cut:
            if (segment.text, segment.role, segment.block) in seen:
                continue
            seen.add((segment.text, segment.role, segment.block))
            key = self.memory.key(segment) if self.memory is not None and segment.role != "window" else None
            readings = self.memory.get(key, stamp) if key is not None and self.memory is not None else None
            expanded = () if readings is not None else tuple(expand([segment]))
            parts.append(Part(segment, key, readings, expanded))
        return Plan(tuple(parts), stamp)

    def needs(self, segments: Sequence[Segment]) -> dict[str, list[str]]:
        """Per embedding space, the texts the checks need vectors for (each once, in first-asked order)."""
        wanted: dict[str, dict[str, None]] = {}
        for check in self.checks:
            if check.space is not None:
                wanted.setdefault(check.space, {}).update(dict.fromkeys(check.embed(segments)))
        return {space: list(texts) for space, texts in wanted.items() if texts}

    def passages(self, segments: Sequence[Segment], space: str = INDEX) -> set[str]:
        """Of the texts `needs` lists for `space`, those every check of that space reads only as a passage's
        statements (they count from a higher score: `guard.checks.decide.floors`)."""
        found = [check.passages(segments) for check in self.checks if check.space == space]
        return set.intersection(*found) if found else set()

    def evidence(self, plan: Plan, view: IndexView, vectors: Embedded) -> list[Evidence]:
        """Read what is not remembered (and remember it), then combine every text's readings per check."""
        if plan.stamp is not None and plan.stamp != view.stamp:
            raise Stale
        per_check: list[list[Any]] = [[] for _ in self.checks]
        for part in plan.parts:
            readings = part.readings
            if readings is None:
                readings = tuple(
                    check.read(part.expanded, view, vectors.get(check.space or "", {})) for check in self.checks
                )
                if part.key is not None and self.memory is not None:
                    self.memory.put(part.key, view.stamp, readings)
            for found, reading in zip(per_check, readings, strict=True):
                found.append(reading)
        return [e for check, found in zip(self.checks, per_check, strict=True) for e in check.evidence(found, view)]

    def decide(self, plan: Plan, reading: Reading, vectors: Embedded) -> Verdict:
        """Run on the index's reader thread. Raises `Stale` when the plan's remembered readings are outdated."""
        view, watch = reading.view, reading.watch
        if not len(view):
            return ALLOW
        evidence = self.evidence(plan, view, vectors)
        if watch is not None and watch.strong:
            evidence += unnatural_evidence([part.segment for part in plan.parts], watch)
        return decide(self.stage, evidence, reading.policies, view, watch)

    def verdict(self, reading: Reading, vectors: Embedded) -> Verdict:
        """The verdict of the reading's segments (and their views), all read now, none taken from what was
        remembered: tests and benchmarks."""
        return self.decide(self.plan(reading.segments), reading, vectors)


class Memory:
    """The readings of texts re-sent with every request (a system prompt, a RAG passage, the earlier turns of a
    chat), by a digest of the text, its place and its role: no text is held. Each is valid for the index `stamp`
    it was read at. Looked up on the event loop, filled on the index's reader thread: hence the lock."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._found: OrderedDict[bytes, tuple[object, tuple[Any, ...]]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(segment: Segment) -> bytes:
        digest = hashlib.blake2b(segment.text.encode(), digest_size=16)
        digest.update(f"\x00{segment.role}\x00{segment.where}\x00{segment.block}".encode())
        return digest.digest()

    def get(self, key: bytes, stamp: object) -> tuple[Any, ...] | None:
        if stamp is None:
            return None
        with self._lock:
            found = self._found.get(key)
            if found is None or found[0] != stamp:
                return None
            self._found.move_to_end(key)
            return found[1]

    def put(self, key: bytes, stamp: object, readings: tuple[Any, ...]) -> None:
        with self._lock:
            self._found[key] = (stamp, readings)
            self._found.move_to_end(key)
            while len(self._found) > self.size:
                self._found.popitem(last=False)


def unnatural_evidence(segments: Sequence[Segment], watch: Watch) -> list[Evidence]:
    """Under strong watch, output that is mostly not natural language (encoded, spelled out, bare values) counts
    for every strongly watched entry: a model does not answer that way unless told to hide what it says."""
    for segment in segments:
        if VIEW not in segment.where and segment.role not in ("history", QA, ANSWERED) and unnatural(segment.text):
            return [Evidence(entry_id, "unnatural", 1.0, segment.where) for entry_id in sorted(watch.strong)]
    return []


def input_checks() -> CheckSet:
    """Input evidence: meaning (user turns, their sentences, the recent window; text in other languages by the
    multilingual model too), names and parts of names (every
    text of every message), fact values."""
    checks: list[Check] = [
        SemanticCheck(input_pieces),
        MeaningCheck(input_pieces),
        NameCheck(),
        FactCheck(),
        IdentityCheck(),
    ]
    return CheckSet("input", checks, remember=REMEMBERED)


def output_checks() -> CheckSet:
    """Output evidence: meaning (each sentence, in English and other languages), verbatim runs, names and their
    parts, fact values."""
    checks: list[Check] = [
        SemanticCheck(output_pieces),
        MeaningCheck(output_pieces),
        VerbatimCheck(),
        NameCheck(),
        FactCheck(),
        AnswerCheck(),
    ]
    return CheckSet("output", checks)
