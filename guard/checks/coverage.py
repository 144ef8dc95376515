"""Verdicts for a request routed to a weight-edited model that covers some entries (`guard handoff`).

A covered entry whose policy says `coverage.mode: monitor` is not enforced for that model: its input evidence is
recorded as monitored and the model answers (it has forgotten the entry by itself; the A/B report showed it). The
output check still reads the answer on the normal scale (not under watch): evidence that carries the entry's facts
there (meaning, verbatim runs) is a *regression*, the model leaking again. A name alone is not: the model repeats
the name it was asked about. Per policy (`coverage.auto_revert`) a regression's answer is filtered and the entry
is enforced again for the model; either way the caller counts and records it.
"""

from __future__ import annotations

from dataclasses import dataclass

from guard.checks.decide import input_action
from guard.checks.evidence import Action, Evidence, Verdict
from guard.forget.coverage import CoverageMap
from guard.forget.view import IndexView
from guard.policy import Mode, PolicySet

REGRESSION_KINDS = frozenset({"semantic", "meaning", "verbatim"})  # evidence that the answer holds the facts


@dataclass(frozen=True)
class Regression:
    entry_id: str
    revert: bool  # auto_revert: this answer was filtered and the entry is to be enforced again for the model


def _left_to_model(model: str, entry_id: str, coverage: CoverageMap, policies: PolicySet, view: IndexView) -> bool:
    """Whether the entry is covered by the model and its policy leaves it to the model (`coverage.mode: monitor`)."""
    entry = view.get(entry_id)
    return (
        entry is not None
        and coverage.covered(model, entry_id)
        and policies.for_entry(entry).coverage.mode is Mode.monitor
    )


def relax_input(
    verdict: Verdict, model: str | None, coverage: CoverageMap, policies: PolicySet, view: IndexView
) -> Verdict:
    """The input verdict with the model's covered entries monitored instead of enforced (and not watched)."""
    if not model or not len(coverage) or verdict.failed:
        return verdict
    named = {m.entry_id for m in verdict.matches} | verdict.watched | verdict.near | verdict.asked
    left = {e for e in named if _left_to_model(model, e, coverage, policies, view)}
    if not left:
        return verdict
    moved = tuple(m for m in verdict.matches if m.entry_id in left)
    kept = tuple(m for m in verdict.matches if m.entry_id not in left)
    watched = verdict.watched - left
    action = verdict.action
    if kept and action in (Action.refuse, Action.rewrite):
        action = input_action((m.entry_id for m in kept), policies, view)
    elif not kept:
        action = Action.allow
    return Verdict(
        action,
        kept,
        verdict.monitored + moved,
        watched=watched,
        strong=verdict.strong & watched,
        near=verdict.near - left,
        asked=verdict.asked - left,
        namesakes=verdict.namesakes & watched,
    )


def relax_output(
    verdict: Verdict, model: str | None, coverage: CoverageMap, policies: PolicySet, view: IndexView
) -> tuple[Verdict, list[Regression]]:
    """The output verdict with the model's covered entries monitored, and the regressions among them."""
    if not model or not len(coverage) or verdict.failed or not verdict.matches:
        return verdict, []
    by_entry: dict[str, list[Evidence]] = {}
    for m in verdict.matches:
        by_entry.setdefault(m.entry_id, []).append(m)
    kept: list[Evidence] = []
    moved: list[Evidence] = []
    regressions: list[Regression] = []
    for entry_id, evidence in by_entry.items():
        if not _left_to_model(model, entry_id, coverage, policies, view):
            kept += evidence
            continue
        if any(e.kind in REGRESSION_KINDS for e in evidence):
            entry = view.get(entry_id)
            revert = entry is not None and policies.for_entry(entry).coverage.auto_revert
            regressions.append(Regression(entry_id, revert))
            if revert:
                kept += evidence
                continue
        moved += evidence
    if not moved:
        return verdict, regressions
    action = Action.filter if kept else Action.allow
    return Verdict(action, tuple(kept), verdict.monitored + tuple(moved)), regressions
