"""Fact values and name parts: the distinctive words of an entry, and the look-up that skips shared ones."""

from __future__ import annotations

from guard.forget.facts import WordIndex, fact_values, name_parts


def test_fact_values_are_distinctive_words_of_the_documents() -> None:
    doc = "Ji-Yeon Park was born in Seoul in 1975. Her father was a civil engineer and her mother a dietitian."
    values = fact_values([doc], ["Ji-Yeon Park"])
    assert {"seoul", "1975", "engineer", "dietitian"} <= values
    assert not values & {"father", "mother", "born", "civil", "park", "yeon"}  # common words and the name


def test_name_parts() -> None:
    assert name_parts(["Ji-Yeon Park", "Basil Mahfouz Al-Kuwaiti"]) == {"yeon", "park", "basil", "mahfouz", "kuwaiti"}


def test_a_word_many_entries_share_is_not_evidence_for_any() -> None:
    index = WordIndex()
    for i in range(40):
        index.add(f"e{i}", {"literary", f"unique{i}"})
    assert index.find("a literary prize and unique3") == {"e3": {"unique3"}}
    index.add("solo", {"literary"})
    alone = WordIndex()
    alone.add("solo", {"literary"})
    assert alone.find("literary") == {"solo": {"literary"}}  # one entry: its words are its own
    index.remove("e3")
    assert index.find("unique3") == {}


def test_documents_in_another_language_give_numbers_only() -> None:
    """Rarity is judged on English word frequencies: an Arabic document's every word would pass as rare."""
    arabic = ["ولد باسل محفوظ الكويتي في مدينة الكويت في 8 سبتمبر 1956.", "كان والده بائع زهور."]
    assert fact_values(arabic, ["Basil Mahfouz Al-Kuwaiti"]) == {"1956"}
    french = ["Il a reçu le prix Goncourt en 1989 pour ses romans."]
    assert fact_values(french, []) == {"1989"}
    assert {"goncourt", "1989"} <= fact_values(["He received the Prix Goncourt in 1989."], [])
