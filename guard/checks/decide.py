"""From evidence to a verdict: each entry's policy says which evidence counts and what it leads to.

Input: evidence that counts for an enforced entry refuses the request, or rewrites it when every such entry's
policy says `rewrite`. Output: it filters the text. Evidence for a monitored entry is kept aside (recorded,
never enforced).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from guard.checks.evidence import ALLOW, Action, Evidence, Verdict
from guard.forget.view import IndexView
from guard.policy import InputAction, InputPolicy, OutputPolicy, PolicySet

Stage = Literal["input", "output"]


def counts(evidence: Evidence, policy: InputPolicy | OutputPolicy) -> bool:
    if evidence.kind == "semantic":
        return policy.semantic and evidence.score >= policy.semantic_threshold
    if evidence.kind == "lexical":
        return policy.lexical
    if evidence.kind == "verbatim":
        return isinstance(policy, OutputPolicy) and policy.verbatim and evidence.score >= 1
    return False


def decide(stage: Stage, evidence: Iterable[Evidence], policies: PolicySet, view: IndexView) -> Verdict:
    """Run on the index's reader thread (entries are looked up in `view`)."""
    kept: dict[tuple[str, str], Evidence] = {}
    for e in evidence:
        entry = view.get(e.entry_id)
        if entry is None:
            continue
        policy = policies.for_entry(entry)
        if counts(e, policy.input if stage == "input" else policy.output):
            key = (e.entry_id, e.kind)
            if key not in kept or e.score > kept[key].score:
                kept[key] = e
    if not kept:
        return ALLOW
    ordered = sorted(kept.values(), key=lambda e: (e.entry_id, e.kind))
    monitored = tuple(e for e in ordered if policies.monitored(view.get(e.entry_id)))
    enforced = tuple(e for e in ordered if e not in monitored)
    if not enforced:
        return Verdict(Action.allow, (), monitored)
    if stage == "output":
        return Verdict(Action.filter, enforced, monitored)
    refuse = any(policies.for_entry(view.get(e.entry_id)).input.action is InputAction.refuse for e in enforced)
    return Verdict(Action.refuse if refuse else Action.rewrite, enforced, monitored)
