"""The durable registry of forget entries (SQLite in the index directory).

It is the single source of truth: entries, their chunks and the chunks' embeddings. A change is committed
(WAL, synchronous=FULL) before the admin API acknowledges it; the in-memory faiss index is rebuilt from here.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from guard.forget.embedder import Vectors

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
"""


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
class Chunk:
    id: int
    entry_id: str
    text: str
    vector: Vectors


class SqliteRegistry:
    def __init__(self, path: Path, dim: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.dim = dim
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(entries)")}
        if "mode" not in columns:  # a registry written before monitor mode existed
            self._db.execute("ALTER TABLE entries ADD COLUMN mode TEXT NOT NULL DEFAULT 'enforce'")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def version(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT value FROM meta WHERE key='version'").fetchone()[0])

    def add(
        self,
        entry_id: str,
        subject: str,
        aliases: Sequence[str],
        policy: str | None,
        documents: int,
        chunks: Sequence[str],
        vectors: Vectors,
        mode: str = "enforce",
    ) -> tuple[Entry, list[int]]:
        """Insert an entry and its chunks in one transaction; returns the entry and the chunk ids."""
        if vectors.shape != (len(chunks), self.dim):
            raise ValueError(f"expected {len(chunks)} vectors of dim {self.dim}, got {vectors.shape}")
        created = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (entry_id, subject, json.dumps(list(aliases)), policy, created, documents, mode),
                )
                ids = []
                for text, vec in zip(chunks, vectors, strict=True):
                    cur = self._db.execute(
                        "INSERT INTO chunks (entry_id, text, vector) VALUES (?, ?, ?)",
                        (entry_id, text, np.asarray(vec, dtype=np.float32).tobytes()),
                    )
                    ids.append(int(cur.lastrowid or 0))
                self._db.execute("UPDATE meta SET value = value + 1 WHERE key='version'")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        entry = Entry(entry_id, subject, tuple(aliases), policy, created, documents, len(chunks), mode)
        return entry, ids

    def remove(self, entry_id: str) -> list[int] | None:
        """Delete an entry; returns its chunk ids, or None if there was no such entry."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                ids = [r[0] for r in self._db.execute("SELECT id FROM chunks WHERE entry_id=?", (entry_id,))]
                cur = self._db.execute("DELETE FROM entries WHERE id=?", (entry_id,))
                if cur.rowcount == 0:
                    self._db.execute("ROLLBACK")
                    return None
                self._db.execute("UPDATE meta SET value = value + 1 WHERE key='version'")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return ids

    def set_mode(self, entry_id: str, mode: str) -> Entry | None:
        """Switch an entry between "enforce" and "monitor"; None if there is no such entry."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute("UPDATE entries SET mode=? WHERE id=?", (mode, entry_id))
                if cur.rowcount == 0:
                    self._db.execute("ROLLBACK")
                    return None
                self._db.execute("UPDATE meta SET value = value + 1 WHERE key='version'")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return next(e for e in self.entries(entry_id) if e.id == entry_id)

    def entries(self, entry_id: str | None = None) -> list[Entry]:
        where, args = ("WHERE e.id = ? ", (entry_id,)) if entry_id is not None else ("", ())
        with self._lock:
            rows = self._db.execute(
                "SELECT e.id, e.subject, e.aliases, e.policy, e.created_at, e.documents, COUNT(c.id), e.mode "
                f"FROM entries e LEFT JOIN chunks c ON c.entry_id = e.id {where}GROUP BY e.id ORDER BY e.created_at",
                args,
            ).fetchall()
        return [Entry(r[0], r[1], tuple(json.loads(r[2])), r[3], r[4], r[5], r[6], r[7]) for r in rows]

    def chunk_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])

    def sample_vectors(self, k: int) -> Vectors:
        """About k chunk vectors spread evenly over the id range (to train an IVF index)."""
        with self._lock:
            low, high = self._db.execute("SELECT MIN(id), MAX(id) FROM chunks").fetchone()
            if low is None:
                return np.zeros((0, self.dim), dtype=np.float32)
            step = max(1, (high - low + 1) // max(k, 1))
            rows = self._db.execute(
                "SELECT vector FROM chunks WHERE (id - ?) % ? = 0 LIMIT ?", (low, step, k)
            ).fetchall()
        return np.stack([np.frombuffer(r[0], dtype=np.float32) for r in rows])

    def chunks(self, batch: int = 10_000, text: bool = True) -> Iterator[list[Chunk]]:
        """All chunks in id order, in batches (for rebuilding the in-memory index); `text=False` skips the text."""
        last = -1
        column = "text" if text else "''"
        while True:
            with self._lock:
                rows = self._db.execute(
                    f"SELECT id, entry_id, {column}, vector FROM chunks WHERE id > ? ORDER BY id LIMIT ?",
                    (last, batch),
                ).fetchall()
            if not rows:
                return
            yield [Chunk(r[0], r[1], r[2], np.frombuffer(r[3], dtype=np.float32)) for r in rows]
            last = rows[-1][0]
