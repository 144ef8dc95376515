"""The durable registry of forget entries: the single source of truth every replica's in-memory index follows.

It holds entries, their chunks and the chunks' embeddings, plus a change log: every write bumps one version
counter in the same transaction and records `(version, op, entry_id)`, so a replica that enforces version v
catches up by replaying the changes after v (`changes_since`). A change is committed before the admin API
acknowledges it. Two backends behind one async interface (`Registry`), chosen by the DSN setting
(`guard.forget.backends.open_registry`):

- `guard.forget.sqlite.SqliteRegistry`: a SQLite file in the index directory (WAL, synchronous=FULL) — the
  embedded default, one machine. Its calls run on a worker thread.
- `guard.forget.postgres.PostgresRegistry`: PostgreSQL through psycopg 3 (async), shared by replicas, which
  learn of changes through LISTEN/NOTIFY.

Writers serialise on the version counter (it is bumped first in each write transaction), so versions are
committed in order, with no gaps, and an entry's chunk ids are contiguous.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from guard.errors import RegistryUnavailable
from guard.forget.embedder import Vectors

__all__ = ["RegistryUnavailable"]  # re-exported: the backends raise it

ENTRY_COLUMNS = "e.id, e.subject, e.aliases, e.policy, e.created_at, e.documents, e.mode"


@dataclass(frozen=True)
class Entry:
    id: str
    subject: str
    aliases: tuple[str, ...]
    policy: str | None
    created_at: float
    documents: int
    chunks: int
    mode: str = "enforce"  # "enforce" or "monitor" (matched and recorded, never blocked)


@dataclass(frozen=True)
class Coverage:
    """An entry a weight-edited model has forgotten by itself (`guard handoff`): requests routed to that model
    treat the entry as its policy's `coverage.mode` says, until the model leaks it again ("reverted")."""

    model: str
    entry_id: str
    state: str  # "covered" or "reverted" (the model leaked it again in live traffic: enforced)
    leak: float | None  # the model's own leak rate on the entry's questions in the report (None: added by hand)
    utility_loss: float | None  # the model's worst drop against the base on the control sets
    report_sha256: str | None
    registry_version: int  # the registry version the report was made at (or the change was made at)
    at: float

    def row(self, model: str) -> tuple[object, ...]:
        """The values of `COVERAGE_COLUMNS`, for `model`."""
        return (
            model,
            self.entry_id,
            self.state,
            self.leak,
            self.utility_loss,
            self.report_sha256,
            self.registry_version,
            self.at,
        )


COVERAGE_COLUMNS = "model, entry_id, state, leak, utility_loss, report_sha256, registry_version, at"


def coverage_from_row(row: Sequence[Any]) -> Coverage:
    leak, loss = row[3], row[4]
    return Coverage(
        row[0],
        row[1],
        row[2],
        None if leak is None else float(leak),
        None if loss is None else float(loss),
        row[5],
        int(row[6]),
        float(row[7]),
    )


@dataclass(frozen=True)
class Operator:
    """A named person or system that may use the admin API, with a role (`guard.admin.operators`). Only the
    SHA-256 of its token is stored; a revoked operator keeps its row, so the audit trail's names stay resolvable."""

    name: str
    role: str  # viewer | editor | admin
    token_sha256: str
    created_at: float
    revoked_at: float | None = None


OPERATOR_COLUMNS = "name, role, token_sha256, created_at, revoked_at"


def operator_from_row(row: Sequence[Any]) -> Operator:
    return Operator(row[0], row[1], row[2], float(row[3]), None if row[4] is None else float(row[4]))


@dataclass(frozen=True)
class Chunk:
    id: int
    entry_id: str
    text: str
    vector: Vectors


@dataclass(frozen=True)
class Change:
    version: int
    op: str  # "add", "remove", "mode" or "coverage" (then entry_id is the model's name)
    entry_id: str
    actor: str | None = None  # who made it (`ACTOR`); None: the guard itself (an automatic coverage revert)


# Who is changing the registry: set by the admin API's authentication for the request (the operator's name), read
# by the backends when they log a change. A context variable, so it follows the request into worker threads.
ACTOR: ContextVar[str | None] = ContextVar("guard_actor", default=None)


def entry_from_row(row: Sequence[Any], chunks: int) -> Entry:
    return Entry(row[0], row[1], tuple(json.loads(row[2])), row[3], float(row[4]), int(row[5]), chunks, row[6])


def vector_of(blob: bytes) -> Vectors:
    return np.frombuffer(blob, dtype=np.float32)


QA = tuple[str, str]  # (question, answer): how a weight-level job (TOFU, open-unlearning) takes its forget set


def qa_to_text(pairs: Sequence[QA]) -> str:
    return json.dumps([[q, a] for q, a in pairs], ensure_ascii=False)


def qa_from_text(text: str) -> list[QA]:
    return [(str(q), str(a)) for q, a in json.loads(text)]


class Snapshot(Protocol):
    """A consistent read-only view of the registry at one version (to load or rebuild the index from)."""

    async def version(self) -> int: ...
    async def entries(self) -> list[Entry]: ...
    async def chunk_count(self) -> int: ...
    async def sample_vectors(self, k: int) -> Vectors: ...
    async def coverage(self) -> list[Coverage]: ...
    async def qa(self) -> dict[str, list[QA]]:
        """The question/answer pairs of the entries that were registered with some (for the export only)."""
        ...

    def chunks(self, batch: int = 10_000, text: bool = True) -> AsyncIterator[list[Chunk]]: ...


class Registry(Protocol):
    backend: str  # "sqlite" or "postgresql"
    dim: int

    async def open(self) -> None:
        """Connect and create or migrate the schema (idempotent)."""
        ...

    async def close(self) -> None: ...
    async def claim_embedder(self, name: str) -> str | None:
        """Record `name` as the embedder of the registry's vectors, unless vectors of another are there: then
        that one's name (and nothing is changed). An empty registry takes any embedder."""
        ...

    async def claim_salt(self, candidate: str) -> str:
        """The salt (hex) every replica hashes log and audit text with: the one recorded, or `candidate`, recorded
        now by the first replica to ask. One salt, so the same subject hashes alike across the fleet."""
        ...

    async def version(self) -> int: ...
    async def add(
        self,
        entry_id: str,
        subject: str,
        aliases: Sequence[str],
        policy: str | None,
        documents: int,
        chunks: Sequence[str],
        vectors: Vectors,
        mode: str = "enforce",
        qa: Sequence[QA] = (),
    ) -> tuple[Entry, list[int], int]:
        """Insert an entry, its chunks and its question/answer pairs in one transaction: the entry, its chunk
        ids, the new version."""
        ...

    async def remove(self, entry_id: str) -> int | None:
        """Delete an entry: the new version, or None if there was no such entry."""
        ...

    async def set_mode(self, entry_id: str, mode: str) -> tuple[Entry, int] | None: ...
    async def set_coverage(
        self, model: str, put: Sequence[Coverage], drop: Sequence[str] = ()
    ) -> tuple[list[Coverage], int]:
        """Record (`put`, replacing a model's row for the same entry) and revoke (`drop`: entry ids) one model's
        coverage in one change: every coverage row afterwards, and the new version."""
        ...

    async def coverage(self) -> list[Coverage]: ...
    async def entries(self, entry_id: str | None = None) -> list[Entry]: ...
    async def entry_chunks(self, entry_id: str) -> tuple[Entry, list[Chunk]] | None: ...
    async def changes_since(self, version: int) -> list[Change]: ...
    async def add_operator(self, operator: Operator) -> bool:
        """Record a new operator; False when the name (or the token) is taken, also by a revoked one."""
        ...

    async def revoke_operator(self, name: str, at: float) -> Operator | None:
        """Revoke an active operator: the revoked row, or None when there is no such active operator."""
        ...

    async def operators(self, token_sha256: str | None = None) -> list[Operator]:
        """Every operator (revoked ones too), or the one holding the token with this hash."""
        ...

    async def compact(self, keep: int) -> int:
        """Prune the change log to its last `keep` versions; how many were pruned. A replica further behind
        finds a gap and reconciles entry by entry (`Sync._reconcile`); one that starts loads a snapshot."""
        ...

    def snapshot(self) -> AbstractAsyncContextManager[Snapshot]: ...
    def notifications(self) -> AsyncIterator[None]:
        """Yields when another process may have changed the registry (and after every reconnect).

        Backends without a notification channel return at once; the follower then only polls.
        """
        ...


class RegistryMismatch(RuntimeError):
    """The registry's vectors were written by another embedder than the one this guard runs."""


def check_vectors(vectors: Vectors, n: int, dim: int) -> None:
    if vectors.shape != (n, dim):
        raise ValueError(f"expected {n} vectors of dim {dim}, got {vectors.shape}")
