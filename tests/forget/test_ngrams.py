from __future__ import annotations

from guard.forget.ngrams import NgramIndex


def test_shared_run_of_n_words_is_found() -> None:
    idx = NgramIndex(n=5)
    idx.add("e1", ["Her first novel, The Silent Lantern, won the Golden Quill in 1998."])
    assert idx.find("I read that the silent lantern won the golden quill award") == {"e1": 3}
    assert idx.find("The Silent Lantern is a novel") == {}  # only 4 shared words in a row
    idx.remove("e1")
    assert idx.find("the silent lantern won the golden quill") == {}


def test_owners_are_tracked_per_entry() -> None:
    idx = NgramIndex(n=3)
    idx.add("a", ["one two three four"])
    idx.add("b", ["two three four five"])
    assert idx.find("two three four") == {"a": 1, "b": 1}
    idx.remove("a")
    assert idx.find("two three four") == {"b": 1}
