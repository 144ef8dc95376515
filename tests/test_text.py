from __future__ import annotations

from anyascii import anyascii

import guard.text as text_module
from guard.text import MAX_CHUNK_CHARS, numbers, sentences, tokens


def test_splits_sentences_and_lines() -> None:
    text = 'He was born in 1990. "Really?" she asked! Yes.\nA list item\n\nAnother'
    assert sentences(text) == ["He was born in 1990.", '"Really?"', "she asked!", "Yes.", "A list item", "Another"]


def test_keeps_abbreviations_without_space_and_cuts_long_runs() -> None:
    assert sentences("Version 3.11 is out") == ["Version 3.11 is out"]
    long = "x" * (MAX_CHUNK_CHARS * 2 + 5)
    parts = sentences(long)
    assert [len(p) for p in parts] == [MAX_CHUNK_CHARS, MAX_CHUNK_CHARS, 5]


def test_no_sentence_ends_after_an_initial_or_an_abbreviation() -> None:
    # a chunk "S." of "U. S." would be as close to every other "S." as a sentence to itself (issue 35)
    text = "He served in the U. S. Army under Gen. Grant. Dr. Smith met J. K. Rowling. Then it rained."
    assert sentences(text) == [
        "He served in the U. S. Army under Gen. Grant.",
        "Dr. Smith met J. K. Rowling.",
        "Then it rained.",
    ]
    assert sentences("It was Plan B.\nNext line") == ["It was Plan B.", "Next line"]  # a newline still ends it
    assert sentences("The score was 24. Then came the parade.") == ["The score was 24.", "Then came the parade."]


def test_blank_text_has_no_sentences() -> None:
    assert sentences("  \n\n ") == []


def test_a_latin_name_inside_text_written_without_spaces_stays_a_word() -> None:
    assert tokens("Hsiao Yun-Hwaが彼女の仕事で")[:3] == ["hsiao", "yun", "hwa"]
    assert tokens("Basil Mahfouz Al-Kuwaiti的父母")[:4] == ["basil", "mahfouz", "al", "kuwaiti"]
    assert tokens("Café Müller, José García") == ["cafe", "muller", "jose", "garcia"]  # accents are not a script


def test_numbers_are_read_in_every_scripts_digits() -> None:
    assert numbers("1956年9月8日出生") == {"1956"}
    assert numbers("ولد عام ١٩٥٦") == {"1956"} == numbers("१९५६ में") == numbers("１９５６年")
    assert numbers("on 8/9/56") == set()


def test_a_long_texts_cut_is_remembered_as_places_and_is_the_same_cut() -> None:
    text = " ".join(f"Sentence {n} names Dr. Ana Müller of the U. S. Army, who wrote {n} books." for n in range(60))
    assert len(text) > 2000
    first, again = sentences(text), sentences(text)
    assert first == again == text_module._sentences(text) and len(first) == 60
    held = repr(text_module._CUT)
    assert "Müller" not in held and "Sentence" not in held  # places, not text
    assert sentences(text + " One more.")[-1] == "One more."  # another text: cut afresh


def test_transliteration_of_the_non_ascii_runs_alone_is_anyascii_of_the_whole() -> None:
    for text in ("Николай Гоголь wrote in 1842.", "Hsiao Yun-Hwaが彼女の", "Ana Müller, café, naïve", "plain"):
        assert text_module.anyascii(text) == anyascii(text)
