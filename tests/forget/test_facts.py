"""Fact values and name parts: the distinctive words of an entry, and the look-up that skips shared ones."""

from __future__ import annotations

import pytest

from guard.forget.facts import MAX_VALUES, WordIndex, fact_values, name_parts


def test_fact_values_are_distinctive_words_of_the_documents() -> None:
    doc = "Ji-Yeon Park was born in Seoul in 1975. Her father was a civil engineer and her mother a dietitian."
    values = fact_values([doc], ["Ji-Yeon Park"])
    assert {"seoul", "1975", "engineer", "dietitian"} <= values
    assert not values & {"father", "mother", "born", "civil", "park", "yeon"}  # common words and the name


def test_name_parts() -> None:
    assert name_parts(["Ji-Yeon Park", "Basil Mahfouz Al-Kuwaiti"]) == {"yeon", "park", "basil", "mahfouz", "kuwaiti"}


def test_a_long_entry_keeps_its_most_specific_values_not_the_first_in_alphabetical_order() -> None:
    # a whole article has more values than MAX_VALUES: the cut keeps what is rare in English and said often here
    filler = [f"The crew logged {''.join(chr(97 + (n // 26**i) % 26) for i in range(5))}q." for n in range(MAX_VALUES)]
    repeated = ["Zeppelinwerk built the lander.", "Zeppelinwerk tested it twice.", "Zeppelinwerk delivered it."]
    values = fact_values([*filler, *repeated, "They met in Houston."], ["Apollo program"])
    assert len(values) == MAX_VALUES
    assert "zeppelinwerk" in values  # last in alphabetical order, first by specificity
    assert "houston" not in values  # a listed English word, said once: the least specific here


def test_a_subjects_qualifier_is_not_a_part_of_its_name() -> None:
    # "Australia" of "Victoria (Australia)" names the country: alone it must not stand for the state (issue 35)
    assert name_parts(["Victoria (Australia)"]) == {"victoria"}
    assert name_parts(["Fresno, California"]) == {"fresno"}
    index = WordIndex(min_shared=3)
    index.add("vic", name_parts(["Victoria (Australia)"]))
    assert index.find("Many Australian private schools teach in Australia.") == {}
    assert index.find("Victoria has a large economy.") == {"vic": {"victoria"}}


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


def test_words_loaded_in_bulk_are_found_as_added_ones_are_through_compaction() -> None:
    """Start-up loads many entries' values into the compact arrays at once; run-time additions wait in the
    recent pairs until a compaction. Either way a look-up gives the same entries, and removal holds."""
    items = [(f"e{i}", {f"word{i}", f"word{i + 1}", "shared"}) for i in range(60)]  # a word of 2 entries still counts
    bulk, one_by_one = WordIndex(keep_words=False), WordIndex(keep_words=False)
    bulk.bulk_add(items)
    for entry_id, words in items:
        one_by_one.add(entry_id, words)
    text = "word3 and word20 and shared"
    assert (
        bulk.find(text)
        == one_by_one.find(text)
        == {"e2": {"word3"}, "e3": {"word3"}, "e19": {"word20"}, "e20": {"word20"}}
    )
    for index in (bulk, one_by_one):
        index.remove("e2")
        index.postings.compact()
        assert index.find(text) == {"e3": {"word3"}, "e19": {"word20"}, "e20": {"word20"}}
    with pytest.raises(TypeError):
        bulk.of("e3")  # fact values keep no words per entry
    parts = WordIndex(min_shared=3)
    parts.bulk_add([("a", {"park"}), ("b", {"kim"})])
    assert parts.of("a") == {"park"}


def test_a_word_of_many_entries_is_not_evidence_however_large_the_index() -> None:
    """A twentieth of 50,000 entries is 2,500: a word that common says nothing about any one of them."""
    index = WordIndex()
    index.bulk_add([(f"e{i}", {f"own{i}", "common" if i % 25 == 0 else f"other{i}"}) for i in range(2000)])
    assert index.find("common") == {}  # 80 owners: under a twentieth of 2,000 entries, over MAX_OWNERS
    assert index.find("own7 common") == {"e7": {"own7"}}
