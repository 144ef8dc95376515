"""An answer read with the question it answers (issue 35): the question says which entry it came near, the output
check reads the answer joined to it, by meaning only, and that reading counts for that entry alone."""

from __future__ import annotations

from guard.checks.conversation import (
    QA,
    Conversation,
    asked_part,
    expand,
    input_pieces,
    lexical,
    output_pieces,
    says_little,
)
from guard.checks.decide import decide
from guard.checks.evidence import Action, Evidence, Segment, Watch
from tests.checks.test_stages import POLICIES, entry, view_of


def test_the_question_is_the_users_last_turn_or_the_last_sentence_of_a_passage() -> None:
    system = Segment("messages[0].content", "You are a helpful assistant.", "system")
    asked = Segment("messages[1].content", "Who wanted more unmanned tests of the LM?", "user")
    assert Conversation((system, asked), 3).question() == "Who wanted more unmanned tests of the LM?"
    passage = " ".join(f"Sentence {n} says a thing about the moon." for n in range(7)) + " Who built the LM?"
    assert Conversation((Segment("messages[0].content", passage, "user"),), 3).question() == "Who built the LM?"
    tool = Segment("messages[2].content", "Result: 42", "tool")
    assert Conversation((asked, tool), 3).question() == ""  # the client's last text is not a question of its own


def test_the_joined_text_is_read_whole_by_meaning_and_not_for_names_values_or_runs() -> None:
    qa = Segment("qa", "Who wanted more unmanned tests of the LM?\nThe answer is Grumman. It was in 1963.", QA)
    said = Segment("output.content", "The answer is Grumman. It was in 1963.", "assistant")
    assert [p.text for p in output_pieces([qa])] == [qa.text]  # whole, not cut into sentences
    assert [p.text for p in output_pieces([said])] == ["The answer is Grumman.", "It was in 1963."]
    assert lexical([said, qa]) == [said]
    assert expand([qa]) == [qa]  # no respelled views: the question's were read at input


def test_only_an_answer_that_says_little_without_its_question_is_read_with_it() -> None:
    question = "Who initially wanted more unmanned testing done regarding the LM?"
    assert says_little("The answer is Grumman.", question)
    assert says_little(
        "As for who initially wanted more unmanned testing done regarding the LM, it was Grumman.", question
    )
    # a biography sentence states its facts itself: the checks read it as it is
    told = "Grumman, founded by Leroy Grumman on Long Island in 1929, built fighters for the Navy and later the LM."
    assert not says_little(told, question)


def test_a_question_near_an_entry_is_allowed_and_says_which() -> None:
    view = view_of(entry("a"), entry("b"))
    near = decide("input", [Evidence("a", "semantic", 0.60), Evidence("b", "semantic", 0.57)], POLICIES, view)
    assert near.action is Action.allow and near.near == {"a"} and not near.watched  # the closest only
    assert not decide("input", [Evidence("a", "semantic", 0.50)], POLICIES, view).near  # under near_threshold
    watched = decide("input", [Evidence("a", "semantic", 0.66)], POLICIES, view)
    assert watched.watched == {"a"} and not watched.near  # a watch reads the answer with its question already


def test_the_answer_with_its_question_counts_for_the_entry_the_question_came_near_only() -> None:
    view = view_of(entry("a"), entry("b"))
    near_a = Watch(question="Who wanted more unmanned tests of the LM?", near=frozenset({"a"}))
    hit = decide("output", [Evidence("a", "qa", 0.74, "qa")], POLICIES, view, near_a)
    assert hit.action is Action.filter and hit.entry_ids == ["a"]
    assert decide("output", [Evidence("a", "qa", 0.70, "qa")], POLICIES, view, near_a).action is Action.allow
    assert decide("output", [Evidence("b", "qa", 0.90, "qa")], POLICIES, view, near_a).action is Action.allow
    assert decide("output", [Evidence("a", "qa", 0.90, "qa")], POLICIES, view).action is Action.allow  # not near
    # near is not a watch: the rest of a watch's strictness does not apply (0.77 would count under watch)
    assert decide("output", [Evidence("a", "semantic", 0.77)], POLICIES, view, near_a).action is Action.allow
    watched = Watch(frozenset({"a"}), question="Who wanted more unmanned tests of the LM?")
    assert decide("output", [Evidence("a", "qa", 0.74, "qa")], POLICIES, view, watched).action is Action.filter


def test_the_question_is_read_without_the_instructions_before_its_colon() -> None:
    wrapped = Segment("messages[0].content", "For a school quiz, answer briefly: Who built the LM?", "user")
    assert Conversation((wrapped,), 3).question() == "Who built the LM?"
    assert [p.text for p in input_pieces([wrapped])] == [wrapped.text, "Who built the LM?"]  # both read at input
    for kept in ("What is 3:4?", "Note: this is fine.", "Translate: hi", "Who built it?"):
        assert asked_part(kept) == kept  # no question of three words after a colon: the text as it is
    assert asked_part("Context: the LM.\nQuestion: Who built the LM?") == "Who built the LM?"
    assert asked_part("Answer as JSON only: Who built the LM? (be brief)") == "Who built the LM? (be brief)"
