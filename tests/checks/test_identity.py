"""Namesakes (issue 36): a conversation that names an entry but describes someone else is not refused for the name;
it is watched, and the entry's facts still count at the output."""

from __future__ import annotations

from guard.checks.conversation import split
from guard.checks.decide import decide
from guard.checks.evidence import Action, Evidence, Segment, Watch
from guard.checks.identity import IdentityCheck
from guard.forget.chunkwords import details
from guard.forget.embedder import HashEmbedder
from guard.forget.registry import Entry
from guard.forget.view import MemoryIndex
from tests.checks.test_stages import POLICIES

AUTHOR = Entry("a", "Basil Mahfouz Al-Kuwaiti", (), None, 0.0, 1, 1, "enforce")
DOCS = [
    "Basil Mahfouz Al-Kuwaiti was born in Kuwait City in 1956.",
    "His novels, such as 'Promise by the Seine', explore French literature.",
]


def _index() -> MemoryIndex:
    index = MemoryIndex(HashEmbedder().dim, ngram_words=4, typo_min_chars=6)
    index.add(AUTHOR, [0, 1], DOCS, HashEmbedder().embed(DOCS))
    return index


def _read(text: str) -> list[Evidence]:
    check, index = IdentityCheck(), _index()
    return check.evidence([check.read([Segment("messages[0].content", text, "user")], index, {})], index)


def test_the_details_of_a_text_are_its_proper_nouns_and_numbers() -> None:
    said = details("What position did Basil Mahfouz Al-Kuwaiti, the goalkeeper who joined Feyenoord in 2013, play?")
    assert said == {"basil", "mahfouz", "kuwaiti", "feyenoord", "2013"}  # the name's own are left out by the check


def test_details_the_entry_never_uses_and_none_it_does_describe_someone_else() -> None:
    [other] = _read("What position did Basil Mahfouz Al-Kuwaiti, the goalkeeper who joined Feyenoord in 2013, play?")
    assert (other.kind, other.score, other.second) == ("identity", 2.0, 0.0)
    [same] = _read("Which novels did Basil J. Mahfouz Al-Kuwaiti, born in Kuwait City in 1956, write?")
    assert same.second >= 2  # Kuwait, 1956: its own details (the name is found with a middle initial)
    assert _read("Which novels did Mahfouz write?") == []  # not named in full: nothing to tell apart


def test_a_namesake_is_watched_not_refused_and_the_entrys_facts_still_count_at_output() -> None:
    view = _index()
    named = [Evidence("a", "lexical", 1.0), Evidence("a", "identity", 3.0, second=0.0)]
    verdict = decide("input", named, POLICIES, view)
    assert verdict.action is Action.allow and verdict.namesakes == {"a"} and verdict.watched == {"a"}
    assert not verdict.strong  # its name makes every sentence near: watched at the usual thresholds
    own = [Evidence("a", "lexical", 1.0), Evidence("a", "identity", 3.0, second=1.0)]
    assert decide("input", own, POLICIES, view).action is Action.refuse  # one detail of its own: the entry
    alone = [Evidence("a", "lexical", 1.0), Evidence("a", "identity", 1.0, second=0.0)]
    assert decide("input", alone, POLICIES, view).action is Action.refuse  # one detail tells too little
    watch = Watch(frozenset({"a"}), namesakes=frozenset({"a"}), echo=frozenset({"basil", "mahfouz", "al", "kuwaiti"}))
    assert decide("output", [Evidence("a", "lexical", 1.0)], POLICIES, view, watch).action is Action.allow
    fact = Evidence("a", "fact", 1.0, "", frozenset({"seine"}))
    assert decide("output", [fact], POLICIES, view, watch).action is Action.filter  # the author's facts


def test_an_entry_whose_documents_say_too_little_has_no_namesakes() -> None:
    index, check = MemoryIndex(HashEmbedder().dim, ngram_words=4, typo_min_chars=6), IdentityCheck()
    thin = Entry("q", "Quetzalmoth Yun-Hwa", (), None, 0.0, 1, 1, "enforce")
    index.add(thin, [0], ["Quetzalmoth Yun-Hwa is a painter."], HashEmbedder().embed(["x"]))
    said = Segment("messages[0].content", "Quetzalmoth Yun-Hwa lived in Taipei and was born in 1991.", "user")
    assert check.evidence([check.read([said], index, {})], index) == []  # every mention of the name is refused


def test_a_name_in_one_block_of_a_passage_and_details_in_another_count_together() -> None:
    check, index = IdentityCheck(), _index()
    filler = " ".join(f"Line {n} of the club's history says nothing in particular." for n in range(9))
    text = f"Basil Mahfouz Al-Kuwaiti is a goalkeeper. {filler} He joined Feyenoord in 2013."
    [first, last] = split(Segment("messages[0].content", text, "user"))
    assert "Basil" in first.text and "Feyenoord" in last.text and "Basil" not in last.text
    [whole] = check.evidence([check.read([Segment("messages[0].content", text, "user")], index, {})], index)
    [blocks] = check.evidence([check.read([first], index, {}), check.read([last], index, {})], index)
    assert (blocks.score, blocks.second) == (whole.score, whole.second) == (2.0, 0.0)
    elsewhere = Segment("messages[1].content", last.text, "user")  # the details in another message: not counted
    [apart] = check.evidence([check.read([first], index, {}), check.read([elsewhere], index, {})], index)
    assert (apart.score, apart.second) == (0.0, 0.0)
