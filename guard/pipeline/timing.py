"""Where the time of a request goes (guard vs upstream) and which upstream faults happened, as metrics."""

from __future__ import annotations

import time

from guard.checks.evidence import Action
from guard.errors import UpstreamError
from guard.observe.metrics import Metrics


class Meter:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def upstream_ms(self, since: float) -> float:
        seconds = time.perf_counter() - since
        self.metrics.stage_seconds.labels("upstream").observe(seconds)
        return seconds * 1000.0

    def overhead_ms(self, started: float, upstream_ms: float) -> float:
        """The time the guard added so far (everything but waiting for the upstream), recorded as a stage."""
        ms = (time.perf_counter() - started) * 1000.0 - upstream_ms
        self.metrics.stage_seconds.labels("overhead").observe(ms / 1000.0)
        return ms

    def count(self, endpoint: str, action: Action, route: str) -> None:
        """A request done, by what was done with it and which upstream answered ("none": refused)."""
        self.metrics.requests.labels(endpoint, action.value, route).inc()

    def faults(self, route: str) -> CountFaults:
        return CountFaults(self.metrics, route)


class CountFaults:
    """Count upstream faults by route and kind as they pass (they are raised on unchanged)."""

    def __init__(self, metrics: Metrics, route: str) -> None:
        self.metrics = metrics
        self.route = route

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, UpstreamError):
            self.metrics.upstream_errors.labels(self.route, exc.error_type).inc()
