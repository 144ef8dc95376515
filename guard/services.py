"""The parts a running app is made of, built in `create_app`'s lifespan and reached by the routes through one
typed look-up (`services(request)`) instead of untyped `app.state` attributes."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from guard.forget.index import ForgetIndex
from guard.observe.audit import AuditLog, Hasher
from guard.observe.metrics import Metrics
from guard.pipeline.guard import Guard
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


def services(request: Request) -> Services:
    found: Services = request.app.state.services  # set before the app accepts its first request
    return found
