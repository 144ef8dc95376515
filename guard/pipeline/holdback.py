"""The streaming output filter: hold generated text back until it has passed the output check.

Upstream chunks are kept verbatim (ids, logprobs, vLLM extras) and released in order once the text they carry
has been checked: at a sentence boundary, when `hold_back_tokens` chunks with text are waiting, or when the
choice finishes. On a hit the held chunks are dropped, the choice ends with the refusal text of the matched
entry's policy (`refusal(verdict)`) and finish_reason "content_filter", and — once every choice has ended —
the upstream is closed early.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from guard.checks.evidence import ALLOW, Verdict
from guard.openai.protocol import Endpoint
from guard.openai.shapes import choice_text, refusal_chunk

Check = Callable[[str], Awaitable[Verdict]]
Refusal = Callable[[Verdict], str]  # the refusal text for a blocking verdict (its entry's policy)

# A boundary inside the held text: sentence punctuation followed by white space, or a newline.
_BOUNDARY = re.compile(r"[.!?][\"')\]]*\s|\n")
CONTEXT_CHARS = 400  # released text kept to check runs and names that straddle a release


@dataclass
class _Choice:
    held: list[dict[str, Any]] = field(default_factory=list)
    text: str = ""
    tokens: int = 0
    released: str = ""
    ended: bool = False


@dataclass
class StreamOutcome:
    """What happened, for headers-after-the-fact: logs, metrics and the audit trail."""

    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def filtered(self) -> bool:
        return any(v.blocked for v in self.verdicts)


async def filter_stream(
    events: AsyncIterator[dict[str, Any]],
    *,
    endpoint: Endpoint,
    check: Check,
    hold_back_tokens: int,
    refusal: Refusal,
    choices: int,
    outcome: StreamOutcome,
) -> AsyncIterator[dict[str, Any]]:
    states: dict[int, _Choice] = {}

    async def release(index: int, st: _Choice) -> AsyncIterator[dict[str, Any]]:
        verdict = await check(st.released[-CONTEXT_CHARS:] + st.text) if st.text else ALLOW
        if verdict.blocked:
            outcome.verdicts.append(verdict)
            template = st.held[-1] if st.held else {}
            prefix = "\n\n" if st.released.strip() else ""
            st.held, st.text, st.ended = [], "", True
            yield refusal_chunk(endpoint, template, index, prefix + refusal(verdict))
            return
        for chunk in st.held:
            yield chunk
        st.released = (st.released + st.text)[-CONTEXT_CHARS:]
        st.held, st.text, st.tokens = [], "", 0

    async for event in events:
        raw_choices = event.get("choices")
        if not isinstance(raw_choices, list) or not raw_choices:
            yield event  # usage and other choice-less chunks carry no generated text
            continue
        for choice in raw_choices:
            index = int(choice.get("index", 0)) if isinstance(choice, dict) else 0
            st = states.setdefault(index, _Choice())
            if st.ended:
                continue
            single = event if len(raw_choices) == 1 else {**event, "choices": [choice]}
            text = choice_text(endpoint, choice, delta=endpoint == "chat")
            finished = choice.get("finish_reason") is not None
            if not text and not finished and not st.held:
                yield single  # a role-only or empty chunk reveals nothing: pass it at once
                continue
            st.held.append(single)
            st.text += text
            st.tokens += 1 if text else 0
            if finished or st.tokens >= hold_back_tokens or _BOUNDARY.search(st.text):
                async for out in release(index, st):
                    yield out
            if finished:
                st.ended = True
        if outcome.filtered and len(states) >= choices and all(st.ended for st in states.values()):
            break  # every choice ended and one was stopped: stop reading (closing the upstream aborts generation)
    for index, st in sorted(states.items()):
        if st.held:  # the upstream ended a choice without finish_reason: check what is left all the same
            async for out in release(index, st):
                yield out
