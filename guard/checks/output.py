"""The output check: does generated text reveal forgotten knowledge?

Three signals per piece of text: semantic similarity of each generated sentence to the forget chunks, verbatim
runs of n words shared with a forget document, and subject/alias mentions.
"""

from __future__ import annotations

from guard.checks.semantic import semantic_matches
from guard.checks.verdict import ALLOW, Action, Match, Verdict, split
from guard.forget.chunking import sentences
from guard.forget.embedder import Vectors
from guard.forget.index import ForgetIndex
from guard.policy import PolicySet


def output_texts(text: str) -> list[str]:
    """The texts the output check embeds."""
    return sentences(text)


def check_output(index: ForgetIndex, policies: PolicySet, text: str, vectors: Vectors | None = None) -> Verdict:
    """Run on the index's reader thread (`await index.run(check_output, ...)`); `vectors`: of `output_texts`."""
    if len(index) == 0 or not text.strip():
        return ALLOW

    def threshold(entry_id: str) -> float | None:
        policy = policies.for_entry(index.get(entry_id)).output
        return policy.semantic_threshold if policy.semantic else None

    matches = {(m.entry_id, m.check): m for m in semantic_matches(index, output_texts(text), threshold, vectors)}
    for entry_id, count in index.ngrams.find(text).items():
        if policies.for_entry(index.get(entry_id)).output.verbatim:
            matches[(entry_id, "verbatim")] = Match(entry_id, "verbatim", float(count))
    for entry_id in index.names.find(text):
        if policies.for_entry(index.get(entry_id)).output.lexical:
            matches[(entry_id, "lexical")] = Match(entry_id, "lexical", 1.0)
    if not matches:
        return ALLOW
    enforced, monitored = split(matches, lambda entry_id: policies.monitored(index.get(entry_id)))
    return Verdict(Action.filter if enforced else Action.allow, enforced, monitored)
