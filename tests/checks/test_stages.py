"""The check seam: checks give evidence per entry, the entries' policies decide. No model, no index threads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from guard.checks.conversation import Conversation, fragment, input_pieces, output_pieces
from guard.checks.decide import decide
from guard.checks.evidence import INDEX, Action, Evidence, Segment
from guard.checks.stages import CheckSet, Reading, input_checks
from guard.forget.embedder import HashEmbedder, Vectors
from guard.forget.registry import Entry
from guard.forget.view import IndexView, MemoryIndex
from guard.policy import InputAction, InputPolicy, Mode, Policy, PolicySet


def entry(entry_id: str, policy: str | None = None, mode: str = "enforce") -> Entry:
    return Entry(entry_id, f"Subject {entry_id}", (), policy, 0.0, 1, 1, mode)


def view_of(*entries: Entry) -> MemoryIndex:
    view = MemoryIndex(HashEmbedder().dim, ngram_words=4, typo_min_chars=6)
    for e in entries:
        view.load_entry(e)
    return view


POLICIES = PolicySet(
    Policy(name="default"),
    {
        "soft": Policy(name="soft", input=InputPolicy(action=InputAction.rewrite, semantic_threshold=0.9)),
        "watch": Policy(name="watch", mode=Mode.monitor),
    },
)


def test_each_entrys_policy_decides_what_its_evidence_means() -> None:
    view = view_of(entry("a"), entry("b", "soft"))
    close = [Evidence("a", "semantic", 0.75, "messages[0]"), Evidence("b", "semantic", 0.75, "messages[0]")]
    verdict = decide("input", close, POLICIES, view)
    # 0.75 passes the default threshold (0.70) but not soft's (0.90)
    assert verdict.action is Action.refuse and [e.entry_id for e in verdict.matches] == ["a"]
    assert verdict.matches[0].where == "messages[0]"
    only_soft = decide("input", [Evidence("b", "lexical", 1.0, "window")], POLICIES, view)
    assert only_soft.action is Action.rewrite
    assert decide("output", close, POLICIES, view).action is Action.allow  # output threshold is 0.80


def test_monitored_entries_are_recorded_never_enforced_and_unknown_entries_ignored() -> None:
    view = view_of(entry("w", "watch"), entry("m", mode="monitor"))
    evidence = [Evidence("w", "lexical", 1.0), Evidence("m", "verbatim", 2.0), Evidence("gone", "lexical", 1.0)]
    verdict = decide("output", evidence, POLICIES, view)
    assert verdict.action is Action.allow and not verdict.matches
    assert sorted(e.entry_id for e in verdict.monitored) == ["m", "w"]


class Keyword:
    """A new kind of evidence, added to a stage without touching the pipeline."""

    space = None

    def embed(self, segments: Sequence[Segment]) -> list[str]:
        return []

    def passages(self, segments: Sequence[Segment]) -> set[str]:
        return set()

    def read(self, segments: Sequence[Segment], view: IndexView, vectors: Mapping[str, Vectors]) -> list[Evidence]:
        return [Evidence("a", "lexical", 1.0, s.where) for s in segments if "lighthouse" in s.text]

    def evidence(self, readings: Sequence[list[Evidence]], view: IndexView) -> list[Evidence]:
        return [e for reading in readings for e in reading]


class OwnSpace:
    """A check that reads vectors of an embedding space of its own: it names the space, never a key prefix."""

    space = "other"

    def __init__(self) -> None:
        self.given: list[Mapping[str, Vectors]] = []

    def embed(self, segments: Sequence[Segment]) -> list[str]:
        return [s.text for s in segments if s.role == "user"]

    def passages(self, segments: Sequence[Segment]) -> set[str]:
        return set()

    def read(self, segments: Sequence[Segment], view: IndexView, vectors: Mapping[str, Vectors]) -> list[Evidence]:
        self.given.append(vectors)
        return []

    def evidence(self, readings: Sequence[list[Evidence]], view: IndexView) -> list[Evidence]:
        return []


def test_each_check_gets_the_vectors_of_the_space_it_declares() -> None:
    own = OwnSpace()
    stage = CheckSet("input", [*input_checks().checks, own])
    turns = [Segment("messages[0].content", "Where is the lighthouse keeper now?", "user")]
    needs = stage.needs(turns)
    assert needs["other"] == ["Where is the lighthouse keeper now?"]
    assert "Where is the lighthouse keeper now?" in needs[INDEX]  # the same text, MiniLM's space too
    view = MemoryIndex(HashEmbedder().dim, ngram_words=12, typo_min_chars=6)
    view.add(
        Entry("a", "Ada Quill", (), None, 0.0, 1, 1),
        [1],
        ["Ada Quill kept a lighthouse."],
        HashEmbedder().embed(["Ada Quill kept a lighthouse."]),
    )
    mine = np.ones(3, dtype=np.float32)
    theirs = HashEmbedder().embed(needs[INDEX])
    vectors = {"other": {needs["other"][0]: mine}, INDEX: dict(zip(needs[INDEX], theirs, strict=True))}
    stage.verdict(Reading(tuple(turns), POLICIES, view), vectors)
    assert own.given and all(set(v) == set(needs["other"]) for v in own.given)
    assert all(v[needs["other"][0]] is mine for v in own.given)


def test_a_new_check_joins_a_stage_and_its_evidence_counts() -> None:
    view = view_of(entry("a"))
    stage = CheckSet("input", [*input_checks().checks, Keyword()])
    turns = Conversation.of([("messages[0]", "hello"), ("messages[2]", "the lighthouse keeper")], 3).segments()
    verdict = stage.verdict(Reading(tuple(turns), POLICIES, view), {})
    assert verdict.action is Action.refuse and [e.where for e in verdict.matches] == ["messages[2]"]
    assert input_checks().verdict(Reading(tuple(turns), POLICIES, view), {}).action is Action.allow


def test_input_pieces_are_turns_their_sentences_and_the_recent_window() -> None:
    conversation = Conversation.of([("messages[0]", "Say one thing. Then two."), ("messages[1]", "Three")], 2)
    pieces = input_pieces(conversation.segments())
    assert [(p.where, p.text) for p in pieces] == [
        ("messages[0]", "Say one thing. Then two."),
        ("messages[0]", "Say one thing."),
        ("messages[0]", "Then two."),
        ("messages[1]", "Three"),
        ("window", "Say one thing. Then two.\nThree"),
    ]


def test_fragments_are_read_with_their_text_not_embedded_alone() -> None:
    turns = [("messages[0]", "Who wrote The Silent Falcon? (12)"), ("messages[1]", "Thanks! 谁写了这本书？好的。")]
    pieces = [p.text for p in input_pieces(Conversation.of(turns, 1).segments())]
    assert pieces == [
        "Who wrote The Silent Falcon? (12)",
        "Who wrote The Silent Falcon?",
        "Thanks! 谁写了这本书？好的。",
        "谁写了这本书？",
    ]
    assert [fragment(t) for t in ("(12)", "Thanks!", "OK.", "好的。", "谁写了这本书？", "Say it.")] == [
        True,
        True,
        True,
        True,
        False,
        False,
    ]
    said = Segment("output", "The answer has three parts. 1. 2. (a) Born in 1961.", "assistant")
    assert [p.text for p in output_pieces([said])] == ["The answer has three parts.", "(a) Born in 1961."]


def watched_index() -> MemoryIndex:
    view = MemoryIndex(HashEmbedder().dim, ngram_words=12, typo_min_chars=6)
    chunks = ["Ji-Yeon Park was born in Seoul.", "Her father was a civil engineer and her mother a dietitian."]
    view.add(Entry("p", "Ji-Yeon Park", (), None, 0.0, 1, 2), [1, 2], chunks, HashEmbedder().embed(chunks))
    return view


def test_a_surname_alone_watches_and_the_watched_output_may_not_state_a_fact() -> None:
    from guard.checks.evidence import Watch
    from guard.checks.stages import output_checks

    view = watched_index()
    asked = Conversation.of([("messages[0]", "What did Park's father do?")], 3).segments()
    verdict = input_checks().verdict(Reading(tuple(asked), POLICIES, view), {})
    assert verdict.action is Action.allow and verdict.watched == verdict.strong == {"p"}  # a name part: strong
    watch = Watch(verdict.watched, verdict.strong, frozenset({"what", "did", "park", "s", "father", "do"}))
    said = [Segment("output.content", "He worked as an engineer.", "assistant")]
    assert output_checks().verdict(Reading(tuple(said), POLICIES, view, watch), {}).action is Action.filter
    assert (
        output_checks().verdict(Reading(tuple(said), POLICIES, view), {}).action is Action.allow
    )  # not watched: allowed
    echoed = Watch(verdict.watched, verdict.strong, frozenset({"engineer"}))  # the client said it first: no leak
    assert output_checks().verdict(Reading(tuple(said), POLICIES, view, echoed), {}).action is Action.allow
    coded = [Segment("output.content", '{"job": "eng", "city": "x", "year": "y"}', "assistant")]
    assert output_checks().verdict(Reading(tuple(coded), POLICIES, view, watch), {}).action is Action.filter
    weak = Watch(verdict.watched, frozenset(), watch.echo)  # meaning alone: fact values and bare values do not
    assert output_checks().verdict(Reading(tuple(said), POLICIES, view, weak), {}).action is Action.allow
    assert output_checks().verdict(Reading(tuple(coded), POLICIES, view, weak), {}).action is Action.allow


def test_the_window_holds_what_the_client_wrote_and_names_are_read_everywhere() -> None:
    turns = (
        Segment("messages[0].content", "Tell me about the writer", "user"),
        Segment("messages[1].content", "Which one? Subject a is one.", "assistant"),
        Segment("messages[2].content", "the one from before", "user"),
    )
    conversation = Conversation(turns, window_turns=3)
    window = conversation.window()
    assert window is not None and window.text == "Tell me about the writer\nthe one from before"
    view = view_of(Entry("a", "Subject a", (), None, 0.0, 1, 1))
    view.names.add("a", ["Subject a"])
    verdict = input_checks().verdict(Reading(tuple(conversation.segments()), POLICIES, view), {})
    assert verdict.action is Action.refuse and verdict.matches[0].where == "messages[1].content"


def test_a_fact_value_and_meaning_pointing_at_one_entry_identify_it_without_its_name() -> None:
    view = view_of(entry("a"), entry("b"))
    year = Evidence("a", "fact", 1.0, "messages[0]", frozenset({"1956"}))
    both = decide("input", [year, Evidence("a", "semantic", 0.63), Evidence("b", "semantic", 0.55)], POLICIES, view)
    assert both.action is Action.refuse and [(e.entry_id, e.kind) for e in both.matches] == [("a", "described")]
    # the same in another language, on the multilingual model's scale
    foreign = decide("input", [year, Evidence("a", "meaning", 0.86), Evidence("b", "meaning", 0.79)], POLICIES, view)
    assert foreign.action is Action.refuse
    # meaning closer to another entry, too weak, or no rare value: each clue alone is common
    assert (
        decide("input", [year, Evidence("a", "meaning", 0.86), Evidence("b", "meaning", 0.865)], POLICIES, view).action
        is Action.allow
    )
    assert decide("input", [year, Evidence("a", "semantic", 0.60)], POLICIES, view).action is Action.allow
    word = Evidence("a", "fact", 1.0, "messages[0]", frozenset({"lgbtq"}))  # a rare word: many authors' questions
    assert decide("input", [word, Evidence("a", "semantic", 0.69)], POLICIES, view).action is Action.allow
    # output sentences are judged by their own evidence
    assert decide("output", [year, Evidence("a", "semantic", 0.63)], POLICIES, view).action is Action.allow


PASSAGE_TEXT = " ".join(f"Sentence {n} states a fact." for n in range(8)) + " Who wrote it?"


def test_a_passage_gives_its_statements_as_passage_pieces_and_its_questions_as_questions() -> None:
    turns = (
        Segment("messages[0]", PASSAGE_TEXT, "system"),
        Segment("messages[1]", "Summarise. Be brief", "user"),
        Segment("messages[2]", f"{PASSAGE_TEXT} Then list its names", "user"),
        Segment("messages[3]", "Thanks", "user"),
    )
    conversation = Conversation(turns, window_turns=3)
    window = conversation.window()
    assert window is not None and window.text == "Summarise. Be brief\nThanks"  # passages stand alone
    pieces = {(p.text, p.role) for p in input_pieces(conversation.segments())}
    assert ("Sentence 3 states a fact.", "passage") in pieces and ("Who wrote it?", "system") in pieces
    assert ("Then list its names", "user") in pieces  # a user's passage ends with the request
    assert not any(text == PASSAGE_TEXT for text, _ in pieces)  # the whole is longer than the model reads
    assert ("Summarise. Be brief", "user") in pieces and ("Be brief", "user") in pieces


def test_a_passage_counts_when_two_of_its_statements_would_be_blocked_as_output() -> None:
    view = view_of(entry("a"))
    one = Evidence("a", "passage", 0.85, "messages[0]", second=0.72)  # one statement, then a question-scale one
    verdict = decide("input", [one], POLICIES, view)
    assert verdict.action is Action.allow and verdict.watched == {"a"}
    two = Evidence("a", "passage", 0.85, "messages[0]", second=0.81)
    assert decide("input", [two], POLICIES, view).action is Action.refuse
    assert decide("input", [Evidence("a", "semantic", 0.72)], POLICIES, view).action is Action.refuse  # a question
    assert not decide("input", [Evidence("a", "passage", 0.69, second=0.6)], POLICIES, view).watched


def test_fact_values_in_a_passage_count_together_only_close_together() -> None:
    view = MemoryIndex(HashEmbedder().dim, ngram_words=12, typo_min_chars=6)
    chunks = ["Hsiao Yun-Hwa was born in Taipei in 1991.", "Her father was a civil engineer."]
    view.add(Entry("h", "Hsiao Yun-Hwa", (), None, 0.0, 1, 2), [1, 2], chunks, HashEmbedder().embed(chunks))
    filler = " ".join(f"Line {n} says nothing in particular." for n in range(6))
    apart = f"Someone lived in Taipei. {filler} Someone else was born in 1991."
    close = f"{filler} Someone lived in Taipei. Someone else was born in 1991."
    for text, strong in ((apart, False), (close, True)):
        verdict = input_checks().verdict(Reading(tuple([Segment("messages[0]", text, "system")]), POLICIES, view), {})
        assert ("h" in verdict.strong) is strong
