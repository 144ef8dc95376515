"""Which entries each weight-edited model covers, as this replica enforces them (`guard handoff`).

The rows come from the registry (`Registry.set_coverage`, replayed like every change); a regression seen in live
traffic may revert a row here at once, before the registry write that replicates it has landed. Reads come from
the event loop and the reader thread alike: the mapping is replaced whole, never changed in place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from guard.forget.registry import Coverage

COVERED = "covered"
REVERTED = "reverted"


class CoverageMap:
    def __init__(self) -> None:
        self._rows: Mapping[tuple[str, str], Coverage] = {}
        self._pending: frozenset[tuple[str, str]] = frozenset()  # reverted here, not yet seen so in the registry

    def replace(self, rows: Iterable[Coverage]) -> None:
        """The registry's rows, as read after a change. A revert made here holds until the registry has it: a
        replay of older rows must not make the model trusted again."""
        fresh = {(c.model, c.entry_id): c for c in rows}
        pending = frozenset(k for k in self._pending if k in fresh and fresh[k].state == COVERED)
        for key in pending:
            fresh[key] = dataclasses.replace(fresh[key], state=REVERTED)
        self._rows, self._pending = fresh, pending

    def covered(self, model: str | None, entry_id: str) -> bool:
        """Whether `model` has forgotten the entry by itself (and has not leaked it since)."""
        if not model or not self._rows:
            return False
        row = self._rows.get((model, entry_id))
        return row is not None and row.state == COVERED

    def revert(self, model: str, entry_id: str) -> Coverage | None:
        """Enforce the entry again for the model on this replica now; the reverted row (None if it was not
        covered)."""
        row = self._rows.get((model, entry_id))
        if row is None or row.state != COVERED:
            return None
        reverted = dataclasses.replace(row, state=REVERTED)
        self._pending |= {(model, entry_id)}
        self._rows = {**self._rows, (model, entry_id): reverted}
        return reverted

    def rows(self, model: str | None = None) -> list[Coverage]:
        return [c for c in self._rows.values() if model is None or c.model == model]

    def drop_entry(self, entry_id: str) -> None:
        """An entry removed: its rows went with it (ON DELETE CASCADE in the registry)."""
        if any(e == entry_id for _, e in self._rows):
            self._rows = {k: c for k, c in self._rows.items() if k[1] != entry_id}

    def __len__(self) -> int:
        return len(self._rows)
