"""Where a verdict goes: the decision log, the audit trail and the metrics — ids, scores and hashes only.

The text a verdict was about is hashed with the installation's salt (so equal prompts can be correlated) and is
written out only when an operator turned `log_content` on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from guard.checks.evidence import Action, Verdict
from guard.observe.audit import AuditLog, Hasher
from guard.observe.metrics import Metrics

log = logging.getLogger("guard.decisions")


@dataclass
class Decisions:
    metrics: Metrics
    hasher: Hasher
    audit: AuditLog | None = None
    log_content: bool = False

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
        if notable and self.audit is not None:
            self.audit.write("decision", fields)
        if self.log_content and text is not None:
            fields["text"] = text
        log.info("decision", extra=fields)
