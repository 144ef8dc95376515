"""What flows out of the checks and what a policy makes of it — small frozen values, logged by entry id,
kind, score and place, never by content.

A check turns text into `Evidence` per forget entry; `guard.checks.decide` turns the evidence of one stage
into a `Verdict` (one action, and the evidence that counted).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from guard.forget.embedder import Vectors
from guard.forget.view import IndexView
from guard.policy import Policy

# The embedding spaces a check may read vectors from (`Check.space`): the forget index's own model (MiniLM), and
# the multilingual model the entries' sentences are also embedded in (`guard.forget.meaning`).
INDEX = "index"
MEANING = "meaning"

Embedded = Mapping[str, Mapping[str, Vectors]]  # space -> text -> its vector in that space


class Action(StrEnum):
    allow = "allow"
    rewrite = "rewrite"
    refuse = "refuse"
    filter = "filter"


@dataclass(frozen=True)
class Segment:
    """A piece of text a check reads, where it comes from ("messages[2].content", "window", "output.reasoning";
    a normalised view adds "~folded", "~base64", …) and the role of its message ("" outside a conversation)."""

    where: str
    text: str
    role: str = ""
    asked: int = 0  # an answer read with its question (`guard.checks.conversation.ANSWERED`): the question's length
    # a block of a longer passage (`guard.checks.conversation.blocks`): 0 the whole text, 1 a block, 2 the last
    block: int = 0


@dataclass(frozen=True)
class Evidence:
    entry_id: str
    # "semantic" | "lexical" (a name) | "verbatim" | "part" (a part of a name) | "fact" (fact values)
    # | "unnatural" (encoded or spelled-out output in a watched conversation) | "described" (a fact value and
    # meaning that both point at the entry: see `guard.checks.decide.described`)
    kind: str
    score: float  # cosine similarity; 1.0 for a name; shared n-gram count (verbatim); words found (part, fact)
    where: str = ""  # the segment it was found in
    words: frozenset[str] = field(default=frozenset(), repr=False, compare=False)  # never logged: forget text
    second: float = 0.0  # a passage's evidence: the score of its second-best statement for the entry;
    # "answer-located": the share of the question's words the answer's sentence uses
    values: int = 0  # "answer-located": how many distinct values of the answer its words are (a name is one)


@dataclass(frozen=True)
class Watch:
    """A conversation under watch for some entries: weaker evidence for them was seen. The output check is
    stricter for these entries: a part of a name counts (unless it is already in the conversation), meaning counts at a
    lower threshold, earlier assistant turns are read with the new output.

    Watched `strongly` (a part of the name or fact values of the entry in the conversation, or a rewrite made
    for it): its fact values count too, encoded or bare-value output is refused, meaning counts at an even lower
    threshold and a stream is held to its end. Meaning alone only watches weakly: many subjects resemble each
    other (every author biography does)."""

    entries: frozenset[str] = frozenset()
    strong: frozenset[str] = frozenset()  # a subset of `entries`
    # words already in the conversation (tokens): what the client wrote, and earlier answers, which the client sent
    # back (it holds them already, whether the guard let them out or the client wrote them): no leak to say again
    echo: frozenset[str] = frozenset()
    history: str = ""  # what the assistant said in earlier turns
    question: str = ""  # what the client asks now: an answer is also read joined to it (`guard.checks.conversation.QA`)
    near: frozenset[str] = frozenset()  # entries the question came near: only the joined reading counts for them
    asked: frozenset[str] = frozenset()  # entries whose passages the answer's new words are looked for in
    # entries the client named for someone else (`guard.checks.identity`): their name in the answer is the
    # client's, not a leak; their fact values and answer evidence still count (they are watched, not strongly)
    namesakes: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.entries)


class Check(Protocol):
    """One kind of evidence. `space` is the embedding space it reads vectors from (`INDEX`, `MEANING`, or None for
    a check that embeds nothing); `embed` names the texts it needs vectors for in that space (the caller embeds
    each space's texts in one batch, off the index's thread) and `passages` which of them it reads only as a
    passage's statements. `read` reads the index, on the index's reader thread, for one text of the request and
    its normalised views, with the vectors of its space: what it finds there holds no text of the request (entry
    ids, scores, places, the entry's own words), so it can be remembered while the index does not change.
    `evidence` combines what was read in each text of a request, in order, into evidence per entry (with the
    index at hand, for what is only known of the texts together)."""

    @property
    def space(self) -> str | None: ...

    def embed(self, segments: Sequence[Segment]) -> list[str]: ...
    def passages(self, segments: Sequence[Segment]) -> set[str]: ...
    def read(self, segments: Sequence[Segment], view: IndexView, vectors: Mapping[str, Vectors]) -> Any: ...
    def evidence(self, readings: Sequence[Any], view: IndexView) -> list[Evidence]: ...


@dataclass(frozen=True)
class Verdict:
    action: Action
    matches: tuple[Evidence, ...] = field(default=())
    # evidence for entries in monitor mode: recorded, never enforced (it does not count towards `action`)
    monitored: tuple[Evidence, ...] = field(default=())
    # the check itself failed (embedder or index error); `action` is what the global on_error made of it
    failed: bool = False
    watched: frozenset[str] = frozenset()  # entries with weak evidence: the conversation is under watch for them
    strong: frozenset[str] = frozenset()  # of those, the ones watched strongly (see `Watch`)
    near: frozenset[str] = frozenset()  # the entry an allowed question came near (`guard.checks.decide.nearest`)
    asked: frozenset[str] = frozenset()  # the entries its answer is read against (`guard.checks.decide.asked`)
    namesakes: frozenset[str] = frozenset()  # watched entries whose name the client gave to someone else
    # the policy that rules what is done: the first matched entry's, else the request's (set by the stage that
    # decided, `guard.pipeline.checker`); its refusal text is what a refusal or a filtered answer says
    policy: Policy | None = field(default=None, compare=False)

    @property
    def refusal_text(self) -> str:
        return (self.policy or DEFAULT_POLICY).refusal_text

    @property
    def entry_ids(self) -> list[str]:
        return sorted({m.entry_id for m in self.matches})

    @property
    def blocked(self) -> bool:
        return self.action in (Action.refuse, Action.filter)

    def summary(self) -> dict[str, object]:
        """The loggable form: entry ids, kinds, scores and places only."""
        out: dict[str, object] = {"action": self.action.value, "matches": _loggable(self.matches)}
        if self.monitored:
            out["monitored"] = _loggable(self.monitored)
        if self.failed:
            out["failed"] = True
        if self.watched:
            out["watched"] = sorted(self.watched)
        return out


def _loggable(evidence: tuple[Evidence, ...]) -> list[dict[str, object]]:
    return [{"entry": e.entry_id, "check": e.kind, "score": round(e.score, 4), "where": e.where} for e in evidence]


DEFAULT_POLICY = Policy(name="default")
ALLOW = Verdict(Action.allow)
NO_WATCH = Watch()
