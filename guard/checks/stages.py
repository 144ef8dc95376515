"""The checks of each stage. A new kind of evidence is added here, without touching the pipeline.

`CheckSet.embed` lists the texts to embed (the caller embeds them in one micro-batch, off the index's thread);
`CheckSet.verdict` runs every check on the index's reader thread and lets the policies decide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from guard.checks.conversation import input_pieces, output_pieces
from guard.checks.decide import Stage, decide
from guard.checks.evidence import ALLOW, Check, Evidence, Segment, Verdict
from guard.checks.lexical import NameCheck
from guard.checks.semantic import SemanticCheck
from guard.checks.verbatim import VerbatimCheck
from guard.forget.embedder import Vectors
from guard.forget.view import IndexView
from guard.policy import PolicySet


class CheckSet:
    def __init__(self, stage: Stage, checks: Sequence[Check]) -> None:
        self.stage = stage
        self.checks = tuple(checks)

    def embed(self, segments: Sequence[Segment]) -> list[str]:
        return list(dict.fromkeys(t for check in self.checks for t in check.embed(segments)))

    def evidence(self, segments: Sequence[Segment], view: IndexView, vectors: Mapping[str, Vectors]) -> list[Evidence]:
        return [e for check in self.checks for e in check.run(segments, view, vectors)]

    def verdict(
        self, segments: Sequence[Segment], view: IndexView, vectors: Mapping[str, Vectors], policies: PolicySet
    ) -> Verdict:
        """Run on the index's reader thread."""
        if not len(view):
            return ALLOW
        return decide(self.stage, self.evidence(segments, view, vectors), policies, view)


def input_checks() -> CheckSet:
    """Today's input evidence: meaning (turns, their sentences, the recent window) and names (every turn)."""
    return CheckSet("input", [SemanticCheck(input_pieces), NameCheck()])


def output_checks() -> CheckSet:
    """Today's output evidence: meaning (each sentence), verbatim runs and names."""
    return CheckSet("output", [SemanticCheck(output_pieces), VerbatimCheck(), NameCheck()])
