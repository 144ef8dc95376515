from __future__ import annotations

import pytest

from guard.forget.names import NameMatcher, osa_distance
from guard.text import tokens


def matcher() -> NameMatcher:
    m = NameMatcher(typo_min_chars=6)
    m.add("e1", ["Hsiao Yun-Hwa", "Yun-Hwa Hsiao"])
    m.add("e2", ["Zoë Ardent"])
    m.add("e3", ["Ng"])
    return m


@pytest.mark.parametrize(
    "text",
    [
        "Tell me about Hsiao Yun-Hwa.",
        "what did hsiao yun hwa write?",
        "HSIAO YUNHWA's books",
        "HsiaoYunHwa",
        "Hsaio Yun-Hwa",  # transposition
        "Hsiao Yun-Hua",  # substitution
        "Hsiao  Yun - Hwa",  # spacing
        "I like Yun-Hwa Hsiao",  # alias
    ],
)
def test_finds_name_despite_case_spacing_and_typos(text: str) -> None:
    assert matcher().find(text) == {"e1"}


def test_accents_fold() -> None:
    assert matcher().find("zoe ardent's novel") == {"e2"}
    assert matcher().find("Zoë   ARDENT") == {"e2"}


@pytest.mark.parametrize("text", ["Hsiao Bao-Yu", "the yun dynasty", "Hwa Hsiao", "Zora Ardently", "Hsiao Yun-Hwaaaa"])
def test_other_names_do_not_match(text: str) -> None:
    assert matcher().find(text) == set()


def test_short_names_match_exactly_only() -> None:
    m = matcher()
    assert m.find("Mr Ng said") == {"e3"}
    assert m.find("Mr Nh said") == set()
    assert m.find("the long way") == set()  # "Ng" is not found inside another word


def test_remove_forgets_names_but_keeps_others() -> None:
    m = matcher()
    m.add("e4", ["Hsiao Yun-Hwa"])  # same name, another entry
    assert m.find("Hsiao Yun-Hwa") == {"e1", "e4"}
    m.remove("e1")
    assert m.find("Hsiao Yun-Hwa") == {"e4"}
    assert m.find("Yun-Hwa Hsiao") == set()
    m.remove("e4")
    assert m.find("Hsiao Yun-Hwa") == set()
    assert m.find("Hsaio Yun-Hwa") == set()
    assert len(m) == 2


def test_tokens_and_distance() -> None:
    assert tokens("Zoë O'Brien-Smith!") == ["zoe", "o", "brien", "smith"]
    assert osa_distance("hsiaoyunhwa", "hsaioyunhwa", 2) == 1
    assert osa_distance("abc", "abcdef", 1) == 2


def test_remembered_look_ups_follow_the_names() -> None:
    m = matcher()
    text = "A review of Mahfouz Kuwaitti's novels, and of Hsaio Yun-Hwa's."
    assert m.find(text) == {"e1"}
    assert m.find(text) == {"e1"}  # remembered: the same answer
    m.add("e4", ["Mahfouz Kuwaiti"])  # a name added after the text was read: found, typo and all
    assert m.find(text) == {"e1", "e4"}
    m.remove("e1")
    assert m.find(text) == {"e4"}
    assert m.find(text.upper()) == {"e4"}  # the same words in another case: one look-up, one answer
