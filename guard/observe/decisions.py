"""Where a verdict goes: the decision log, the audit trail and the metrics — ids, scores and hashes only.

The text a verdict was about is hashed with the installation's salt (so equal prompts can be correlated) and is
written out only when an operator turned `log_content` on.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from guard.checks.evidence import Action, Verdict
from guard.observe.audit import AuditLog, Hasher
from guard.observe.metrics import Metrics

log = logging.getLogger("guard.decisions")

RECENT = 200  # notable decisions kept in memory for the console


@dataclass
class Decisions:
    metrics: Metrics
    hasher: Hasher
    audit: AuditLog | None = None
    log_content: bool = False
    # for the console: this replica's notable decisions (metadata only) and, per entry, how often each action
    # fell on it ("monitor" for a match in monitor mode) since the replica started
    recent: deque[dict[str, object]] = field(default_factory=lambda: deque(maxlen=RECENT))
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)

    def record(
        self,
        request_id: str,
        stage: str,
        verdict: Verdict,
        text: str | None = None,
        *,
        client: str | None = None,
    ) -> None:
        fields: dict[str, object] = {"request_id": request_id, "stage": stage, **verdict.summary()}
        if client is not None:
            fields["client"] = client
        if text is not None:
            fields["text_hash"] = self.hasher(text)
        if verdict.monitored:
            self.metrics.monitor_matches.labels(stage).inc()
        notable = verdict.action is not Action.allow or bool(verdict.monitored) or verdict.failed
        if notable:
            self._tally(verdict, fields)
            if self.audit is not None:
                self.audit.write("decision", fields)
        if self.log_content and text is not None:
            fields["text"] = text
        log.info("decision", extra=fields)

    def _tally(self, verdict: Verdict, fields: dict[str, object]) -> None:
        self.recent.appendleft({"time": time.time(), **fields})
        for entry in {e.entry_id for e in verdict.matches}:
            self.counts.setdefault(entry, Counter())[verdict.action.value] += 1
        for entry in {e.entry_id for e in verdict.monitored}:
            self.counts.setdefault(entry, Counter())["monitor"] += 1
