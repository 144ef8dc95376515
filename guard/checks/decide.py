"""From evidence to a verdict: each entry's policy says which evidence counts and what it leads to.

Input: evidence that counts for an enforced entry refuses the request, or rewrites it when every such entry's
policy says `rewrite`; weaker evidence (meaning above the watch threshold, a part of a name, two fact values)
puts the conversation under watch for the entry. Output: evidence that counts filters the text; for a watched
entry more counts (see `Watch`). Evidence for a monitored entry is kept aside (recorded, never enforced).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from guard.checks.evidence import ALLOW, Action, Evidence, Verdict, Watch
from guard.forget.view import IndexView
from guard.policy import InputAction, InputPolicy, OutputPolicy, PolicySet

Stage = Literal["input", "output"]


def counts(evidence: Evidence, policy: InputPolicy | OutputPolicy) -> bool:
    if evidence.kind == "semantic":
        return policy.semantic and evidence.score >= policy.semantic_threshold
    if evidence.kind == "meaning":
        return policy.semantic and evidence.score >= policy.multilingual_threshold
    if evidence.kind == "lexical":
        return policy.lexical
    if evidence.kind == "verbatim":
        return isinstance(policy, OutputPolicy) and policy.verbatim and evidence.score >= 1
    return False


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
    strong = evidence.entry_id in watch.strong
    if evidence.kind == "part" or (evidence.kind == "fact" and strong):
        return bool(evidence.words - watch.echo)
    if evidence.kind == "semantic":
        threshold = policy.watch_strong_threshold if strong else policy.watch_threshold
        return policy.semantic and evidence.score >= threshold
    if evidence.kind == "meaning":
        threshold = policy.multilingual_watch_strong_threshold if strong else policy.multilingual_watch_threshold
        return policy.semantic and evidence.score >= threshold
    return evidence.kind == "unnatural" and strong


def decide(
    stage: Stage, evidence: Iterable[Evidence], policies: PolicySet, view: IndexView, watch: Watch | None = None
) -> Verdict:
    """Run on the index's reader thread (entries are looked up in `view`)."""
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
        if counts(e, policy.input if stage == "input" else policy.output) or (
            strict and watch is not None and counts_watched(e, policy.output, watch)
        ):
            key = (e.entry_id, e.kind)
            if key not in kept or e.score > kept[key].score:
                kept[key] = e
        elif stage == "input" and watches(e, policy.input) and not policies.monitored(entry):
            if e.kind not in ("semantic", "meaning"):
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
    refuse = any(policies.for_entry(view.get(e.entry_id)).input.action is InputAction.refuse for e in enforced)
    action = Action.refuse if refuse else Action.rewrite
    return Verdict(action, enforced, monitored, watched=frozenset(watched), strong=frozenset(strong))
