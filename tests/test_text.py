from __future__ import annotations

from guard.text import MAX_CHUNK_CHARS, sentences


def test_splits_sentences_and_lines() -> None:
    text = 'He was born in 1990. "Really?" she asked! Yes.\nA list item\n\nAnother'
    assert sentences(text) == ["He was born in 1990.", '"Really?"', "she asked!", "Yes.", "A list item", "Another"]


def test_keeps_abbreviations_without_space_and_cuts_long_runs() -> None:
    assert sentences("Version 3.11 is out") == ["Version 3.11 is out"]
    long = "x" * (MAX_CHUNK_CHARS * 2 + 5)
    parts = sentences(long)
    assert [len(p) for p in parts] == [MAX_CHUNK_CHARS, MAX_CHUNK_CHARS, 5]


def test_blank_text_has_no_sentences() -> None:
    assert sentences("  \n\n ") == []
