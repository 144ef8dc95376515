"""The input check: do the user's turns reach for forgotten knowledge?

Semantic: every user turn, each sentence of a long turn, and the last few turns joined (so a question spread
over turns is seen whole) are embedded in one batch and searched in the forget index. Lexical: every user turn is
scanned for subject/alias mentions, so a subject named turns earlier still counts.
"""

from __future__ import annotations

from collections.abc import Sequence

from guard.checks.semantic import semantic_matches
from guard.checks.verdict import ALLOW, Action, Match, Verdict, split
from guard.forget.chunking import sentences
from guard.forget.embedder import Vectors
from guard.forget.index import ForgetIndex
from guard.policy import InputAction, PolicySet

MAX_SEGMENTS = 256  # bound the embedding work of one request


def segments(turns: Sequence[str], window_turns: int) -> list[str]:
    out: list[str] = []
    for turn in turns:
        if turn.strip():
            out.append(turn)
            parts = sentences(turn)
            if len(parts) > 1:
                out.extend(parts)
    recent = [t for t in turns[-window_turns:] if t.strip()]
    if len(recent) > 1:
        out.append("\n".join(recent))
    # keep the most recent segments when the conversation is very long
    return list(dict.fromkeys(out))[-MAX_SEGMENTS:]


def input_texts(policies: PolicySet, turns: Sequence[str]) -> list[str]:
    """The texts the input check embeds."""
    return segments(turns, policies.default.input.window_turns)


def check_input(
    index: ForgetIndex, policies: PolicySet, turns: Sequence[str], vectors: Vectors | None = None
) -> Verdict:
    """Run on the index's reader thread (`await index.run(check_input, ...)`); `vectors`: of `input_texts`."""
    if len(index) == 0:
        return ALLOW

    def threshold(entry_id: str) -> float | None:
        policy = policies.for_entry(index.get(entry_id)).input
        return policy.semantic_threshold if policy.semantic else None

    texts = input_texts(policies, turns)
    matches = {(m.entry_id, m.check): m for m in semantic_matches(index, texts, threshold, vectors)}
    for turn in turns:
        for entry_id in index.names.find(turn):
            if policies.for_entry(index.get(entry_id)).input.lexical:
                matches[(entry_id, "lexical")] = Match(entry_id, "lexical", 1.0)
    if not matches:
        return ALLOW
    enforced, monitored = split(matches, lambda entry_id: policies.monitored(index.get(entry_id)))
    if not enforced:
        return Verdict(Action.allow, (), monitored)
    refuse = any(policies.for_entry(index.get(m.entry_id)).input.action is InputAction.refuse for m in enforced)
    return Verdict(Action.refuse if refuse else Action.rewrite, enforced, monitored)
