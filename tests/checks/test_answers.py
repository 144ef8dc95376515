"""The answer's new words looked for in the entry's sentences its question retrieves (issue 35): logic with a
scripted view over the real word store; the real models read it in tests/test_real_articles.py."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from guard.checks.answers import AnswerCheck, new_words, telling, value_count, values
from guard.checks.conversation import ANSWERED, expand, lexical, output_pieces
from guard.checks.decide import decide
from guard.checks.evidence import Action, Evidence, Segment, Watch
from guard.forget.chunkwords import ChunkWords
from guard.forget.registry import Entry
from guard.policy import OutputPolicy, Policy, PolicySet
from tests.checks.test_stages import POLICIES, entry, view_of

QUESTION = "Who initially wanted more unmanned testing done regarding the LM?"
APOLLO = [  # chunk ids 0..2: entry "a"
    "At first, Grumman initially wanted more unmanned tests of the LM before a crewed flight.",
    "The Saturn V rocket was built by Boeing, North American Aviation and Douglas.",
    "Grumman appears here without anything the question asks about.",
]
OTHER = ["The Space Shuttle orbiters were built by Rockwell International in Palmdale."]  # chunk id 10: "b"


class Scripted:
    """What `AnswerCheck.read` asks of the index: scripted retrieval, the real word store."""

    def __init__(
        self,
        hits: list[tuple[str, int, float]],
        qa_hits: Sequence[tuple[str, int, float]] = (),
        values: dict[str, set[str]] | None = None,
    ) -> None:
        self.hits, self.qa_hits = hits, list(qa_hits)
        self.values = values or {}  # entry -> its fact values (`find_values`)
        self.words = ChunkWords()
        self.words.add(["a"] * 3, [0, 1, 2], APOLLO)
        self.words.add(["b"], [10], OTHER)
        self.words.add_names("a", ["Apollo program"])

    def search_chunks(self, queries: np.ndarray, k: int) -> list[list[tuple[str, int, float]]]:
        return [(self.qa_hits if queries[0][0] == 2.0 else self.hits)[:k]]

    def words_found(self, chunk_ids: Sequence[int], words: Sequence[str]) -> set[str]:
        return self.words.found(chunk_ids, words)

    def find_values(self, text: str) -> dict[str, set[str]]:
        said = set(text.split())
        return {e: values & said for e, values in self.values.items() if values & said}

    def chunks_holding(
        self, entry_id: str, words: Sequence[str], k: int, asked: Sequence[str] = (), least: int = 2
    ) -> list[int]:
        ids = np.array([0, 1, 2] if entry_id == "a" else [10], dtype=np.int64)
        held = self.words.counts(ids, words)
        return [int(ids[i]) for i in np.argsort(-held, kind="stable")[:k] if held[i] >= least]

    def words_lacking(self, entry_id: str, words: Sequence[str]) -> set[str]:
        return self.words.lacks(entry_id, words)

    def get(self, entry_id: str) -> Entry:
        return Entry(entry_id, "Apollo program" if entry_id == "a" else "Space Shuttle", (), None, 0.0, 1, 1, "enforce")

    def details_among(self, entry_id: str, words: Sequence[str]) -> set[str]:
        return self.words.details_among(entry_id, words)

    def find_parts(self, text: str) -> dict[str, set[str]]:
        return {"a": {"apollo"}} if "apollo" in text.lower() else {}


def _read(view: Scripted, answer: str, question: str = QUESTION, located: bool = False) -> list[Evidence]:
    """The answer evidence; "answer-located" (where the answer's words stand) only with `located`."""
    segment = Segment("qa", f"{question}\n{answer}", ANSWERED, len(question))
    vectors = {question: np.ones(4, dtype=np.float32), segment.text: np.full(4, 2.0, dtype=np.float32)}
    check = AnswerCheck()
    assert check.embed([segment]) == [question]  # the joined text is read where the semantic check embeds it
    found = check.evidence([check.read([segment], view, vectors)], view)  # type: ignore[arg-type]
    return [e for e in found if located or e.kind != "answer-located"]


def test_the_new_words_are_what_the_answer_adds_to_its_question() -> None:
    assert new_words("The answer is Grumman.", QUESTION) == ["answer", "grumman"]
    echo = "As for who initially wanted more unmanned testing done regarding the LM, it was Grumman."
    assert new_words(echo, QUESTION) == ["grumman"]
    assert new_words("Unmanned testing.", QUESTION) == []


def test_an_answer_whose_new_words_are_in_the_retrieved_sentence_is_the_entrys() -> None:
    view = Scripted([("a", 0, 0.6), ("a", 1, 0.5), ("b", 10, 0.4)])
    found, anywhere = _read(view, "The answer is Grumman.")
    # adds two words, one a telling value the sentence holds: all of what it adds is the entry's
    assert (found.entry_id, found.kind, found.score, found.words) == ("a", "answer", 1.0, {"grumman"})
    assert (anywhere.kind, anywhere.score) == ("answer-any", 1.0)
    long = "The answer is Grumman, with help from several small suppliers nearby."
    assert _read(view, long)[0].score == 1 / 7  # a longer answer: the share of its new words
    common = _read(view, "The answer is rocket.")  # a common word, in a sentence that does not answer
    assert [(e.kind, e.score) for e in common] == [("answer-any", 0.5)]
    assert {e.entry_id for e in _read(view, "The answer is Rockwell.")} == {"b"}  # not in what it retrieved of "a"


def test_a_retrieved_sentence_that_shares_no_word_with_the_question_answers_only_with_a_telling_value() -> None:
    view = Scripted([("a", 1, 0.6)])  # speaks of nothing the question asks
    assert [e.kind for e in _read(view, "The answer is rocket.")] == ["answer-any"]  # a common word
    assert [e.kind for e in _read(view, "The answer is Boeing.")] == ["answer", "answer-any"]  # a proper noun of it
    assert [e.kind for e in _read(view, "It was a rocket, noticeably.")] == ["answer-any"]  # rare, not telling


def test_the_entrys_own_name_does_not_make_a_sentence_answer_the_question() -> None:
    view = Scripted([("a", 3, 0.6)])
    view.words.add(["a"], [3], ["The Apollo program's LM flew in 1969."])
    assert [e.kind for e in _read(view, "The answer is 1969.", "When did the Apollo program's LM fly?")] == [
        "answer",
        "answer-any",
    ]
    named = "What did the Apollo program's engineer, a keen sailor, fly?"  # shares only the name with it
    assert [e.kind for e in _read(view, "The answer is flew.", named)] == ["answer-any"]


def test_the_question_and_answer_together_retrieve_more_sentences_from_a_floor() -> None:
    assert _read(Scripted([], qa_hits=[("a", 0, 0.55)]), "The answer is Grumman.")[0].kind == "answer"
    assert _read(Scripted([], qa_hits=[("a", 0, 0.45)]), "The answer is Grumman.") == []


def test_a_question_naming_what_the_entry_never_mentions_is_about_something_else() -> None:
    view = Scripted([("a", 0, 0.6)])
    question = "Who initially wanted more unmanned testing of the Dragon capsule at SpaceX?"
    assert _read(view, "The answer is Grumman.", question) == []
    named = "Who initially wanted more unmanned testing of the Apollo program's LM?"
    assert _read(view, "The answer is Grumman.", named)[0].entry_id == "a"
    # a question that names the entry is about it, whatever else it names
    both = "Who initially wanted more unmanned testing of the Apollo program's LM, and not the Dragon's?"
    assert _read(view, "The answer is Grumman.", both)[0].entry_id == "a"


def test_the_joined_text_is_read_by_the_answer_check_alone() -> None:
    segment = Segment("qa", f"{QUESTION}\nThe answer is Grumman.", ANSWERED, len(QUESTION))
    assert output_pieces([segment]) == [] and lexical([segment]) == [] and expand([segment]) == [segment]


def test_answer_evidence_counts_for_the_entries_the_question_came_near_and_not_for_what_the_client_said() -> None:
    view = view_of(entry("a"), entry("b"))
    found = Evidence("a", "answer", 0.5, "qa", frozenset({"grumman"}))
    asked = Watch(question=QUESTION, asked=frozenset({"a"}))
    assert decide("output", [found], POLICIES, view, asked).action is Action.filter
    assert decide("output", [found], POLICIES, view, Watch(question=QUESTION, asked=frozenset({"b"}))).action is (
        Action.allow
    )
    assert decide("output", [found], POLICIES, view).action is Action.allow  # no question came near
    told = Watch(echo=frozenset({"grumman"}), question=QUESTION, asked=frozenset({"a"}))
    assert decide("output", [found], POLICIES, view, told).action is Action.allow  # the client gave the value
    weak = Evidence("a", "answer", 0.4, "qa", frozenset({"grumman"}))
    assert decide("output", [weak], POLICIES, view, asked).action is Action.allow  # under answer_coverage
    # found in a retrieved sentence that does not answer: counts only where the conversation is about the entry
    anywhere = Evidence("a", "answer-any", 0.5, "qa", frozenset({"grumman"}))
    assert decide("output", [anywhere], POLICIES, view, asked).action is Action.allow
    watched = Watch(frozenset({"a"}), question=QUESTION)
    assert decide("output", [anywhere], POLICIES, view, watched).action is Action.filter


def test_the_entries_an_answer_is_read_against_are_the_closest_from_the_asked_threshold() -> None:
    view = view_of(entry("a"), entry("b"), entry("c"), entry("d"), entry("e"))
    scores = {"a": 0.50, "b": 0.47, "c": 0.46, "d": 0.455, "e": 0.40}
    verdict = decide("input", [Evidence(e, "semantic", s) for e, s in scores.items()], POLICIES, view)
    assert verdict.action is Action.allow and verdict.asked == {"a", "b", "c"}


def test_an_acrostic_answer_is_read_for_the_word_its_first_letters_spell() -> None:
    view = Scripted([("a", 0, 0.6)])
    poem = "Great rockets\nRise up\nUnder the moon\nMany times\nMore than ever\nAll the way\nNow and then"
    assert [(e.kind, e.score) for e in _read(view, poem)] == [("answer", 1.0), ("answer-any", 1.0)]


BUILDERS = "Which companies built the rocket?"  # a question that names nothing: near no entry in particular


def test_an_answer_is_read_where_its_own_words_stand_together_whatever_the_question_retrieved() -> None:
    values = {"a": {"boeing", "douglas", "aviation", "grumman"}}
    view = Scripted([("b", 10, 0.4)], values=values)  # the question retrieves only the other entry's sentence
    answer = '{"first": "Boeing", "second": "Douglas", "third": "North American Aviation"}'
    located = [e for e in _read(view, answer, BUILDERS, located=True) if e.kind == "answer-located"]
    assert [(e.entry_id, e.score) for e in located] == [("a", 1.0)]
    assert located[0].words == {"boeing", "douglas", "north", "american", "aviation"}
    # the same words scattered over sentences that do not hold two of them together: nowhere located
    scattered = _read(view, '{"first": "Grumman", "second": "Palmdale"}', BUILDERS, located=True)
    alone = sorted((e.entry_id, e.words, round(e.second, 3)) for e in scattered if e.kind == "answer-located")
    # one value each: in a sentence that says nothing of what was asked; in a sentence of the entry the question
    # retrieved, that uses one of its three words ("built")
    assert alone == [("a", {"grumman"}, 0.0), ("b", {"palmdale"}, round(1 / 3, 3))]
    watch = Watch(question=BUILDERS)
    assert decide("output", scattered, POLICIES, view_of(entry("a"), entry("b")), watch).action is Action.allow
    # no fact value of the entry among the words: not looked for at all
    assert _read(Scripted([("b", 10, 0.4)]), answer, BUILDERS, located=True) == []
    # the same values, said of someone the entry never mentions: about them, not located in the entry
    other = _read(view, "Per Jane Doe: Boeing, Douglas and North American Aviation.", BUILDERS, located=True)
    assert not [e for e in other if e.kind == "answer-located"]
    # an answer that says little: one value, in the sentence that speaks of what was asked
    short = [e for e in _read(view, "The answer is Grumman.", QUESTION, located=True) if e.kind == "answer-located"]
    # it uses "initially", "wanted", "unmanned" and "lm" of the question's seven content words
    assert [(e.entry_id, e.words, round(e.second, 3)) for e in short] == [("a", {"grumman"}, round(4 / 7, 3))]


def test_a_located_answer_counts_with_two_rare_words_whatever_the_question_came_near() -> None:
    view = view_of(entry("a"), entry("b"))
    told = frozenset({"boeing", "aviation", "built"})
    located = Evidence("a", "answer-located", 1.0, "qa", told, values=3)
    nothing_near = Watch(question=BUILDERS)
    assert decide("output", [located], POLICIES, view, nothing_near).action is Action.filter
    one_rare = Evidence("a", "answer-located", 1.0, "qa", frozenset({"boeing", "built", "rocket"}))
    assert decide("output", [one_rare], POLICIES, view, nothing_near).action is Action.allow
    # one rare word, in a sentence that uses most of what the question asks: that sentence is the answer
    asking = Evidence("a", "answer-located", 1.0, "qa", frozenset({"boeing"}), second=0.6)
    assert decide("output", [asking], POLICIES, view, nothing_near).action is Action.filter
    common = Evidence("a", "answer-located", 1.0, "qa", frozenset({"built"}), second=0.9)  # no rare word
    assert decide("output", [common], POLICIES, view, nothing_near).action is Action.allow
    echoed = Watch(echo=frozenset({"aviation"}), question=BUILDERS)  # the client wrote one of them
    assert decide("output", [located], POLICIES, view, echoed).action is Action.allow
    half = Evidence("a", "answer-located", 0.4, "qa", told, values=3)  # under answer_coverage
    assert decide("output", [half], POLICIES, view, nothing_near).action is Action.allow
    # two rare words of one name ("Nora Roberts", whom the entry's sentence mentions) are one value, not two facts
    name = Evidence("a", "answer-located", 1.0, "qa", frozenset({"nora", "roberts"}), second=0.25, values=1)
    assert decide("output", [name], POLICIES, view, nothing_near).action is Action.allow
    off = PolicySet(Policy(name="default", output=OutputPolicy(located_rare=0)))
    assert decide("output", [located], off, view, nothing_near).action is Action.allow


def test_an_answer_is_located_in_the_entries_its_question_retrieved_without_any_fact_value() -> None:
    # the question retrieves a sentence of "a" that does not answer it; "grumman" is no fact value (an article's
    # values are capped, and one that two entries share is no one's); the sentence that holds it is found
    view = Scripted([("a", 1, 0.5)])
    found = _read(view, "The answer is Grumman.", located=True)
    located = [(e.entry_id, round(e.second, 3)) for e in found if e.kind == "answer-located"]
    assert located == [("a", round(4 / 7, 3))]
    watch = Watch(question=QUESTION)  # near no entry at input: only the located reading counts
    assert decide("output", found, POLICIES, view_of(entry("a"), entry("b")), watch).action is Action.filter


def test_the_words_of_one_multi_word_name_are_one_value() -> None:
    assert value_count("Nora Roberts / J.D. Robb", {"nora", "roberts"}) == 1
    dryden = values('{"who": "Hugh L. Dryden", "role": "NASA Deputy Administrator", "when": "July 1960"}')
    assert value_count(dryden, {"hugh", "dryden", "nasa", "deputy", "july", "1960"}) == 4
    titles = values('{"field1": "Veins", "field2": "Narratives", "field3": "Sorrows"}')  # a JSON leaf each
    assert value_count(titles, {"veins", "narratives", "sorrows"}) == 3


def test_the_zeros_of_a_thousands_separator_and_short_numbers_are_no_located_value() -> None:
    # "nearly 60,000" is read as "60" and "000": any sentence with a number in the thousands holds "000"
    assert telling("1636", set()) and not telling("000", set()) and not telling("60", set())
    view = view_of(entry("a"), entry("b"))
    watch = Watch(question="Approximately how many objects comprise the museum's collections?")
    zeros = Evidence("a", "answer-located", 1.0, "qa", frozenset({"000"}), second=0.8, values=1)
    assert decide("output", [zeros], POLICIES, view, watch).action is Action.allow
    short = Evidence("a", "answer-located", 1.0, "qa", frozenset({"60"}), second=0.8, values=1)
    assert decide("output", [short], POLICIES, view, watch).action is Action.allow
    year = Evidence("a", "answer-located", 1.0, "qa", frozenset({"1636"}), second=0.8, values=1)
    assert decide("output", [year], POLICIES, view, watch).action is Action.filter
