"""From evidence to a verdict: each entry's policy says which evidence counts and what it leads to.

Input: evidence that counts for an enforced entry refuses the request, or rewrites it when every such entry's
policy says `rewrite`. Two weaker kinds that point at the same entry count together ("described": one of its rare
fact values, and meaning that makes it the closest entry; see `described`). Weaker evidence (meaning above the
watch threshold, a part of a name, two fact values) puts the conversation under watch for the entry.
Output: evidence that counts filters the text; for a watched entry more counts (see `Watch`).
Evidence for a monitored entry is kept aside (recorded, never enforced).

A passage's statements (kinds "passage", "passage-meaning"; see `guard.checks.conversation`) are weighed on the
statement scale: they count when two of them reach the output threshold (where a generated sentence would be
blocked: one such sentence is what a long near-domain passage has by chance, and the output check still stops the
model from repeating it), and watch from the input threshold (where a question would be refused).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Literal

from guard.checks.answers import telling
from guard.checks.evidence import ALLOW, Action, Evidence, Verdict, Watch
from guard.forget.facts import rare
from guard.forget.view import IndexView
from guard.policy import InputAction, InputPolicy, OutputPolicy, Policy, PolicySet

Stage = Literal["input", "output"]
PASSAGE_KINDS = ("passage", "passage-meaning")
QA_KINDS = ("qa", "qa-meaning")  # an answer read with its question: counts under watch or near (`counts_watched`)
ASKED_MOST = 3  # entries an answer is read against (`asked`)


def counts(evidence: Evidence, policy: InputPolicy | OutputPolicy) -> bool:
    if evidence.kind == "semantic":
        return policy.semantic and evidence.score >= policy.semantic_threshold
    if evidence.kind == "meaning":
        return policy.semantic and evidence.score >= policy.multilingual_threshold
    if evidence.kind == "lexical":
        return policy.lexical
    if evidence.kind == "verbatim":
        return isinstance(policy, OutputPolicy) and policy.verbatim and evidence.score >= 1
    return evidence.kind == "described" and isinstance(policy, InputPolicy) and policy.semantic


def passage_counts(evidence: Evidence, policy: Policy) -> bool:
    """A passage counts where two of its statements, generated, would be blocked."""
    kind = "semantic" if evidence.kind == "passage" else "meaning"
    return counts(Evidence(evidence.entry_id, kind, evidence.second), policy.output)


def passage_watches(evidence: Evidence, policy: Policy) -> bool:
    """A passage's statement watches where the same sentence, asked, would be refused."""
    kind = "semantic" if evidence.kind == "passage" else "meaning"
    return counts(Evidence(evidence.entry_id, kind, evidence.score), policy.input)


def floors(policies: PolicySet) -> tuple[float, float]:
    """The lowest MiniLM score that counts or watches under any policy of the set: for a question or a generated
    sentence, and for a passage's statement (weighed on the statement scale: `passage_counts`,
    `passage_watches`). A text whose best score is below its floor cannot change a verdict
    (`guard.pipeline.cascade` relies on this). Not `input.asked_threshold`: it decides which entries an answer
    is read against, not a verdict, and may read a first-stage score (within `cascade.MARGIN` of the float one);
    the answer's evidence is what counts."""
    every = [(p.input, p.output) for p in policies.all()]
    lines = (
        (
            i.semantic_threshold,
            i.watch_threshold,
            i.described_threshold,
            o.semantic_threshold,
            o.watch_threshold,
            o.watch_strong_threshold,
            o.qa_threshold,
            i.near_threshold,
        )
        for i, o in every
    )
    piece = min(min(scores) for scores in lines)
    passage = min(min(i.semantic_threshold, o.semantic_threshold) for i, o in every)
    return piece, passage


def watches(evidence: Evidence, policy: InputPolicy) -> bool:
    """Input evidence too weak to act on, strong enough to watch the conversation for the entry."""
    if evidence.kind == "semantic":
        return policy.semantic and evidence.score >= policy.watch_threshold
    if evidence.kind == "meaning":
        return policy.semantic and evidence.score >= policy.multilingual_watch_threshold
    if evidence.kind == "part":
        return policy.lexical
    if evidence.kind == "fact":
        return evidence.score >= policy.watch_facts
    return False


def counts_watched(evidence: Evidence, policy: OutputPolicy, watch: Watch) -> bool:
    """Output evidence that counts for an entry the conversation is watched for."""
    if evidence.kind in QA_KINDS:  # the answer with its question: as that question, so answered, at input
        threshold = policy.qa_threshold if evidence.kind == "qa" else policy.multilingual_qa_threshold
        return policy.semantic and evidence.score >= threshold
    strong = evidence.entry_id in watch.strong
    if evidence.kind == "part" or (evidence.kind == "fact" and (strong or evidence.entry_id in watch.namesakes)):
        return bool(evidence.words - watch.echo)
    if evidence.kind == "semantic":
        threshold = policy.watch_strong_threshold if strong else policy.watch_threshold
        return policy.semantic and evidence.score >= threshold
    if evidence.kind == "meaning":
        threshold = policy.multilingual_watch_strong_threshold if strong else policy.multilingual_watch_threshold
        return policy.semantic and evidence.score >= threshold
    return evidence.kind == "unnatural" and strong


def described(evidence: list[Evidence], policies: PolicySet, view: IndexView) -> list[Evidence]:
    """Input evidence of a subject described without its name ("the writer born in Kuwait City in 1956"): an
    entry with one of its numbers in the request (a year, a count; in any script's digits) that is also the
    closest entry by meaning at its policy's described threshold. Each alone is common (retain authors share
    years; an author question is close to every author's sentences); together they single one out. Rare words
    do not count here: with few entries a word like "LGBTQ" is one entry's alone, yet many authors' questions
    carry it (6 of 500 French retain questions were refused that way)."""
    facts = {e.entry_id: e for e in evidence if e.kind == "fact" and any(w.isdigit() for w in e.words)}
    if not facts:
        return []
    out: list[Evidence] = []
    for kind in ("semantic", "meaning"):
        scored = [e for e in evidence if e.kind == kind]
        closest = max(scored, key=lambda e: e.score, default=None)
        entry = view.get(closest.entry_id) if closest is not None else None
        if closest is None or entry is None or closest.entry_id not in facts:
            continue
        policy = policies.for_entry(entry).input
        threshold = policy.described_threshold if kind == "semantic" else policy.multilingual_described_threshold
        if closest.score >= threshold:
            fact = facts[closest.entry_id]
            out.append(Evidence(closest.entry_id, "described", closest.score, closest.where, fact.words))
    return out


def namesakes(evidence: list[Evidence], policies: PolicySet, view: IndexView) -> frozenset[str]:
    """The entries a conversation names but describes someone else by: `input.namesake_details` or more details
    the entry's documents never use, none that they do (kind "identity", `guard.checks.identity`)."""
    others: set[str] = set()
    for e in evidence:
        entry = view.get(e.entry_id) if e.kind == "identity" else None
        least = policies.for_entry(entry).input.namesake_details if entry is not None else 0
        if least and e.score >= least and not e.second:
            others.add(e.entry_id)
    return frozenset(others)


def input_action(entry_ids: Iterable[str], policies: PolicySet, view: IndexView) -> Action:
    """What enforced input evidence for these entries leads to: a refusal when any of their policies refuses, a
    rewrite when every one says `rewrite`. The one place this rule is written."""
    refuse = any(policies.for_entry(view.get(e)).input.action is InputAction.refuse for e in entry_ids)
    return Action.refuse if refuse else Action.rewrite


def decide(
    stage: Stage, evidence: Iterable[Evidence], policies: PolicySet, view: IndexView, watch: Watch | None = None
) -> Verdict:
    """Run on the index's reader thread (entries are looked up in `view`)."""
    evidence = list(evidence)
    others = namesakes(evidence, policies, view) if stage == "input" else frozenset()
    if others:  # the name read as a part of a name: it watches, it does not refuse
        evidence = [replace(e, kind="part") if e.kind == "lexical" and e.entry_id in others else e for e in evidence]
    if stage == "output" and watch is not None and watch.namesakes:  # the client's namesake, named back
        evidence = [e for e in evidence if not (e.kind == "lexical" and e.entry_id in watch.namesakes)]
    verdict = _decide(stage, evidence, policies, view, watch)
    if others and verdict.action is Action.allow:  # watched, not strongly: their names make any sentence near
        verdict = replace(verdict, namesakes=others & verdict.watched, strong=verdict.strong - others)
    if stage == "input" and verdict.action is Action.allow:
        found = nearest(evidence, policies, view)
        if found is not None and found not in verdict.watched:
            verdict = replace(verdict, near=frozenset({found}))
        verdict = replace(verdict, asked=asked(evidence, policies, view))
    return verdict


def asked(evidence: Iterable[Evidence], policies: PolicySet, view: IndexView) -> frozenset[str]:
    """The entries a question comes near enough (`input.asked_threshold`, the `ASKED_MOST` closest) that its
    answer's new words are looked for in their sentences (kind "answer", `guard.checks.answers`)."""
    scored: list[tuple[float, str]] = []
    for e in evidence:
        entry = view.get(e.entry_id) if e.kind == "semantic" else None
        if (
            entry is not None
            and not policies.monitored(entry)
            and e.score >= policies.for_entry(entry).input.asked_threshold
        ):
            scored.append((e.score, e.entry_id))
    return frozenset(entry_id for _, entry_id in sorted(scored, reverse=True)[:ASKED_MOST])


def answer_counts(evidence: Evidence, policy: OutputPolicy, watch: Watch | None) -> bool:
    """An answer whose new words are the entry's, for a question that came near it ("answer", "answer-any"), or,
    whatever the question came near, stand in one of its sentences with rare values ("answer-located":
    `output.located_rare`, `output.located_asked`). Words the client wrote anywhere in the conversation (a passage
    it gave) are not the entry's to leak: they count out."""
    if watch is None or evidence.kind not in ("answer", "answer-any", "answer-located"):
        return False
    if evidence.kind == "answer-located":  # what its sentence says, whatever the question came near
        kept = evidence.words - watch.echo
        share = evidence.score * len(kept) / len(evidence.words) if evidence.words else 0.0
        # rare: a word outside the 5,000 most frequent, a number of three digits or more (not "000" of "10,000")
        telling_ones = {w for w in rare(kept) if not w.isdigit() or telling(w, set())}
        if share < policy.answer_coverage or not telling_ones:
            return False
        many = 0 < policy.located_rare <= min(len(telling_ones), evidence.values)
        return many or 0 < policy.located_asked <= evidence.second
    about = watch.entries - watch.namesakes  # entries the conversation is about (not a namesake of theirs)
    if evidence.entry_id not in (watch.asked | watch.entries if evidence.kind == "answer" else about):
        return False  # "answer-any" (in any sentence retrieved) only where the conversation is about the entry
    told = evidence.words - watch.echo
    share = evidence.score * len(told) / len(evidence.words) if evidence.words else 0.0
    return policy.answer_coverage > 0 and bool(told) and share >= policy.answer_coverage


def nearest(evidence: Iterable[Evidence], policies: PolicySet, view: IndexView) -> str | None:
    """The entry a question comes near by meaning (the closest one, at its policy's `near_threshold`): the answer
    will be read with the question for it (`counts_watched`, kind "qa"). A question alone says little of what
    the client learns: "Who wanted more unmanned tests of the LM?" is 0.60 from the Apollo program's sentences,
    and 0.74 with its answer "Grumman." (issue 35)."""
    closest = max((e for e in evidence if e.kind == "semantic"), key=lambda e: e.score, default=None)
    entry = view.get(closest.entry_id) if closest is not None else None
    if closest is None or entry is None or policies.monitored(entry):
        return None
    return closest.entry_id if closest.score >= policies.for_entry(entry).input.near_threshold else None


def _decide(
    stage: Stage, evidence: list[Evidence], policies: PolicySet, view: IndexView, watch: Watch | None
) -> Verdict:
    if stage == "input":
        evidence += described(evidence, policies, view)
    kept: dict[tuple[str, str], Evidence] = {}
    watched: set[str] = set()
    strong: set[str] = set()
    closest: Evidence | None = None  # meaning alone watches only the closest entry, not every look-alike
    for e in evidence:
        entry = view.get(e.entry_id)
        if entry is None:
            continue
        policy = policies.for_entry(entry)
        strict = stage == "output" and watch is not None and e.entry_id in watch.entries
        read_with_question = watch is not None and e.kind in QA_KINDS and e.entry_id in watch.near
        passage = e.kind in PASSAGE_KINDS
        if (
            passage_counts(e, policy) if passage else counts(e, policy.input if stage == "input" else policy.output)
        ) or (
            ((strict or read_with_question) and watch is not None and counts_watched(e, policy.output, watch))
            or (stage == "output" and answer_counts(e, policy.output, watch))
        ):
            key = (e.entry_id, e.kind)
            if key not in kept or e.score > kept[key].score:
                kept[key] = e
        elif (
            stage == "input"
            and (passage_watches(e, policy) if passage else watches(e, policy.input))
            and not policies.monitored(entry)
        ):
            if e.kind not in ("semantic", "meaning", *PASSAGE_KINDS):
                watched.add(e.entry_id)
                strong.add(e.entry_id)
            elif closest is None or e.score > closest.score:
                closest = e
    if closest is not None:
        watched.add(closest.entry_id)
    if not kept:
        return Verdict(Action.allow, watched=frozenset(watched), strong=frozenset(strong)) if watched else ALLOW
    ordered = sorted(kept.values(), key=lambda e: (e.entry_id, e.kind))
    monitored = tuple(e for e in ordered if policies.monitored(view.get(e.entry_id)))
    enforced = tuple(e for e in ordered if e not in monitored)
    watched -= {e.entry_id for e in enforced}
    strong &= watched
    if not enforced:
        return Verdict(Action.allow, (), monitored, watched=frozenset(watched), strong=frozenset(strong))
    if stage == "output":
        return Verdict(Action.filter, enforced, monitored)
    action = input_action((e.entry_id for e in enforced), policies, view)
    return Verdict(action, enforced, monitored, watched=frozenset(watched), strong=frozenset(strong))
