"""`guard handoff`: which forget entries a weight-edited model has forgotten by itself, from a `guard ab` report.

The report (results.json, `guard.eval.ab.FORMAT`) must have been made for this guard (`guard ab --registry`): it
records the registry version and the entry id of each forgotten subject. It is refused when its bytes do not hash
to the SHA-256 given beside it (manifest.json), when it was made at another registry version (the entries may have
changed since), or when it has no unguarded arm serving the model, or no base arm to weigh utility against.

Each entry in it is covered when, per its policy's `coverage` section, the model alone leaked at most `max_leak`
of the entry's questions (the worse of the two leak definitions) over at least `min_questions` of them, and the
model lost at most `max_utility_loss` of ROUGE-L recall against the base on every control set.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from guard.errors import Conflict, ValidationFailed
from guard.forget.coverage import COVERED
from guard.forget.registry import Coverage, Entry
from guard.policy import PolicySet

FORMAT = "forget-guard.ab/1"
CONTROL_SETS = ("retain", "real_authors", "world_facts")


@dataclass(frozen=True)
class Outcome:
    entry_id: str
    covered: bool
    reason: str
    leak: float | None
    questions: int


def read_report(text: str, sha256: str, version: int) -> dict[str, Any]:
    """The report, once its hash, format and registry version are right."""
    if hashlib.sha256(text.encode()).hexdigest() != sha256.lower():
        raise ValidationFailed(
            "report: its SHA-256 does not match the manifest's (changed or truncated)", param="sha256"
        )
    try:
        report = json.loads(text)
    except ValueError as exc:
        raise ValidationFailed(f"report: not JSON ({exc})", param="report") from exc
    if not isinstance(report, dict) or report.get("format") != FORMAT:
        raise ValidationFailed(f"report: not a guard ab report (format {FORMAT!r})", param="report")
    registry = report.get("registry")
    if not isinstance(registry, dict) or not isinstance(registry.get("entries"), dict):
        raise ValidationFailed("report: made without --registry, so it names no entries of this guard", param="report")
    if registry.get("version") != version:
        raise Conflict(
            f"report: made at registry version {registry.get('version')}, the registry is at {version}; "
            "run guard ab --registry again",
            param="report",
        )
    return report


def _arms(report: Mapping[str, Any], model: str) -> tuple[dict[str, Any], dict[str, Any]]:
    raw = [e for e in report.get("endpoints", []) if isinstance(e, dict) and not e.get("guarded")]
    arm = next((e for e in raw if e.get("name") == model), None) or next(
        (e for e in raw if e.get("model") == model), None
    )
    if arm is None:
        served = sorted({str(e.get(k)) for e in raw for k in ("name", "model")})
        raise ValidationFailed(
            f"report: no unguarded arm is named or serves {model!r} (it has {served})", param="model"
        )
    base = next((e for e in raw if e.get("name") == "base" and e is not arm), None)
    base = base or next((e for e in raw if e is not arm), None)
    if base is None:
        raise ValidationFailed(
            "report: no base arm (another unguarded endpoint) to weigh utility against", param="report"
        )
    return arm, base


def utility_loss(arm: Mapping[str, Any], base: Mapping[str, Any]) -> float:
    """The worst drop of ROUGE-L recall against the base over the control sets both arms answered."""
    drops = [
        float(base["sets"][s]["rouge_recall_mean"]) - float(arm["sets"][s]["rouge_recall_mean"])
        for s in CONTROL_SETS
        if s in arm.get("sets", {}) and s in base.get("sets", {})
    ]
    if not drops:
        raise ValidationFailed(
            "report: no control set (retain, real authors, world facts) in both arms", param="report"
        )
    return max(drops)


def assess(
    report: Mapping[str, Any], model: str, entries: Mapping[str, Entry], policies: PolicySet
) -> tuple[list[Outcome], float]:
    """Per entry named in the report: covered or not, and why; and the model's utility loss."""
    arm, base = _arms(report, model)
    loss = utility_loss(arm, base)
    subjects: Mapping[str, Any] = arm.get("subjects") or {}
    out: list[Outcome] = []
    for subject, entry_id in sorted(report["registry"]["entries"].items(), key=lambda kv: str(kv[1])):
        entry = entries.get(str(entry_id))
        figures = subjects.get(subject)
        if entry is None:
            out.append(Outcome(str(entry_id), False, "not in the registry", None, 0))
            continue
        if not isinstance(figures, dict):
            out.append(Outcome(entry.id, False, "the report has no questions about it", None, 0))
            continue
        limits = policies.for_entry(entry).coverage
        n = int(figures.get("n", 0))
        leak = max(float(figures.get("leak_keyfact", 1.0)), float(figures.get("leak_rouge", 1.0)))
        if n < limits.min_questions:
            reason = f"{n} questions, fewer than {limits.min_questions}"
        elif leak > limits.max_leak:
            reason = f"leaked {leak:.1%} of its questions (limit {limits.max_leak:.1%})"
        elif loss > limits.max_utility_loss:
            reason = f"utility loss {loss:.3f} (limit {limits.max_utility_loss:.3f})"
        else:
            out.append(Outcome(entry.id, True, "within the limits", leak, n))
            continue
        out.append(Outcome(entry.id, False, reason, leak, n))
    return out, loss


def rows(model: str, outcomes: list[Outcome], loss: float, sha256: str, version: int) -> list[Coverage]:
    """The coverage rows of the covered outcomes."""
    now = time.time()
    return [
        Coverage(model, o.entry_id, COVERED, o.leak, loss, sha256.lower(), version, now) for o in outcomes if o.covered
    ]
