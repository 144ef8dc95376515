"""The checks of each stage. A new kind of evidence is added here, without touching the pipeline.

`CheckSet.embed` lists the texts to embed (the caller embeds them in one micro-batch, off the index's thread);
`CheckSet.verdict` runs every check on the index's reader thread and lets the policies decide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from guard.checks.conversation import VIEW, input_pieces, output_pieces
from guard.checks.decide import Stage, decide
from guard.checks.evidence import ALLOW, Check, Evidence, Segment, Verdict, Watch
from guard.checks.facts import FactCheck
from guard.checks.lexical import NameCheck
from guard.checks.meaning import MeaningCheck
from guard.checks.semantic import SemanticCheck
from guard.checks.verbatim import VerbatimCheck
from guard.forget.embedder import Vectors
from guard.forget.view import IndexView
from guard.normalize import unnatural
from guard.policy import PolicySet


class CheckSet:
    def __init__(self, stage: Stage, checks: Sequence[Check]) -> None:
        self.stage = stage
        self.checks = tuple(checks)

    def embed(self, segments: Sequence[Segment]) -> list[str]:
        return list(dict.fromkeys(t for check in self.checks for t in check.embed(segments)))

    def embed_meaning(self, segments: Sequence[Segment]) -> list[str]:
        """The texts the multilingual model embeds (keyed `MEANING + text` in the vectors)."""
        texts = (t for check in self.checks if isinstance(check, MeaningCheck) for t in check.embed_meaning(segments))
        return list(dict.fromkeys(texts))

    def evidence(self, segments: Sequence[Segment], view: IndexView, vectors: Mapping[str, Vectors]) -> list[Evidence]:
        return [e for check in self.checks for e in check.run(segments, view, vectors)]

    def verdict(
        self,
        segments: Sequence[Segment],
        view: IndexView,
        vectors: Mapping[str, Vectors],
        policies: PolicySet,
        watch: Watch | None = None,
    ) -> Verdict:
        """Run on the index's reader thread."""
        if not len(view):
            return ALLOW
        evidence = self.evidence(segments, view, vectors)
        if watch is not None and watch.strong:
            evidence += unnatural_evidence(segments, watch)
        return decide(self.stage, evidence, policies, view, watch)


def unnatural_evidence(segments: Sequence[Segment], watch: Watch) -> list[Evidence]:
    """Under strong watch, output that is mostly not natural language (encoded, spelled out, bare values) counts
    for every strongly watched entry: a model does not answer that way unless told to hide what it says."""
    for segment in segments:
        if VIEW not in segment.where and segment.role != "history" and unnatural(segment.text):
            return [Evidence(entry_id, "unnatural", 1.0, segment.where) for entry_id in sorted(watch.strong)]
    return []


def input_checks() -> CheckSet:
    """Input evidence: meaning (user turns, their sentences, the recent window; text in other languages by the
    multilingual model too), names and parts of names (every
    text of every message), fact values."""
    return CheckSet("input", [SemanticCheck(input_pieces), MeaningCheck(input_pieces), NameCheck(), FactCheck()])


def output_checks() -> CheckSet:
    """Output evidence: meaning (each sentence, in English and other languages), verbatim runs, names and their
    parts, fact values."""
    checks: list[Check] = [
        SemanticCheck(output_pieces),
        MeaningCheck(output_pieces),
        VerbatimCheck(),
        NameCheck(),
        FactCheck(),
    ]
    return CheckSet("output", checks)
