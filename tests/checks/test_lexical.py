"""Which mentions of a part of a forgotten name refer to the forgotten person (pure functions, no model)."""

from __future__ import annotations

import pytest

from guard.checks.lexical import standalone

OWN = {"jae", "yeon", "park"}


@pytest.mark.parametrize(
    "text",
    [
        "Can you specify the birthplace of author Park? Give only the values.",  # next sentence is not a name
        "Has Park received international recognition for his work?",  # a common word opening the sentence
        "What did Park's father do?",
        "Tell me about Jae Park.",  # the entry's own parts side by side
        "Park: where was he born?",
    ],
)
def test_a_part_on_its_own_refers_to_the_entry(text: str) -> None:
    assert standalone(text, "park", OWN)


@pytest.mark.parametrize(
    "text",
    [
        "What did Mina Park write?",  # another person's given name beside it
        "Park Soo-min wrote three novels.",  # another person's name after it
        "Ji-Park is a pen name.",  # a compound with another name's part
        "Kebede Park was born in Addis Ababa.",  # an uncommon capitalised word opening the sentence
    ],
)
def test_a_part_inside_someone_elses_name_does_not(text: str) -> None:
    assert not standalone(text, "park", OWN)
