"""The registry on PostgreSQL (psycopg 3, async): one database shared by every guard replica.

- Schema: created or migrated on open, under an advisory lock so replicas starting together do not race;
  applied migrations are recorded in `forget_schema`. Tables are prefixed `forget_` (a shared database is fine).
- Writes: one transaction each, which first bumps the version row (so writers serialise and versions commit in
  order without gaps), records the change in `forget_changes` and sends `NOTIFY forget_guard, '<version>'`,
  delivered to listeners at commit.
- Propagation: `notifications()` holds a dedicated LISTEN connection and yields on every notification and after
  every (re)connect; the follower then replays the change log. A missed notification is covered by the
  follower's periodic poll.
- Failures: a connection error or pool timeout becomes `RegistryUnavailable` (503 on the admin API); nothing is
  acknowledged that was not committed. If the connection breaks during COMMIT the outcome is unknown to the
  caller (the change may have landed; every replica then applies it from the log).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import numpy as np
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from guard.forget import operator_sql
from guard.forget.embedder import Vectors
from guard.forget.pg_schema import MIGRATIONS
from guard.forget.registry import (
    ACTOR,
    COVERAGE_COLUMNS,
    ENTRY_COLUMNS,
    QA,
    Change,
    Chunk,
    Coverage,
    Entry,
    Operator,
    RegistryUnavailable,
    Snapshot,
    check_vectors,
    coverage_from_row,
    entry_from_row,
    qa_from_text,
    qa_to_text,
    vector_of,
)

T = TypeVar("T")

CHANNEL = "forget_guard"
LOCK_KEY = 0x666F7267  # pg_advisory_xact_lock key for migrations ("forg")

ENTRIES_SQL = (
    f"SELECT {ENTRY_COLUMNS}, (SELECT COUNT(*) FROM forget_chunks c WHERE c.entry_id = e.id) FROM forget_entries e"
)

log = logging.getLogger("guard.registry")


class PostgresRegistry:
    backend = "postgresql"

    def __init__(self, dsn: str, dim: int, *, timeout_s: float = 5.0, pool_size: int = 4) -> None:
        self.dsn = dsn
        self.dim = dim
        self.timeout_s = timeout_s
        self._pool = AsyncConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            open=False,
            kwargs={"autocommit": True, "connect_timeout": max(1, int(timeout_s))},
            check=AsyncConnectionPool.check_connection,
            timeout=timeout_s,
            name="forget-registry",
        )
        self.listening = False
        # The pool warns on every failed reconnect; an outage is said once by the follower (guard.forget.sync).
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)

    async def open(self) -> None:
        try:
            await self._pool.open(wait=True, timeout=max(self.timeout_s, 30.0))
        except PoolTimeout as exc:
            raise RegistryUnavailable("cannot connect to the PostgreSQL registry") from exc
        async with self._conn() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            await conn.execute("CREATE TABLE IF NOT EXISTS forget_schema (version INTEGER PRIMARY KEY, at TIMESTAMPTZ)")
            cur = await conn.execute("SELECT COALESCE(MAX(version), 0) FROM forget_schema")
            done = int((await _one(cur))[0])
            if done > len(MIGRATIONS):
                raise RegistryUnavailable(
                    f"the registry schema (v{done}) is newer than this guard's (v{len(MIGRATIONS)})"
                )
            for number, sql in enumerate(MIGRATIONS[done:], start=done + 1):
                await conn.execute(sql.encode())
                await conn.execute("INSERT INTO forget_schema VALUES (%s, now())", (number,))
                log.info("registry schema migrated", extra={"schema_version": number})

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def _conn(self, timeout_s: float | None = None) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        try:
            async with self._pool.connection(timeout=timeout_s or self.timeout_s) as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise RegistryUnavailable(f"the registry is unreachable ({type(exc).__name__})") from exc

    async def _write(
        self, op: str, entry_id: str, fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T | None]]
    ) -> tuple[T, int] | None:
        """Run `fn` in one transaction that bumps the version, logs the change and notifies; None = rolled back."""
        result: T | None = None
        async with self._conn() as conn, conn.transaction():
            cur = await conn.execute("UPDATE forget_meta SET value = value + 1 WHERE key = 'version' RETURNING value")
            version = int((await _one(cur))[0])
            result = await fn(conn)
            if result is None:
                raise psycopg.Rollback()
            await conn.execute(
                "INSERT INTO forget_changes VALUES (%s, %s, %s, %s)", (version, op, entry_id, ACTOR.get())
            )
            await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(version)))
        return None if result is None else (result, version)

    async def claim_embedder(self, name: str) -> str | None:
        async with self._conn() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            cur = await conn.execute("SELECT value FROM forget_info WHERE key = 'embedder'")
            row = await cur.fetchone()
            cur = await conn.execute("SELECT EXISTS (SELECT 1 FROM forget_chunks)")
            has_vectors = bool((await _one(cur))[0])
            if row is not None and row[0] != name and has_vectors:
                return str(row[0])
            await conn.execute(
                "INSERT INTO forget_info VALUES ('embedder', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (name,),
            )
            return None

    async def add_operator(self, operator: Operator) -> bool:
        async with self._conn() as conn:
            return await operator_sql.pg_add(conn, operator)

    async def revoke_operator(self, name: str, at: float) -> Operator | None:
        async with self._conn() as conn:
            return await operator_sql.pg_revoke(conn, name, at)

    async def operators(self, token_sha256: str | None = None) -> list[Operator]:
        async with self._conn() as conn:
            return await operator_sql.pg_list(conn, token_sha256)

    async def compact(self, keep: int) -> int:
        async with self._conn() as conn:
            cur = await conn.execute(
                "DELETE FROM forget_changes WHERE version <= "
                "(SELECT value FROM forget_meta WHERE key = 'version') - %s",
                (keep,),
            )
            return cur.rowcount

    async def claim_salt(self, candidate: str) -> str:
        async with self._conn() as conn, conn.transaction():
            await conn.execute("INSERT INTO forget_info VALUES ('salt', %s) ON CONFLICT (key) DO NOTHING", (candidate,))
            cur = await conn.execute("SELECT value FROM forget_info WHERE key = 'salt'")
            return str((await _one(cur))[0])

    async def version(self) -> int:
        # the follower's poll: during an outage it fails in a second instead of waiting the pool's full timeout
        async with self._conn(timeout_s=min(self.timeout_s, 1.0)) as conn:
            cur = await conn.execute("SELECT value FROM forget_meta WHERE key = 'version'")
            return int((await _one(cur))[0])

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
        check_vectors(vectors, len(chunks), self.dim)
        created = time.time()

        async def insert(conn: psycopg.AsyncConnection[Any]) -> tuple[Entry, list[int]]:
            await conn.execute(
                "INSERT INTO forget_entries VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (entry_id, subject, json.dumps(list(aliases)), policy, created, documents, mode),
            )
            ids: list[int] = []
            if chunks:
                rows = [
                    (entry_id, t, np.asarray(v, dtype=np.float32).tobytes())
                    for t, v in zip(chunks, vectors, strict=True)
                ]
                async with conn.cursor() as cur:
                    await cur.executemany(
                        "INSERT INTO forget_chunks (entry_id, text, vector) VALUES (%s, %s, %s) RETURNING id",
                        rows,
                        returning=True,
                    )
                    while True:
                        ids.append(int((await _one(cur))[0]))
                        if not cur.nextset():
                            break
            if qa:
                await conn.execute("INSERT INTO forget_qa VALUES (%s, %s)", (entry_id, qa_to_text(qa)))
            entry = Entry(entry_id, subject, tuple(aliases), policy, created, documents, len(chunks), mode)
            return entry, ids

        done = await self._write("add", entry_id, insert)
        assert done is not None
        (entry, ids), version = done
        return entry, ids, version

    async def remove(self, entry_id: str) -> int | None:
        async def delete(conn: psycopg.AsyncConnection[Any]) -> bool | None:
            cur = await conn.execute("DELETE FROM forget_entries WHERE id = %s", (entry_id,))
            return True if cur.rowcount else None

        done = await self._write("remove", entry_id, delete)
        return None if done is None else done[1]

    async def set_mode(self, entry_id: str, mode: str) -> tuple[Entry, int] | None:
        async def update(conn: psycopg.AsyncConnection[Any]) -> Entry | None:
            cur = await conn.execute("UPDATE forget_entries SET mode = %s WHERE id = %s", (mode, entry_id))
            if not cur.rowcount:
                return None
            return (await _entries(conn, entry_id))[0]

        return await self._write("mode", entry_id, update)

    async def set_coverage(
        self, model: str, put: Sequence[Coverage], drop: Sequence[str] = ()
    ) -> tuple[list[Coverage], int]:
        async def write(conn: psycopg.AsyncConnection[Any]) -> list[Coverage]:
            async with conn.cursor() as cur:
                if drop:
                    await cur.executemany(
                        "DELETE FROM forget_coverage WHERE model = %s AND entry_id = %s", [(model, e) for e in drop]
                    )
                if put:
                    await cur.executemany(
                        f"INSERT INTO forget_coverage ({COVERAGE_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                        "ON CONFLICT (model, entry_id) DO UPDATE SET state = EXCLUDED.state, leak = EXCLUDED.leak, "
                        "utility_loss = EXCLUDED.utility_loss, report_sha256 = EXCLUDED.report_sha256, "
                        "registry_version = EXCLUDED.registry_version, at = EXCLUDED.at",
                        [c.row(model) for c in put],
                    )
            return await _coverage(conn)

        done = await self._write("coverage", model, write)
        assert done is not None
        return done

    async def coverage(self) -> list[Coverage]:
        async with self._conn() as conn:
            return await _coverage(conn)

    async def entries(self, entry_id: str | None = None) -> list[Entry]:
        async with self._conn() as conn:
            return await _entries(conn, entry_id)

    async def entry_chunks(self, entry_id: str) -> tuple[Entry, list[Chunk]] | None:
        async with self._conn() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            found = await _entries(conn, entry_id)
            if not found:
                return None
            cur = await conn.execute(
                "SELECT id, entry_id, text, vector FROM forget_chunks WHERE entry_id = %s ORDER BY id", (entry_id,)
            )
            return found[0], [Chunk(int(r[0]), r[1], r[2], vector_of(r[3])) for r in await cur.fetchall()]

    async def changes_since(self, version: int) -> list[Change]:
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT version, op, entry_id, actor FROM forget_changes WHERE version > %s ORDER BY version",
                (version,),
            )
            return [Change(int(r[0]), r[1], r[2], r[3]) for r in await cur.fetchall()]

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Snapshot]:
        async with self._conn() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield _PgSnapshot(conn, self.dim)

    async def notifications(self) -> AsyncIterator[None]:
        delay = 0.2
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.dsn, autocommit=True, connect_timeout=max(1, int(self.timeout_s))
                )
            except psycopg.OperationalError as exc:
                self._lost(exc)
            else:
                try:
                    async with conn:
                        await conn.execute(f"LISTEN {CHANNEL}")
                        if not self.listening:
                            log.info("listening for registry changes")
                        self.listening, delay = True, 0.2
                        yield  # (re)connected: whatever was missed meanwhile is caught up now
                        async for _ in conn.notifies():
                            yield
                except psycopg.OperationalError as exc:
                    self._lost(exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _lost(self, exc: Exception) -> None:
        if self.listening:
            log.warning("registry notification channel lost; reconnecting", extra={"error": type(exc).__name__})
        self.listening = False


async def _one(cur: psycopg.AsyncCursor[Any]) -> Any:
    row = await cur.fetchone()
    assert row is not None
    return row


async def _entries(conn: psycopg.AsyncConnection[Any], entry_id: str | None = None) -> list[Entry]:
    if entry_id is None:
        cur = await conn.execute(ENTRIES_SQL + " ORDER BY e.created_at, e.id")
    else:
        cur = await conn.execute(ENTRIES_SQL + " WHERE e.id = %s", (entry_id,))
    return [entry_from_row(r, int(r[7])) for r in await cur.fetchall()]


async def _coverage(conn: psycopg.AsyncConnection[Any]) -> list[Coverage]:
    cur = await conn.execute(f"SELECT {COVERAGE_COLUMNS} FROM forget_coverage ORDER BY model, entry_id")
    return [coverage_from_row(r) for r in await cur.fetchall()]


class _PgSnapshot:
    """A REPEATABLE READ transaction: every read sees the same version."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], dim: int) -> None:
        self._conn = conn
        self.dim = dim

    async def version(self) -> int:
        cur = await self._conn.execute("SELECT value FROM forget_meta WHERE key = 'version'")
        return int((await _one(cur))[0])

    async def entries(self) -> list[Entry]:
        return await _entries(self._conn)

    async def chunk_count(self) -> int:
        cur = await self._conn.execute("SELECT COUNT(*) FROM forget_chunks")
        return int((await _one(cur))[0])

    async def coverage(self) -> list[Coverage]:
        return await _coverage(self._conn)

    async def qa(self) -> dict[str, list[QA]]:
        cur = await self._conn.execute("SELECT entry_id, pairs FROM forget_qa")
        return {r[0]: qa_from_text(r[1]) for r in await cur.fetchall()}

    async def sample_vectors(self, k: int) -> Vectors:
        cur = await self._conn.execute("SELECT MIN(id), MAX(id) FROM forget_chunks")
        low, high = await _one(cur)
        if low is None:
            return np.zeros((0, self.dim), dtype=np.float32)
        step = max(1, (high - low + 1) // max(k, 1))
        cur = await self._conn.execute(
            "SELECT vector FROM forget_chunks WHERE (id - %s) %% %s = 0 LIMIT %s", (low, step, k)
        )
        return np.stack([vector_of(r[0]) for r in await cur.fetchall()])

    async def chunks(self, batch: int = 10_000, text: bool = True) -> AsyncIterator[list[Chunk]]:
        column = "text" if text else "''"
        last = -1
        while True:
            cur = await self._conn.execute(
                f"SELECT id, entry_id, {column}, vector FROM forget_chunks WHERE id > %s ORDER BY id LIMIT %s",
                (last, batch),
            )
            rows = await cur.fetchall()
            if not rows:
                return
            yield [Chunk(int(r[0]), r[1], r[2], vector_of(r[3])) for r in rows]
            last = int(rows[-1][0])
