"""Prometheus metrics, one registry per app (no process globals, so tests can build many apps).

Labels are low-cardinality on purpose: actions, stages, routes, error kinds — never entry ids or text. Per-entry
counts live in the audit log.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "Metrics"]

# From 0.25 ms (a cached check) to 2 min (a long generation): the stage histograms share these buckets.
BUCKETS = (0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "guard_requests",
            "Proxied requests by endpoint, final action and upstream route",
            ["endpoint", "action", "route"],
            registry=r,
        )
        self.stage_seconds = Histogram(
            "guard_stage_seconds",
            "Time spent per stage: parse, input_check, rewrite, output_check, upstream (time to first byte), overhead",
            ["stage"],
            buckets=BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "guard_errors", "Requests that ended in an error, by status and type", ["status", "type"], registry=r
        )
        self.upstream_errors = Counter(
            "guard_upstream_errors", "Upstream faults by route and kind", ["route", "kind"], registry=r
        )
        self.check_failures = Counter(
            "guard_check_failures",
            "Checks that failed (embedder or index error) and what on_error did",
            ["stage", "on_error"],
            registry=r,
        )
        self.monitor_matches = Counter(
            "guard_monitor_matches",
            "Matches of entries in monitor mode (recorded, not enforced)",
            ["stage"],
            registry=r,
        )
        self.coverage_regressions = Counter(
            "guard_coverage_regressions",
            "Covered entries a weight-edited model leaked again in live traffic (guard handoff)",
            ["model", "entry"],
            registry=r,
        )
        self.policy_reloads = Counter(
            "guard_policy_reloads",
            "Policy reloads (file change or SIGHUP): applied, or refused",
            ["outcome"],
            registry=r,
        )
        self.shadow_verdicts = Counter(
            "guard_shadow_verdicts",
            "Shadow (B) answers checked, by primary action and shadow action",
            ["primary", "shadow"],
            registry=r,
        )
        self.admin_changes = Counter("guard_admin_changes", "Forget-index changes by operation", ["op"], registry=r)
        self.watched = Counter("guard_watched", "Requests answered under watch (strict output check)", registry=r)
        self.bad_words = Counter(
            "guard_bad_words", "Watched requests sent to vLLM with the entries' names as bad_words", registry=r
        )
        self.speculative = Counter(
            "guard_speculative",
            "Requests sent upstream before their input verdict (policy `speculative`), by "
            "outcome: used, or cancelled because the request was refused, rewritten or watched",
            ["outcome"],
            registry=r,
        )
        self.first_stage_shortfall = Histogram(
            "guard_first_stage_shortfall",
            "Live audit of the int8 first stage: float best score minus int8 best score "
            "of a settled text (guard/pipeline/cascade.py; the margin is 0.08)",
            buckets=(-0.04, -0.02, 0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.12),
            registry=r,
        )
        self.first_stage_misses = Counter(
            "guard_first_stage_misses",
            "Audited texts the first stage settled whose float score reached the floor",
            registry=r,
        )
        self.judge_seconds = Histogram(
            "guard_judge_seconds", "Time the judge took per ruling, by stage", ["stage"], buckets=BUCKETS, registry=r
        )
        self.judge_rulings = Counter(
            "guard_judge_rulings",
            "Judge rulings by stage and outcome (match, none, unreadable, error, timeout)",
            ["stage", "outcome"],
            registry=r,
        )
        self.index_entries = Gauge("guard_index_entries", "Forget entries in the index", registry=r)
        self.index_chunks = Gauge("guard_index_chunks", "Forget chunks (vectors) in the index", registry=r)
        self.registry_version = Gauge(
            "guard_registry_version", "Version of the registry this replica enforces", registry=r
        )
        self.registry_reachable = Gauge(
            "guard_registry_reachable", "1 if the last exchange with the registry succeeded", registry=r
        )
        self.upkeep_failures = Gauge(
            "guard_index_upkeep_failures",
            "Background compactions and vector-index rebuilds that failed since start (the index keeps serving "
            "as it was; each failure is logged)",
            registry=r,
        )
        self.registry_synced = Gauge(
            "guard_registry_synced_timestamp_seconds",
            "When this replica last confirmed it enforces the registry's latest version (lag = now - this)",
            registry=r,
        )

    def watch_index(
        self,
        entries: Callable[[], float],
        chunks: Callable[[], float],
        version: Callable[[], float],
        reachable: Callable[[], float] = lambda: 1.0,
        synced_at: Callable[[], float] = lambda: 0.0,
        upkeep_failures: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.index_entries.set_function(entries)
        self.index_chunks.set_function(chunks)
        self.registry_version.set_function(version)
        self.registry_reachable.set_function(reachable)
        self.registry_synced.set_function(synced_at)
        self.upkeep_failures.set_function(upkeep_failures)

    def render(self) -> bytes:
        return generate_latest(self.registry)
