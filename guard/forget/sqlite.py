"""The embedded registry backend: a SQLite file in the index directory (WAL, synchronous=FULL), one machine.

Its calls run on a worker thread; see `guard.forget.registry` for the interface and the change-log contract.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import numpy as np

from guard.forget import operator_sql
from guard.forget.embedder import Vectors
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
    Snapshot,
    check_vectors,
    coverage_from_row,
    entry_from_row,
    qa_from_text,
    qa_to_text,
    vector_of,
)

T = TypeVar("T")

REGISTRY_FILE = "registry.sqlite3"  # in the index directory

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    aliases TEXT NOT NULL,
    policy TEXT,
    created_at REAL NOT NULL,
    documents INTEGER NOT NULL,
    mode TEXT NOT NULL DEFAULT 'enforce'
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id TEXT NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
    text TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_entry ON chunks(entry_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('version', 0);
CREATE TABLE IF NOT EXISTS changes (version INTEGER PRIMARY KEY, op TEXT NOT NULL, entry_id TEXT NOT NULL, actor TEXT);
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS coverage (
    model TEXT NOT NULL,
    entry_id TEXT NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    leak REAL,
    utility_loss REAL,
    report_sha256 TEXT,
    registry_version INTEGER NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (model, entry_id)
);
CREATE TABLE IF NOT EXISTS operators (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    revoked_at REAL
);
CREATE TABLE IF NOT EXISTS qa (
    entry_id TEXT PRIMARY KEY REFERENCES entries(id) ON DELETE CASCADE,
    pairs TEXT NOT NULL
);
"""


class SqliteRegistry:
    """The embedded registry. One connection for writes (serialised by a lock), one per snapshot for reads."""

    backend = "sqlite"

    def __init__(self, path: Path, dim: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.dim = dim
        self._lock = threading.Lock()
        self._db = self._connect()
        self._db.executescript(SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(entries)")}
        if "mode" not in columns:  # a registry written before monitor mode existed
            self._db.execute("ALTER TABLE entries ADD COLUMN mode TEXT NOT NULL DEFAULT 'enforce'")
        if "actor" not in {r[1] for r in self._db.execute("PRAGMA table_info(changes)")}:  # before operators
            self._db.execute("ALTER TABLE changes ADD COLUMN actor TEXT")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        return db

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                return fn(self._db)

        return await asyncio.to_thread(locked)

    async def _write(self, fn: Callable[[sqlite3.Connection, int], T]) -> T:
        """Run `fn(db, new_version)` in one write transaction that bumps the version first."""

        def tx(db: sqlite3.Connection) -> T:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("UPDATE meta SET value = value + 1 WHERE key='version'")
                version = int(db.execute("SELECT value FROM meta WHERE key='version'").fetchone()[0])
                result = fn(db, version)
                if result is None:
                    db.execute("ROLLBACK")
                else:
                    db.execute("COMMIT")
                return result
            except BaseException:
                db.execute("ROLLBACK")
                raise

        return await self._run(tx)

    async def open(self) -> None:
        return None  # the schema is created in __init__

    async def close(self) -> None:
        with self._lock:
            self._db.close()

    async def claim_embedder(self, name: str) -> str | None:
        def claim(db: sqlite3.Connection) -> str | None:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT value FROM info WHERE key = 'embedder'").fetchone()
                has_vectors = db.execute("SELECT 1 FROM chunks LIMIT 1").fetchone() is not None
                if row is not None and row[0] != name and has_vectors:
                    return str(row[0])
                db.execute("INSERT OR REPLACE INTO info VALUES ('embedder', ?)", (name,))
                return None
            finally:
                db.execute("COMMIT")

        return await self._run(claim)

    async def claim_salt(self, candidate: str) -> str:
        def claim(db: sqlite3.Connection) -> str:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("INSERT OR IGNORE INTO info VALUES ('salt', ?)", (candidate,))
                return str(db.execute("SELECT value FROM info WHERE key = 'salt'").fetchone()[0])
            finally:
                db.execute("COMMIT")

        return await self._run(claim)

    async def version(self) -> int:
        return await self._run(_sqlite_version)

    async def add_operator(self, operator: Operator) -> bool:
        return await self._run(lambda db: operator_sql.sqlite_add(db, operator))

    async def revoke_operator(self, name: str, at: float) -> Operator | None:
        return await self._run(lambda db: operator_sql.sqlite_revoke(db, name, at))

    async def operators(self, token_sha256: str | None = None) -> list[Operator]:
        return await self._run(lambda db: operator_sql.sqlite_list(db, token_sha256))

    async def compact(self, keep: int) -> int:
        def prune(db: sqlite3.Connection) -> int:
            with db:
                return db.execute("DELETE FROM changes WHERE version <= ?", (_sqlite_version(db) - keep,)).rowcount

        return await self._run(prune)

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

        def insert(db: sqlite3.Connection, version: int) -> tuple[Entry, list[int], int]:
            db.execute(
                "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)",
                (entry_id, subject, json.dumps(list(aliases)), policy, created, documents, mode),
            )
            ids = []
            for text, vec in zip(chunks, vectors, strict=True):
                cur = db.execute(
                    "INSERT INTO chunks (entry_id, text, vector) VALUES (?, ?, ?)",
                    (entry_id, text, np.asarray(vec, dtype=np.float32).tobytes()),
                )
                ids.append(int(cur.lastrowid or 0))
            if qa:
                db.execute("INSERT INTO qa VALUES (?, ?)", (entry_id, qa_to_text(qa)))
            _log_change(db, version, "add", entry_id)
            entry = Entry(entry_id, subject, tuple(aliases), policy, created, documents, len(chunks), mode)
            return entry, ids, version

        return await self._write(insert)

    async def remove(self, entry_id: str) -> int | None:
        def delete(db: sqlite3.Connection, version: int) -> int | None:
            if db.execute("DELETE FROM entries WHERE id=?", (entry_id,)).rowcount == 0:
                return None
            _log_change(db, version, "remove", entry_id)
            return version

        return await self._write(delete)

    async def set_mode(self, entry_id: str, mode: str) -> tuple[Entry, int] | None:
        def update(db: sqlite3.Connection, version: int) -> tuple[Entry, int] | None:
            if db.execute("UPDATE entries SET mode=? WHERE id=?", (mode, entry_id)).rowcount == 0:
                return None
            _log_change(db, version, "mode", entry_id)
            return _sqlite_entries(db, entry_id)[0], version

        return await self._write(update)

    async def set_coverage(
        self, model: str, put: Sequence[Coverage], drop: Sequence[str] = ()
    ) -> tuple[list[Coverage], int]:
        def write(db: sqlite3.Connection, version: int) -> tuple[list[Coverage], int]:
            db.executemany("DELETE FROM coverage WHERE model=? AND entry_id=?", [(model, e) for e in drop])
            db.executemany(
                f"INSERT OR REPLACE INTO coverage ({COVERAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [c.row(model) for c in put],
            )
            _log_change(db, version, "coverage", model)
            return _sqlite_coverage(db), version

        return await self._write(write)

    async def coverage(self) -> list[Coverage]:
        return await self._run(_sqlite_coverage)

    async def entries(self, entry_id: str | None = None) -> list[Entry]:
        return await self._run(lambda db: _sqlite_entries(db, entry_id))

    async def entry_chunks(self, entry_id: str) -> tuple[Entry, list[Chunk]] | None:
        def read(db: sqlite3.Connection) -> tuple[Entry, list[Chunk]] | None:
            db.execute("BEGIN")
            try:
                found = _sqlite_entries(db, entry_id)
                rows = db.execute(
                    "SELECT id, entry_id, text, vector FROM chunks WHERE entry_id=? ORDER BY id", (entry_id,)
                ).fetchall()
            finally:
                db.execute("COMMIT")
            if not found:
                return None
            return found[0], [Chunk(r[0], r[1], r[2], vector_of(r[3])) for r in rows]

        return await self._run(read)

    async def changes_since(self, version: int) -> list[Change]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT version, op, entry_id, actor FROM changes WHERE version > ? ORDER BY version", (version,)
            ).fetchall()
        )
        return [Change(int(r[0]), r[1], r[2], r[3]) for r in rows]

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Snapshot]:
        db = await asyncio.to_thread(self._connect)
        try:
            await asyncio.to_thread(db.execute, "BEGIN")
            yield _SqliteSnapshot(db, self.dim)
        finally:
            await asyncio.to_thread(_close_reader, db)

    async def notifications(self) -> AsyncIterator[None]:
        return
        yield  # pragma: no cover - an async generator that yields nothing: SQLite has no notification channel


def _close_reader(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        db.execute("COMMIT")
    db.close()


def _log_change(db: sqlite3.Connection, version: int, op: str, entry_id: str) -> None:
    db.execute("INSERT INTO changes VALUES (?, ?, ?, ?)", (version, op, entry_id, ACTOR.get()))


def _sqlite_version(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT value FROM meta WHERE key='version'").fetchone()[0])


def _sqlite_entries(db: sqlite3.Connection, entry_id: str | None = None) -> list[Entry]:
    where, args = ("WHERE e.id = ? ", (entry_id,)) if entry_id is not None else ("", ())
    rows = db.execute(
        f"SELECT {ENTRY_COLUMNS}, (SELECT COUNT(*) FROM chunks c WHERE c.entry_id = e.id) "
        f"FROM entries e {where}ORDER BY e.created_at, e.id",
        args,
    ).fetchall()
    return [entry_from_row(r, int(r[7])) for r in rows]


def _sqlite_coverage(db: sqlite3.Connection) -> list[Coverage]:
    rows = db.execute(f"SELECT {COVERAGE_COLUMNS} FROM coverage ORDER BY model, entry_id").fetchall()
    return [coverage_from_row(r) for r in rows]


class _SqliteSnapshot:
    """A read transaction on its own connection: in WAL mode it sees one version throughout."""

    def __init__(self, db: sqlite3.Connection, dim: int) -> None:
        self._db = db
        self.dim = dim

    async def version(self) -> int:
        return await asyncio.to_thread(_sqlite_version, self._db)

    async def entries(self) -> list[Entry]:
        return await asyncio.to_thread(_sqlite_entries, self._db)

    async def chunk_count(self) -> int:
        return await asyncio.to_thread(lambda: int(self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]))

    async def coverage(self) -> list[Coverage]:
        return await asyncio.to_thread(_sqlite_coverage, self._db)

    async def qa(self) -> dict[str, list[QA]]:
        rows = await asyncio.to_thread(lambda: self._db.execute("SELECT entry_id, pairs FROM qa").fetchall())
        return {r[0]: qa_from_text(r[1]) for r in rows}

    async def sample_vectors(self, k: int) -> Vectors:
        def sample() -> Vectors:
            low, high = self._db.execute("SELECT MIN(id), MAX(id) FROM chunks").fetchone()
            if low is None:
                return np.zeros((0, self.dim), dtype=np.float32)
            step = max(1, (high - low + 1) // max(k, 1))
            rows = self._db.execute(
                "SELECT vector FROM chunks WHERE (id - ?) % ? = 0 LIMIT ?", (low, step, k)
            ).fetchall()
            return np.stack([vector_of(r[0]) for r in rows])

        return await asyncio.to_thread(sample)

    async def chunks(self, batch: int = 10_000, text: bool = True) -> AsyncIterator[list[Chunk]]:
        column = "text" if text else "''"

        def fetch(last: int) -> list[Chunk]:
            rows = self._db.execute(
                f"SELECT id, entry_id, {column}, vector FROM chunks WHERE id > ? ORDER BY id LIMIT ?", (last, batch)
            ).fetchall()
            return [Chunk(r[0], r[1], r[2], vector_of(r[3])) for r in rows]

        last = -1
        while found := await asyncio.to_thread(fetch, last):
            yield found
            last = found[-1].id
