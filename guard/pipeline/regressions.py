"""The hand-off's live watch: a weight-edited model that leaks an entry it was said to cover (`guard handoff`).

The output check finds the regressions (`guard.checks.coverage.relax_output`); this counts and logs them, and,
where the entry's policy says `coverage.auto_revert`, enforces the entry again for that model: at once on this
replica, then in the registry for every replica (retried while the registry is unreachable).
"""

from __future__ import annotations

import asyncio
import logging

from guard.checks.coverage import Regression
from guard.context import RequestContext
from guard.forget.index import ForgetIndex
from guard.forget.registry import Coverage
from guard.observe.decisions import Decisions

log = logging.getLogger("guard.pipeline")

TRIES = 6  # registry writes of one revert, 1 s apart and doubling (about a minute in all)


class CoverageWatch:
    def __init__(self, index: ForgetIndex, decisions: Decisions, tries: int = TRIES) -> None:
        self.index = index
        self.decisions = decisions
        self.tries = tries
        self._reverts: set[asyncio.Task[None]] = set()  # reverts being written to the registry

    def regressed(self, ctx: RequestContext, regressions: list[Regression]) -> None:
        """A covered entry leaked by its model: counted and logged; reverted when its policy says so."""
        for r in regressions:
            self.decisions.metrics.coverage_regressions.labels(ctx.model, r.entry_id).inc()
            fields = {"request_id": ctx.request_id, "model": ctx.model, "entry": r.entry_id, "reverted": r.revert}
            log.warning("coverage regression", extra=fields)
            if self.decisions.audit is not None:
                self.decisions.audit.write("coverage.regression", fields)
            row = self.index.memory.coverage.revert(ctx.model, r.entry_id) if r.revert else None
            if row is not None:
                task = asyncio.create_task(self._record(row))
                self._reverts.add(task)
                task.add_done_callback(self._reverts.discard)

    async def _record(self, row: Coverage) -> None:
        """Write a revert to the registry, for every replica (enforced here meanwhile)."""
        error = ""
        for attempt in range(self.tries):
            try:
                await self.index.set_coverage(row.model, [row])
                return
            except Exception as exc:
                error = type(exc).__name__
            await asyncio.sleep(2.0**attempt)
        fields = {"model": row.model, "entry": row.entry_id, "error": error}
        log.error("coverage revert not recorded in the registry; enforced on this replica only", extra=fields)

    def close(self) -> None:
        """Given up at shutdown: the registry still says covered until the next regression."""
        if self._reverts:
            log.error("coverage reverts not written to the registry at shutdown", extra={"reverts": len(self._reverts)})
        for task in self._reverts:
            task.cancel()
