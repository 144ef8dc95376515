"""One conformance suite for both registry backends: SQLite (embedded) and PostgreSQL (a real throw-away cluster).

Then the same suite's subject one level up: two ForgetIndex instances (two replicas) on one registry, each
following the other's changes through the change log — and, on PostgreSQL, through LISTEN/NOTIFY.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest

from guard.forget.backends import open_registry
from guard.forget.embedder import HashEmbedder
from guard.forget.index import ForgetIndex
from guard.forget.registry import ACTOR, Change, Registry
from guard.testing import HANG_S

DIM = 8


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.socket)])
def make_registry(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[int], Registry]:
    """A factory of registry instances that share one store (two instances = two processes' view)."""
    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgresql" else None

    def make(dim: int = DIM) -> Registry:
        return open_registry(dsn, tmp_path, dim)

    return make


@pytest.fixture
async def registry(make_registry: Callable[[int], Registry]) -> AsyncIterator[Registry]:
    reg = make_registry(DIM)
    await reg.open()
    yield reg
    await reg.close()


def vecs(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


async def test_add_is_versioned_logged_and_round_trips(registry: Registry) -> None:
    assert await registry.version() == 0
    v = vecs(3)
    entry, ids, version = await registry.add("e1", "Ada Quill", ["A. Quill"], None, 2, ["a", "b", "c"], v)
    assert version == 1 and await registry.version() == 1
    assert entry.chunks == 3 and entry.aliases == ("A. Quill",) and entry.mode == "enforce"
    assert ids == list(range(ids[0], ids[0] + 3))  # contiguous
    listed = await registry.entries()
    assert [(e.id, e.subject, e.aliases, e.chunks, e.documents) for e in listed] == [
        ("e1", "Ada Quill", ("A. Quill",), 3, 2)
    ]
    found = await registry.entry_chunks("e1")
    assert found is not None
    assert [c.id for c in found[1]] == ids and [c.text for c in found[1]] == ["a", "b", "c"]
    assert np.array_equal(np.stack([c.vector for c in found[1]]), v)  # bit-exact
    assert [(c.version, c.op, c.entry_id) for c in await registry.changes_since(0)] == [(1, "add", "e1")]
    assert await registry.changes_since(1) == []


async def test_question_answer_pairs_round_trip_and_go_with_their_entry(registry: Registry) -> None:
    pairs = [("Where was Ada Quill born?", "In Ghent, «1961»."), ("What did she write?", "The Brass Lantern.")]
    await registry.add("e1", "Ada Quill", [], None, 2, ["a"], vecs(1), qa=pairs)
    await registry.add("e2", "Bo Sample", [], None, 1, ["b"], vecs(1, seed=1))
    async with registry.snapshot() as snap:
        assert await snap.qa() == {"e1": pairs}  # in order, unicode intact; an entry without pairs has no row
    await registry.remove("e1")
    async with registry.snapshot() as snap:
        assert await snap.qa() == {}


async def test_remove_and_mode_change_are_logged_and_unknown_ids_change_nothing(registry: Registry) -> None:
    await registry.add("e1", "Ada Quill", [], None, 1, ["a"], vecs(1))
    await registry.add("e2", "Bo Rennet", [], "strict", 1, ["b", "c"], vecs(2, 1))
    changed = await registry.set_mode("e2", "monitor")
    assert changed is not None and changed[0].mode == "monitor" and changed[0].policy == "strict"
    assert changed[1] == 3
    assert await registry.remove("e1") == 4
    assert await registry.remove("e1") is None
    assert await registry.set_mode("nope", "monitor") is None
    assert await registry.version() == 4  # the failed calls did not bump it
    assert [(c.version, c.op, c.entry_id) for c in await registry.changes_since(2)] == [
        (3, "mode", "e2"),
        (4, "remove", "e1"),
    ]
    assert await registry.entry_chunks("e1") is None  # chunks went with the entry
    assert [(e.id, e.mode) for e in await registry.entries()] == [("e2", "monitor")]
    assert [e.id for e in await registry.entries("e2")] == ["e2"] and await registry.entries("e1") == []


async def test_wrong_vectors_write_nothing(registry: Registry) -> None:
    with pytest.raises(ValueError):
        await registry.add("e1", "Ada", [], None, 1, ["a", "b"], vecs(1))
    assert await registry.version() == 0 and await registry.entries() == []


async def test_snapshot_sees_one_version_while_writes_go_on(registry: Registry) -> None:
    for i in range(5):
        await registry.add(f"e{i}", f"S{i}", [], None, 1, [f"t{i}a", f"t{i}b"], vecs(2, i))
    async with registry.snapshot() as snap:
        assert await snap.version() == 5
        await registry.add("late", "Late", [], None, 1, ["x"], vecs(1, 9))
        await registry.remove("e0")
        assert await snap.version() == 5
        assert [e.id for e in await snap.entries()] == [f"e{i}" for i in range(5)]
        assert await snap.chunk_count() == 10
        batches = [b async for b in snap.chunks(batch=3, text=False)]
        assert [len(b) for b in batches] == [3, 3, 3, 1]
        flat = [c for b in batches for c in b]
        assert [c.id for c in flat] == sorted(c.id for c in flat) and {c.text for c in flat} == {""}
        sample = await snap.sample_vectors(4)
        assert 1 <= len(sample) <= 4 and sample.shape[1] == DIM
    assert await registry.version() == 7


async def test_reopening_keeps_everything_and_migration_is_idempotent(
    registry: Registry, make_registry: Callable[[int], Registry]
) -> None:
    await registry.add("e1", "Ada", ["Quill"], None, 1, ["a", "b"], vecs(2))
    again = make_registry(DIM)
    await again.open()
    try:
        assert [(e.id, e.aliases, e.chunks) for e in await again.entries()] == [("e1", ("Quill",), 2)]
        assert await again.version() == 1
    finally:
        await again.close()


async def test_concurrent_writers_get_distinct_gapless_versions(
    registry: Registry, make_registry: Callable[[int], Registry]
) -> None:
    """Two instances (two replicas) writing at once: versions 1..N, each once; every entry's chunks contiguous."""
    other = make_registry(DIM)
    await other.open()
    try:
        results = await asyncio.gather(
            *(
                reg.add(f"{name}{i}", "S", [], None, 1, [f"c{j}" for j in range(4)], vecs(4, i))
                for i in range(12)
                for name, reg in (("a", registry), ("b", other))
            )
        )
    finally:
        await other.close()
    assert sorted(r[2] for r in results) == list(range(1, 25))
    for _, ids, _ in results:
        assert ids == list(range(ids[0], ids[0] + 4))
    log = await registry.changes_since(0)
    assert [c.version for c in log] == list(range(1, 25))
    assert {c.entry_id for c in log} == {r[0].id for r in results}


# -- replicas: two ForgetIndex instances following one registry ------------------------------------------------


async def _index(reg: Registry) -> ForgetIndex:
    return await ForgetIndex.open(reg, HashEmbedder(), ngram_words=4, typo_min_chars=6)


async def test_a_replica_catches_up_with_another_through_the_change_log(
    make_registry: Callable[[int], Registry],
) -> None:
    emb = HashEmbedder()
    a = await _index(make_registry(emb.dim))
    b = await _index(make_registry(emb.dim))
    try:
        doc = "Orlen Vasko was born in Tarsk and wrote The Salt Ledger."
        entry = await a.add("Orlen Vasko", [], [doc], None)
        query = emb.embed([doc])
        assert entry.id not in (await b.run(b.view.search, query))[0]
        assert await b.catch_up() == 1
        assert b.version == a.version == 1
        assert (await b.run(b.view.search, query))[0][entry.id] > 0.99
        assert b.view.find_names("tell me about Orlen Vasko") == {entry.id}
        assert await b.set_mode(entry.id, "monitor") is not None
        assert await b.remove(entry.id)
        # A applies B's two changes in order; its own next write goes after them
        other = await a.add("Pell Danner", [], ["Pell Danner keeps bees."], None)
        assert a.version == 4 and a.get(entry.id) is None and a.get(other.id) is not None
        assert entry.id not in (await a.run(a.view.search, query))[0]
        assert await b.catch_up() == 1 and b.version == 4
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_replica_away_longer_than_the_compacted_log_reconciles(
    make_registry: Callable[[int], Registry],
) -> None:
    emb = HashEmbedder()
    a = await _index(make_registry(emb.dim))
    b = await _index(make_registry(emb.dim))  # "away": it does not follow while A writes
    try:
        stays = await a.add("Orlen Vasko", [], ["Orlen Vasko was born in Tarsk."], None)
        goes = await a.add("Mira Tolst", [], ["Mira Tolst keeps bees."], None)
        assert await b.catch_up() == 2
        await a.remove(goes.id)
        await a.set_mode(stays.id, "monitor")
        later = await a.add("Pell Danner", [], ["Pell Danner sails."], None)
        assert await a.registry.compact(keep=1) == 4  # versions 1-4 pruned, 5 kept
        assert [c.version for c in await a.registry.changes_since(0)] == [5]
        await b.catch_up()  # its next change (3) is gone: a gap, so entry by entry
        assert b.version == a.version == 5
        assert {e.id: e.mode for e in await b.run(b.memory.entries)} == {stays.id: "monitor", later.id: "enforce"}
        assert b.view.find_names("tell me about Mira Tolst") == set()
        assert b.view.find_names("what about Pell Danner") == {later.id}
        assert await a.registry.compact(keep=1) == 0  # idempotent
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_replica_that_starts_late_loads_the_same_state(make_registry: Callable[[int], Registry]) -> None:
    emb = HashEmbedder()
    a = await _index(make_registry(emb.dim))
    try:
        kept = await a.add("Kept One", [], ["kept words here"], None)
        gone = await a.add("Gone One", [], ["gone words here"], None)
        await a.remove(gone.id)
        b = await _index(make_registry(emb.dim))
        try:
            assert b.version == 3 and [e.id for e in b.entries()] == [kept.id] and b.chunk_count == 1
        finally:
            await b.aclose()
    finally:
        await a.aclose()


async def test_postgres_replicas_follow_each_other_through_notifications(pg_dsn: str, tmp_path: Path) -> None:
    """With an hour-long poll interval, only LISTEN/NOTIFY can make B see A's add before the deadline (how fast it
    is, is a benchmark's question: bench.replicas)."""
    emb = HashEmbedder()
    a = await _index(open_registry(pg_dsn, tmp_path, emb.dim))
    b = await _index(open_registry(pg_dsn, tmp_path, emb.dim))
    follower = asyncio.create_task(b.follow(poll_s=3600))
    try:
        started = time.monotonic()
        while not getattr(b.registry, "listening", False):  # B is listening (PostgresRegistry.listening)
            assert time.monotonic() - started < HANG_S, "B never listened"
            await asyncio.sleep(0.01)
        entry = await a.add("Mira Tolst", [], ["Mira Tolst painted the harbour."], None)
        while b.get(entry.id) is None:
            assert time.monotonic() - started < HANG_S, "B did not learn of A's add: no notification"
            await asyncio.sleep(0.01)
        assert b.version == a.version
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
        await a.aclose()
        await b.aclose()


async def test_the_registry_records_which_embedder_wrote_its_vectors(registry: Registry) -> None:
    assert await registry.claim_embedder("all-MiniLM-L6-v2") is None  # empty: any embedder
    assert await registry.claim_embedder("other") is None  # still empty: the new one is recorded
    assert await registry.claim_embedder("all-MiniLM-L6-v2") is None
    await registry.add("e1", "Ann", [], None, 1, ["a", "b"], vecs(2))
    assert await registry.claim_embedder("all-MiniLM-L6-v2") is None  # the same one
    assert await registry.claim_embedder("other") == "all-MiniLM-L6-v2"  # refused, and nothing changed
    assert await registry.claim_embedder("all-MiniLM-L6-v2") is None


async def test_the_first_salt_claimed_is_everyones(make_registry: Callable[[int], Registry]) -> None:
    one, two = make_registry(DIM), make_registry(DIM)
    await one.open()
    await two.open()
    try:
        assert await one.claim_salt("aa" * 32) == "aa" * 32
        assert await two.claim_salt("bb" * 32) == "aa" * 32  # a second replica gets the first one's salt
        assert await one.claim_salt("cc" * 32) == "aa" * 32
    finally:
        await one.close()
        await two.close()


async def test_the_change_log_records_who_made_each_change(registry: Registry) -> None:
    await registry.add("e1", "Ada Quill", [], None, 1, ["a"], vecs(1))  # no actor: the guard itself
    token = ACTOR.set("alice")
    try:
        await registry.set_mode("e1", "monitor")
        await registry.remove("e1")
    finally:
        ACTOR.reset(token)
    assert [(c.op, c.actor) for c in await registry.changes_since(0)] == [
        ("add", None),
        ("mode", "alice"),
        ("remove", "alice"),
    ]


async def test_a_sqlite_registry_from_before_operators_gains_the_actor_column(tmp_path: Path) -> None:
    import sqlite3

    from guard.forget.sqlite import REGISTRY_FILE

    db = sqlite3.connect(tmp_path / REGISTRY_FILE)
    db.execute("CREATE TABLE changes (version INTEGER PRIMARY KEY, op TEXT NOT NULL, entry_id TEXT NOT NULL)")
    db.execute("INSERT INTO changes VALUES (1, 'add', 'old')")
    db.commit()
    db.close()
    registry = open_registry(None, tmp_path, DIM)
    await registry.open()
    try:
        assert await registry.changes_since(0) == [Change(1, "add", "old", None)]
    finally:
        await registry.close()
