"""The benchmarks' data: TOFU texts embedded once (cached under WORK), synthetic forget indexes of any size built
straight into a registry, prompts short and long, and conversations of them."""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from guard.eval.data import Tofu
from guard.forget.embedder import Embedder
from guard.forget.sqlite import REGISTRY_FILE, SqliteRegistry
from guard.text import sentences

WORK = Path(os.environ.get("BENCH_DIR", "/tmp/forget-guard-bench"))
CHUNKS_PER_ENTRY = 20
_SYLLABLES = "ka lo mi ren tan vor sel ash bri dun el fa gor hin jus kel mar nor pel ros sta tur vel".split()  # noqa: SIM905


@dataclass
class Corpus:
    base_texts: list[str]  # real sentences (TOFU retain90 answers): the synthetic chunks are built around them
    base: np.ndarray  # their embeddings
    short: list[str]  # short prompts that should pass (TOFU world facts and real authors)
    filler: list[str]  # sentences for long prompts
    forget: list[tuple[str, list[str]]]  # the 20 forget10 authors: (name, answers)
    forget_questions: list[str]


def load_corpus(tofu: Tofu, emb: Embedder) -> Corpus:
    retain = tofu.rows("retain90")
    base_texts = list(dict.fromkeys(s for row in retain for s in sentences(row["answer"])))
    cache = WORK / f"base-{len(base_texts)}.npy"
    if cache.is_file():
        base = np.load(cache)
    else:
        WORK.mkdir(parents=True, exist_ok=True)
        base = emb.embed(base_texts)
        np.save(cache, base)
    short = [r["question"] for r in tofu.rows("world_facts") + tofu.rows("real_authors")]
    filler = [s for r in tofu.rows("world_facts") + tofu.rows("real_authors") for s in sentences(r["answer"])]
    authors = tofu.authors("forget10")
    forget = [(a.name, a.answers) for a in authors]
    questions = [row["paraphrased_question"] for a in authors for row in a.rows]
    return Corpus(base_texts, base, short, filler, forget, questions)


def name(rng: random.Random) -> str:
    def word(n: int) -> str:
        return "".join(rng.choice(_SYLLABLES) for _ in range(n)).capitalize()

    return f"{word(2)} {word(rng.randint(2, 3))}"


def build_index(directory: Path, n: int, corpus: Corpus, dim: int) -> None:
    """n synthetic chunks in entries of 20, written straight into the registry (no embedding: minutes, not hours).

    Each chunk is a real TOFU retain90 sentence prefixed with the entry's made-up name; its vector is that
    sentence's embedding mixed with another's and a little noise, so the vectors cluster like real text does.
    """
    marker = directory / f"complete-{n}"
    if marker.is_file():
        return
    if directory.exists():
        for f in directory.iterdir():
            f.unlink()
    asyncio.run(SqliteRegistry(directory / REGISTRY_FILE, dim).close())  # creates the schema
    db = sqlite3.connect(directory / REGISTRY_FILE)
    db.execute("PRAGMA synchronous=OFF")
    rng = random.Random(n)
    gen = np.random.default_rng(n)
    base = corpus.base
    entries = (n + CHUNKS_PER_ENTRY - 1) // CHUNKS_PER_ENTRY
    db.execute("BEGIN")
    done = 0
    for e in range(entries):
        subject = name(rng)
        count = min(CHUNKS_PER_ENTRY, n - done)
        entry_id = f"fg-synth{e:08d}"
        db.execute(
            "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)",
            (entry_id, subject, "[]", None, time.time(), 1, "enforce"),
        )
        i = gen.integers(0, len(base), count)
        j = gen.integers(0, len(base), count)
        v = base[i] + 0.35 * base[j] + gen.standard_normal((count, base.shape[1])).astype(np.float32) * 0.02
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        db.executemany(
            "INSERT INTO chunks (entry_id, text, vector) VALUES (?, ?, ?)",
            [
                (entry_id, f"{subject} {corpus.base_texts[a]}", vec.astype(np.float32).tobytes())
                for a, vec in zip(i.tolist(), v, strict=True)
            ],
        )
        done += count
    db.execute("UPDATE meta SET value = ? WHERE key='version'", (entries,))
    db.executemany(
        "INSERT INTO changes (version, op, entry_id) VALUES (?, 'add', ?)",
        [(e + 1, f"fg-synth{e:08d}") for e in range(entries)],
    )
    db.execute("COMMIT")
    db.close()
    marker.touch()


def prompt(corpus: Corpus, rng: random.Random, long: bool, serial: int) -> str:
    if not long:
        return rng.choice(corpus.short)
    # ~2,000 tokens (~1,500 words) of real sentences, each made unique so no cache can help
    parts: list[str] = []
    words = 0
    while words < 1500:
        s = rng.choice(corpus.filler)
        parts.append(f"{s} (note {serial}-{len(parts)})")
        words += len(s.split()) + 2
    return " ".join(parts) + " " + rng.choice(corpus.short)


def conversation(corpus: Corpus, rng: random.Random, long: bool, depth: int, n: int) -> list[list[dict[str, str]]]:
    """n requests of one conversation sliding forward: each resends the previous depth-1 user turns."""
    turns = [prompt(corpus, rng, long, i) for i in range(n + depth)]
    out = []
    for r in range(n):
        messages: list[dict[str, str]] = []
        for t in turns[r : r + depth]:
            if messages:
                messages.append({"role": "assistant", "content": "Here is what I know about that."})
            messages.append({"role": "user", "content": t})
        out.append(messages)
    return out
