"""The streaming output filter: hold generated text back until it has passed the output check.

Every readable field of a chunk counts (content, reasoning, refusal, tool-call arguments, logprob
alternatives); upstream chunks are kept verbatim and released in order once their text has been checked. The
held chunks are released (after the check) just before a chunk that starts a new sentence, so what leaves is
always whole sentences:

- a real sentence end: the held text ends with `.`, `!` or `?` (closing quotes allowed) and the next chunk
  starts, after white space, with a capital, a digit or an opening quote; not after an initial ("J.") or a
  common abbreviation ("Dr.", "e.g.");
- a newline that ends a line of prose (at least `PROSE_LINE` characters, or ending with punctuation), so a
  list of short lines or one word a line is not released line by line;
- when `hold_back_chars` characters wait without such an end (bounded latency and memory);
- when the choice finishes.

With `hold_all` (the conversation is under watch) nothing is released before the choice ends, and logprobs
are dropped. On a hit the held chunks are dropped, the choice ends with the verdict's refusal text (the matched
entry's policy's) and finish_reason "content_filter", and — once every choice has ended —
the upstream is closed early. A blocked reasoning stream ends the answer too: it is the same choice.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from guard.checks.evidence import ALLOW, Verdict
from guard.openai.protocol import Endpoint
from guard.openai.shapes import Fields, choice_fields, refusal_chunk, strip_unchecked

Check = Callable[[Fields], Awaitable[Verdict]]

_ENDS_SENTENCE = re.compile(
    r"(?<![A-Z])(?<!\b(?:Dr|Mr|Ms|St|Jr|Sr|vs|Mt|No|Co))(?<!\be\.g)(?<!\bi\.e)"
    r"[.!?][\"')\]]*\s*$"
)
_STARTS_SENTENCE = re.compile(r"^\s*[A-Z0-9\"'(\[]")
PROSE_LINE = 60  # a newline ends a line of prose at least this long (or one ending with punctuation)
CONTEXT_CHARS = 400  # released text kept, per field, to check runs and names that straddle a release


def ends_sentence(text: str) -> bool:
    """Does the text end a sentence or a line, so that what it holds can be embedded before more arrives?"""
    return text.endswith("\n") or _ENDS_SENTENCE.search(text) is not None


def boundary(before: str, after: str) -> bool:
    """Is the point between the held text `before` and the next chunk's text `after` a place to release?"""
    if not before or not after:
        return False
    if _ENDS_SENTENCE.search(before) and _STARTS_SENTENCE.match(after) and (before[-1].isspace() or after[0].isspace()):
        return True
    if before.endswith("\n") or after.startswith("\n"):
        line = before.rstrip("\n").rsplit("\n", 1)[-1].rstrip()
        return len(line) >= PROSE_LINE or line[-1:] in (".", "!", "?", ":", ";")
    return False


@dataclass
class _Choice:
    held: list[dict[str, Any]] = field(default_factory=list)
    pending: dict[str, str] = field(default_factory=dict)  # field -> text not yet checked
    released: dict[str, str] = field(default_factory=dict)  # field -> the tail of what was released
    flow: str = ""  # the held text of every field in arrival order (where sentence ends are looked for)
    ended: bool = False

    def waiting(self) -> int:
        return sum(len(t) for t in self.pending.values())


@dataclass
class StreamOutcome:
    """What happened, for headers-after-the-fact: logs, metrics and the audit trail."""

    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def filtered(self) -> bool:
        return any(v.blocked for v in self.verdicts)


@dataclass(frozen=True)
class HoldBack:
    """How one request's stream is held back. `warm`, when given, is handed what the next check will read each
    time the held text ends a sentence (`guard.pipeline.warm`): it is embedded while the next chunk is awaited."""

    endpoint: Endpoint
    check: Check
    hold_back_chars: int
    choices: int  # the request's `n`: the stream ends early only once each has ended
    hold_all: bool = False  # under strong watch an answer leaves only once complete
    warm: Callable[[Fields], None] | None = None


def filter_stream(
    events: AsyncIterator[dict[str, Any]], hold: HoldBack, outcome: StreamOutcome
) -> AsyncGenerator[dict[str, Any]]:
    """The events as the client may see them; blocking verdicts go to `outcome`."""
    return _Filter(hold, outcome).run(events)


class _Filter:
    def __init__(self, hold: HoldBack, outcome: StreamOutcome) -> None:
        self.hold = hold
        self.outcome = outcome
        self.states: dict[int, _Choice] = {}
        self.delta = hold.endpoint == "chat"

    async def run(self, events: AsyncIterator[dict[str, Any]]) -> AsyncGenerator[dict[str, Any]]:
        async for event in events:
            raw_choices = event.get("choices")
            if not isinstance(raw_choices, list) or not raw_choices:
                yield event  # usage and other choice-less chunks carry no generated text
                continue
            for choice in raw_choices:
                if isinstance(choice, dict):
                    single = event if len(raw_choices) == 1 else {**event, "choices": [choice]}
                    async for out in self._take(choice, single):
                        yield out
            if self._done():
                break  # every choice ended and one was stopped: stop reading (closing the upstream aborts generation)
        for index, st in sorted(self.states.items()):
            if st.held:  # the upstream ended a choice without finish_reason: check what is left all the same
                async for out in self._release(index, st):
                    yield out

    def _done(self) -> bool:
        states = self.states
        return self.outcome.filtered and len(states) >= self.hold.choices and all(st.ended for st in states.values())

    async def _take(self, choice: dict[str, Any], single: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """One choice's chunk: passed, held, or released with what was held before it."""
        hold = self.hold
        index = int(choice.get("index", 0))
        st = self.states.setdefault(index, _Choice())
        if st.ended:
            return
        if hold.hold_all:
            strip_unchecked(choice, delta=self.delta)
        fields = choice_fields(hold.endpoint, choice, delta=self.delta)
        finished = choice.get("finish_reason") is not None
        if not fields and not finished and not st.held:
            yield single  # a role-only or empty chunk reveals nothing: pass it at once
            return
        text = "".join(t for _, t in fields)
        if st.held and not hold.hold_all and boundary(st.flow, text):
            async for out in self._release(index, st):  # whole sentences leave; this chunk starts the next
                yield out
            if st.ended:
                return
        st.held.append(single)
        st.flow += text
        for f, t in fields:
            st.pending[f] = st.pending.get(f, "") + t
        if finished or (not hold.hold_all and st.waiting() >= hold.hold_back_chars):
            async for out in self._release(index, st):
                yield out
        elif hold.warm is not None and text and ends_sentence(st.flow):
            hold.warm(_to_check(st))
        if finished:
            st.ended = True

    async def _release(self, index: int, st: _Choice) -> AsyncIterator[dict[str, Any]]:
        """The held chunks once their text passed the check; on a hit, the refusal instead, and the choice ends."""
        verdict = await self.hold.check(_to_check(st)) if st.pending else ALLOW
        if verdict.blocked:
            self.outcome.verdicts.append(verdict)
            template = st.held[-1] if st.held else {}
            prefix = "\n\n" if any(t.strip() for t in st.released.values()) else ""
            st.held, st.pending, st.ended = [], {}, True
            yield refusal_chunk(self.hold.endpoint, template, index, prefix + verdict.refusal_text)
            return
        for chunk in st.held:
            yield chunk
        for f, t in st.pending.items():
            st.released[f] = (st.released.get(f, "") + t)[-CONTEXT_CHARS:]
        st.held, st.pending, st.flow = [], {}, ""


def _to_check(st: _Choice) -> Fields:
    """What the check reads of a choice: its pending text, after the tail of what was released before it."""
    return [(f, st.released.get(f, "")[-CONTEXT_CHARS:] + t) for f, t in st.pending.items()]
