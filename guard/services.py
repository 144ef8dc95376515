"""The parts a running app is made of, built in `create_app`'s lifespan and reached by the routes through one
typed look-up (`services(request)`) instead of untyped `app.state` attributes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from starlette.requests import Request

from guard.forget.index import ForgetIndex
from guard.observe.audit import AuditLog, Hasher
from guard.observe.decisions import Decisions
from guard.observe.metrics import Metrics
from guard.pipeline.guard import Guard
from guard.pipeline.recall import Recall
from guard.policy import PolicySet
from guard.policy_watch import PolicyWatcher
from guard.settings import Settings


@dataclass(frozen=True)
class Services:
    settings: Settings
    policies: PolicySet
    metrics: Metrics
    index: ForgetIndex
    guard: Guard
    audit: AuditLog
    hasher: Hasher
    watcher: PolicyWatcher  # policy hot reload, and its status for /healthz
    decisions: Decisions  # where verdicts go; keeps this replica's recent ones for the console
    recall: Recall = field(default_factory=Recall)  # a gateway's calls between their two checks

    def health(self) -> dict[str, object]:
        """/healthz (and the console): from memory only, so a replica keeps enforcing (and stays in the load
        balancer) while the registry is down. Upstreams by count only: their URLs are internal topology."""
        index, now = self.index, time.monotonic()
        backends = self.guard.router.a.backends()
        return {
            "status": "ok" if index.reachable else "degraded",
            "entries": len(index),
            "chunks": index.chunk_count,
            "registry_version": index.version,
            "upstreams": {
                "up": sum(b.healthy(now) for b in backends),
                "down": sum(not b.healthy(now) for b in backends),
            },
            "registry": {
                "backend": index.registry.backend,
                "reachable": index.reachable,
                "synced_seconds_ago": round(max(0.0, time.time() - index.synced_at), 3),
            },
            "policies": self.watcher.status(),  # a refused reload says why here
        }


def services(request: Request) -> Services:
    found: Services = request.app.state.services  # set before the app accepts its first request
    return found
