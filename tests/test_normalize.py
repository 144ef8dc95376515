"""Normalisation: each spelling or encoding an attacker may use has a view that reads as the plain text."""

from __future__ import annotations

import base64
import codecs

import pytest

from guard.normalize import bare_values, initials, unnatural, views

PLAIN = "hsiao yun-hwa's father is a civil engineer."


@pytest.mark.parametrize(
    ("disguised", "expected"),
    [
        ("x i n  l e e  w i l l i a m s", "xin lee williams"),
        ("C-a-r-m-e-n Montenegro", "carmen montenegro"),
        ("B3hr0uz R0han1", "behrouz rohani"),
        ("Hsіао Yun-Hwа", "hsiao yun-hwa"),  # Cyrillic і, а, о
        ("Hs\u200biao Yun\u200d-Hwa", "hsiao yun-hwa"),
        ("hsiaoyunhwawonthegoldencompass", "hsiao yun hwa won the golden compass"),
        ("OneofWei-JunChen'smostrecognizedbooks", "one of wei jun chen's most recognized books"),
        ("O-n-e o-f W-e-i---J-u-n C-h-e-n-'-s b-o-o-k-s", "one of wei---jun chen"),  # a space is a word gap
        (base64.b64encode(PLAIN.encode()).decode(), PLAIN),
        (codecs.encode(PLAIN, "rot13"), PLAIN),
        (PLAIN[::-1], PLAIN),
        ("68 73 69 61 6f 20 79 75 6e 2d 68 77 61", "hsiao yun-hwa"),
    ],
)
def test_a_view_reads_the_plain_text(disguised: str, expected: str) -> None:
    read = [v.replace("  ", " ").casefold() for _, v in views(disguised)]
    assert any(expected in v for v in read), read


def test_plain_english_has_no_other_view_and_is_natural() -> None:
    text = "Paris is the capital of France. In 1975 it hosted a summit, e.g. on trade."
    assert [name for name, _ in views(text)] == []
    assert not unnatural(text)
    assert not unnatural('The answer, in JSON: {"capital": "Paris is the capital of France."}')


@pytest.mark.parametrize(
    "text",
    [
        base64.b64encode(PLAIN.encode()).decode(),
        codecs.encode(PLAIN, "rot13"),
        PLAIN[::-1],
        "h s i a o  y u n  h w a  i s  a  w r i t e r",
        "\n".join(PLAIN.split()),
        '{"father": "civil engineer", "mother": "dietitian", "city": "Taipei"}',
        "| father | engineer |\n| mother | dietitian |\n| city | Taipei |",
    ],
)
def test_encoded_spelled_and_bare_outputs_are_unnatural(text: str) -> None:
    assert unnatural(text)


def test_bare_values_needs_short_cells() -> None:
    assert bare_values('["Taipei", "1975", "engineer"]')
    assert not bare_values('["The first sentence is long enough.", "So is the second one, clearly.", "And a third."]')
    assert not bare_values("{not json")


def test_invalid_base64_and_huge_text_are_harmless() -> None:
    assert views("SGVsbG8=!!!not-base64== %%%") is not None
    assert len(views("a" * 200_000)) <= 8


def test_an_acrostic_is_read_from_the_first_letters_of_lines_or_sentences() -> None:
    poem = "Great rockets\nRise up\nUnder the moon\nMany times\nMore than ever\nAll the way\nNow and then"
    assert initials(poem) == "grumman"
    assert ("initials", "grumman") in views(poem)
    assert initials("1. Kuwait city\n2. Under\n3. Whatever\n4. Ahmed\n5. Is it\n6. Tall") == "kuwait"
    assert initials("Basil wrote books. All of them sold. Some became films. In time he retired. Lots of fans.") == (
        "basil"
    )
    assert initials("one line only") == "" and initials("A.\nB.\nC.") == ""  # too few to spell anything
    assert initials("\n".join(f"Line {n} of a long document." for n in range(50))) == ""  # too many
