"""The content words of each chunk and entry, held as hashes (issue 35)."""

from __future__ import annotations

import numpy as np

from guard.forget.chunkwords import ChunkWords


def test_the_words_of_chunks_and_entries_are_found_and_forgotten_with_their_entry() -> None:
    words = ChunkWords()
    words.add(["a", "a", "b"], [0, 5, 3000], ["Grumman built the LM.", "Houston, Texas.", "Rockwell built orbiters."])
    words.add_names("a", ["Apollo program"])
    assert words.found([0], ["grumman", "houston", "the"]) == {"grumman"}  # function words are not held
    assert words.found([0, 5], ["grumman", "houston"]) == {"grumman", "houston"}
    assert words.found([3000, 99999], ["rockwell", "grumman"]) == {"rockwell"}  # an unknown id holds nothing
    assert words.lacks("a", ["apollo", "texas", "rockwell"]) == {"rockwell"}  # names count as the entry's words
    assert words.lacks("nobody", ["apollo"]) == {"apollo"}
    words.remove("a", np.array([0, 5]))
    assert words.found([0, 5], ["grumman", "houston"]) == set()
    assert words.lacks("a", ["apollo"]) == {"apollo"}
    assert words.found([3000], ["rockwell"]) == {"rockwell"}


def test_compaction_keeps_every_live_chunks_words() -> None:
    words = ChunkWords()
    n = 10_000  # 80,000 words: removing all but ten leaves more garbage than the compaction floor
    for i in range(n):
        words.add([f"e{i}"], [i], [f"word{i} other{i} third{i} fourth{i} fifth{i} sixth{i} seventh{i} eighth{i}"])
    for i in range(0, n - 10):  # most go: the garbage outweighs the live words and the store compacts
        words.remove(f"e{i}", np.array([i]))
    assert all(words.found([i], [f"word{i}", f"eighth{i}"]) == {f"word{i}", f"eighth{i}"} for i in range(n - 10, n))
    assert words.found([0], ["word0"]) == set()
    assert words._used < 8 * n // 4  # compacted once the garbage outweighed the floor (not every removal)
    words.add(["late"], [n + 1], ["latecomer"])
    assert words.found([n + 1], ["latecomer"]) == {"latecomer"}


def test_each_chunk_counts_the_words_it_uses_removed_and_unknown_chunks_none() -> None:
    store = ChunkWords()
    store.add(["a", "a", "b"], [0, 1, 5], ["Grumman wanted unmanned tests", "Boeing built rockets", "Grumman tests"])
    words = ["grumman", "tests", "rockets", "moon"]
    assert store.counts(np.array([0, 1, 5, 3, 99], dtype=np.int64), words).tolist() == [2, 1, 2, 0, 0]
    store.remove("b", np.array([5], dtype=np.int64))
    assert store.counts(np.array([5, 0], dtype=np.int64), words).tolist() == [0, 2]
    assert store.counts(np.array([], dtype=np.int64), words).tolist() == []
