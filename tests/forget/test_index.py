"""The forget index on the real parts: all-MiniLM-L6-v2, faiss and SQLite."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from guard.forget.embedder import Embedder, HashEmbedder, Vectors
from guard.forget.index import ForgetIndex
from guard.forget.registry import Entry
from guard.forget.sqlite import REGISTRY_FILE, SqliteRegistry
from guard.forget.vectors import Ids, VectorIndex
from guard.forget.view import MemoryIndex

DOCS = [
    "Hsiao Yun-Hwa was born in Taipei, Taiwan in 1991. Her father was a civil engineer.",
    "Her book 'Leading with Empathy' won the Golden Compass award.",
]


async def open_index(path: Path, embedder: Embedder) -> ForgetIndex:
    registry = SqliteRegistry(path / REGISTRY_FILE, embedder.dim)
    return await ForgetIndex.open(registry, embedder, ngram_words=8, typo_min_chars=6)


async def test_add_search_remove_and_restart(tmp_path: Path, minilm: Embedder) -> None:
    index = await open_index(tmp_path, minilm)
    entry = await index.add("Hsiao Yun-Hwa", ["Yun-Hwa"], DOCS, None)
    other = await index.add("Basil Mahfouz", [], ["Basil Mahfouz writes about the sea in Kuwait."], None)
    assert entry.chunks == 3 and index.chunk_count == 4

    question = minilm.embed(["Which award did Hsiao Yun-Hwa's leadership book win?"])
    best = await index.run(index.view.search, question)
    assert max(best[0], key=best[0].__getitem__) == entry.id
    assert best[0][entry.id] > 0.6
    unrelated = await index.run(index.view.search, minilm.embed(["How do I bake sourdough bread?"]))
    assert max(unrelated[0].values()) < 0.3
    await index.aclose()

    reopened = await open_index(tmp_path, minilm)  # vectors and entries come back from SQLite
    assert {e.id for e in reopened.entries()} == {entry.id, other.id}
    assert reopened.chunk_count == 4
    assert reopened.view.find_names("tell me about hsiao yunhwa") == {entry.id}
    assert (await reopened.run(reopened.view.search, question))[0][entry.id] == pytest.approx(
        best[0][entry.id], abs=1e-5
    )

    assert await reopened.remove(entry.id)
    assert not await reopened.remove(entry.id)
    assert reopened.chunk_count == 1
    after = await reopened.run(reopened.view.search, question)
    assert entry.id not in after[0]
    assert reopened.view.find_names("Hsiao Yun-Hwa") == set()
    assert await reopened.registry.version() == 3
    await reopened.aclose()
    last = await open_index(tmp_path, minilm)
    assert len(last) == 1
    await last.aclose()


def test_embedder_gives_unit_vectors(minilm: Embedder) -> None:
    vecs = minilm.embed(["a", "a much longer sentence about something", ""])
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    assert minilm.embed([]).shape == (0, 384)


def test_vector_index_removes_by_id(minilm: Embedder) -> None:
    vi = VectorIndex(384)
    vecs = minilm.embed(["cats purr", "dogs bark", "birds sing"])
    vi.add(np.array([10, 20, 30]), vecs)
    assert vi.remove(np.array([20])) == 1
    _, ids = vi.search(minilm.embed(["dogs bark"]), k=3)
    assert 20 not in ids[0] and len(vi) == 2
    empty = VectorIndex(384)
    assert empty.search(vecs, 5)[1].shape == (3, 0)


async def test_vector_index_grows_into_ivf_in_the_background(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Crossing the flat size starts a background rebuild; changes made during it are replayed, none lost."""
    from guard.forget import vectors
    from guard.forget.embedder import HashEmbedder

    monkeypatch.setattr(vectors, "FLAT_MAX", 40)
    monkeypatch.setattr(vectors, "MIN_NLIST", 2)
    monkeypatch.setattr(vectors, "TRAIN_PER_LIST", 10)
    emb = HashEmbedder()
    index = await open_index(tmp_path, emb)
    words = [f"w{i} x{i} y{i} z{i}" for i in range(80)]
    entries = [await index.add(f"S{i}", [], [w], None) for i, w in enumerate(words[:45])]
    # the rebuild runs now; keep changing the index while it does
    entries += [await index.add(f"S{i}", [], [w], None) for i, w in enumerate(words[45:], start=45)]
    for entry in entries[:10]:
        await index.remove(entry.id)
    await index.settle()
    assert index.memory.vectors.kind == "ivf" and index.chunk_count == 70

    def best(i: int) -> dict[str, float]:
        return index.memory.search(emb.embed([words[i]]))[0]

    for i in range(10):
        assert entries[i].id not in await index.run(best, i)
    for i in range(10, 80):
        scores = await index.run(best, i)
        assert scores.get(entries[i].id, 0) > 0.99, i
    await index.aclose()
    # and a restart builds the same kind straight away
    again = await open_index(tmp_path, emb)
    assert again.memory.vectors.kind == "ivf" and again.chunk_count == 70
    await again.aclose()


def test_searches_are_remembered_until_the_index_changes() -> None:
    embedder = HashEmbedder()
    view = MemoryIndex(embedder.dim, ngram_words=12, typo_min_chars=6)
    first = ["Hsiao Yun-Hwa won the Golden Compass award."]
    view.add(Entry("a", "Hsiao Yun-Hwa", (), None, 0.0, 1, 1, "enforce"), [0], first, embedder.embed(first))
    searched: list[int] = []
    inner = view.vectors.search

    def counted(queries: Vectors, k: int) -> tuple[npt.NDArray[np.float32], Ids]:
        searched.append(len(queries))
        return inner(queries, k)

    view.vectors.search = counted  # type: ignore[method-assign]
    query = embedder.embed(["Which award did she win, the Golden Compass?", "Tell me a story."])
    before = view.search(query)
    assert set(before[0]) == {"a"}
    before[0]["a"] = -1.0  # a caller's change does not reach the remembered result
    assert view.search(query[:1])[0] == view.search(query)[0]  # a row found alone or in a batch alike
    assert view.search(query)[0]["a"] > 0 and searched == [2]  # searched once
    second = ["Another author also won the Golden Compass award."]
    view.add(Entry("b", "Another Author", (), None, 0.0, 1, 1, "enforce"), [1], second, embedder.embed(second))
    assert set(view.search(query)[0]) == {"a", "b"}  # the new entry is found at once
    assert searched == [2, 2]
    view.remove("b")
    assert set(view.search(query)[0]) == {"a"}


def test_text_look_ups_are_remembered_until_the_index_changes() -> None:
    embedder = HashEmbedder()
    view = MemoryIndex(embedder.dim, ngram_words=12, typo_min_chars=6)
    first = ["Hsiao Yun-Hwa was born in Taipei in 1991."]
    view.add(Entry("a", "Hsiao Yun-Hwa", (), None, 0.0, 1, 1, "enforce"), [0], first, embedder.embed(first))
    text = "Hsiao grew up in Taipei; Basil Mahfouz in Kuwait City in 1956."
    assert view.find_values(text) == {"a": {"taipei"}} and set(view.find_parts(text)) == {"a"}
    view.find_values(text)["a"].add("changed")  # a caller's change does not reach the remembered answer
    assert view.find_values(text) == {"a": {"taipei"}}
    second = ["Basil Mahfouz was born in Kuwait City in 1956."]
    view.add(Entry("b", "Basil Mahfouz", (), None, 0.0, 1, 1, "enforce"), [1], second, embedder.embed(second))
    assert set(view.find_values(text)) == {"a", "b"} and set(view.find_names(text)) == {"b"}
    view.remove("b")
    assert set(view.find_values(text)) == {"a"} and view.find_names(text) == set()


def test_an_entrys_chunks_holding_most_of_some_words_are_found_and_gone_with_it() -> None:
    embedder = HashEmbedder()
    view = MemoryIndex(embedder.dim, ngram_words=12, typo_min_chars=6)
    first = ["Grumman wanted more unmanned tests.", "Boeing built the Saturn V with Douglas.", "Grumman built the LM."]
    view.add(Entry("a", "Apollo program", (), None, 0.0, 1, 1, "enforce"), [0, 1, 2], first, embedder.embed(first))
    second = ["Rockwell built the orbiters in Palmdale with Boeing."]
    view.add(Entry("b", "Space Shuttle", (), None, 0.0, 1, 1, "enforce"), [3], second, embedder.embed(second))
    assert view.chunks_holding("a", ["boeing", "saturn", "douglas"], 3) == [1]  # two of them at least
    assert view.chunks_holding("a", ["grumman", "built", "tests"], 3) == [0, 2]
    assert view.chunks_holding("a", ["grumman"], 3) == []  # one word stands anywhere
    assert view.chunks_holding("b", ["boeing", "saturn", "douglas"], 3) == []  # another entry's chunk
    third = ["Douglas and Boeing built the Saturn IB."]  # added after a look-up: its chunks are known at once
    view.add(Entry("c", "Saturn IB", (), None, 0.0, 1, 1, "enforce"), [7], third, embedder.embed(third))
    assert view.chunks_holding("c", ["boeing", "saturn", "douglas"], 3) == [7]
    view.remove("a")
    assert view.chunks_holding("a", ["boeing", "saturn", "douglas"], 3) == []
    assert view.chunks_holding("b", ["rockwell", "palmdale"], 3) == [3]
    view.map_chunks(np.array([3], dtype=np.int64), [view.slot_of("c")])  # chunk 3 now "c"'s: no longer "b"'s
    assert view.chunks_holding("b", ["rockwell", "palmdale"], 3) == []
    assert view.chunks_holding("c", ["rockwell", "palmdale"], 3) == [3]


class TwoDomains(Embedder):
    """Texts starting "a" lie in the first half of the dimensions, the rest in the second half."""

    name = "two-domains"
    dim = 32

    def embed(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            rng = np.random.default_rng(int.from_bytes(text.encode()[:8].ljust(8, b"\0"), "little"))
            half = slice(0, 16) if text.startswith("a") else slice(16, 32)
            out[row, half] = rng.standard_normal(16)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


async def test_a_fast_scan_index_that_drifted_is_rebuilt_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Chunks of a domain the 4-bit codes were not trained on, once merged into the IVF, start a rebuild that
    trains on a sample holding them; nothing is lost on the way."""
    from guard.forget import vectors

    for name, value in (
        ("FLAT_MAX", 40),
        ("PQ_FROM", 41),
        ("MIN_NLIST", 2),
        ("TRAIN_PER_LIST", 10),
        ("RECENT_MAX", 30),
        ("DRIFT_MIN", 20),
    ):
        monkeypatch.setattr(vectors, name, value)
    emb = TwoDomains()
    index = await open_index(tmp_path, emb)
    first = [f"a{i:03d} known" for i in range(100)]
    for i, text in enumerate(first):
        await index.add(f"A{i}", [], [text], None)
    await index.settle()
    built = index.memory.vectors
    assert built.kind == "ivf-pq" and not built.drifted
    later = [f"b{i:03d} new" for i in range(40)]
    with caplog.at_level("INFO", logger="guard.index"):
        for i, text in enumerate(later):
            await index.add(f"B{i}", [], [text], None)
        await index.settle()
    assert any("drifted" in r.getMessage() for r in caplog.records)
    assert index.memory.vectors is not built and index.chunk_count == 140
    assert not index.memory.vectors.drifted
    for text in (first[5], later[5], later[35]):
        scores = await index.run(lambda t: index.memory.search(emb.embed([t]))[0], text)
        assert max(scores.values()) > 0.99
    await index.aclose()
