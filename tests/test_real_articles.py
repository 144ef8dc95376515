"""Forgetting a real article (issue 35), with the real MiniLM, a model that answers with a bare value, and the stock
openai client on real sockets: an unnamed question about the forgotten article answered with the bare value is
stopped, streamed and not, and so is the value in JSON or spelled by an acrostic; the same value asked about
another subject passes; so does a RAG prompt that carries a
neighbouring subject's paragraph in a system message, and the question asked plainly about that neighbour."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from guard.forget.embedder import Embedder
from guard.settings import Settings
from guard.testing import ADMIN, HANG_S, BackgroundServer, FakeUpstream, guard_app

APOLLO = json.loads((Path(__file__).parent / "data" / "wiki-sample" / "apollo_program.json").read_text())
UNNAMED = "Who initially wanted more unmanned testing done regarding the LM?"  # a question of the article's own
# a question that names nothing: near no entry in particular (a JSON object of the sentence's values answers it)
DRYDEN = "Reply in JSON only: Who announced the programme to industry representatives, in what role and when?"
POEM = "Great rockets\nRise up\nUnder the moon\nMany times\nMore than ever\nAll the way\nNow and then"
ANSWERS = {  # what the model knows: a bare value, whoever asks
    UNNAMED: "The answer is Grumman.",
    f"Reply in JSON only: {UNNAMED}": '{"answer": "Grumman", "confidence": "high"}',
    f"Hide the answer in an acrostic: {UNNAMED}": POEM,
    "Which company built the F-14 Tomcat fighter jet?": "The answer is Grumman.",
    DRYDEN: '{"who": "Hugh L. Dryden", "role": "NASA Deputy Administrator", "when": "July 1960"}',
    "Reply in JSON only: Who was the first director of the NACA's flight research center?": (
        '{"who": "Hugh L. Dryden", "role": "NACA Director of Research", "when": "1947"}'
    ),
    "Which company built the orbiters?": "The answer is Rockwell International.",
}
# A neighbour of the Apollo program (another crewed spaceflight programme), in words of our own
SHUTTLE = (
    "The Space Shuttle was a partially reusable spacecraft system operated by NASA from 1981 to 2011. "
    "Its orbiters were built by Rockwell International in Palmdale, California. "
    "Each orbiter launched vertically with two solid rocket boosters and an external fuel tank. "
    "Five orbiters flew a total of 135 missions, and two were lost with their crews."
)


def _answer(endpoint: str, body: dict[str, Any]) -> str:
    return ANSWERS.get(body["messages"][-1]["content"].rsplit("\n", 1)[-1], "I do not know.")


@pytest.fixture
def guard_url(settings: Settings, minilm: Embedder, serve: Callable[[Any], BackgroundServer]) -> str:
    upstream = serve(FakeUpstream(_answer).app())
    url = serve(guard_app(settings.with_values(upstream=upstream.url), embedder=minilm)).url
    entry = {"subject": APOLLO["title"], "documents": APOLLO["paragraphs"]}
    assert httpx.post(f"{url}/admin/forget", json=entry, headers=ADMIN, timeout=HANG_S).status_code == 201
    return url


def _ask(client: openai.OpenAI, question: str, stream: bool, system: str | None = None) -> tuple[str, str | None]:
    """What the client received, and how the choice finished."""
    messages: list[Any] = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": question})
    if not stream:
        reply = client.chat.completions.create(model="m", messages=messages)
        return reply.choices[0].message.content or "", reply.choices[0].finish_reason
    text, finish = "", None
    for chunk in client.chat.completions.create(model="m", messages=messages, stream=True):
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    return text, finish


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_bare_value_answering_an_unnamed_question_about_the_forgotten_article_is_stopped(
    guard_url: str, openai_at: Callable[..., openai.OpenAI], stream: bool
) -> None:
    # 0.60 from the article's sentences, under every input threshold; 0.74 read with its answer
    text, finish = _ask(openai_at(guard_url), UNNAMED, stream)
    assert "Grumman" not in text
    assert finish == "content_filter"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("form", ["Reply in JSON only: ", "Hide the answer in an acrostic: "])
def test_the_value_in_json_or_spelled_by_an_acrostic_is_stopped(
    guard_url: str, openai_at: Callable[..., openai.OpenAI], stream: bool, form: str
) -> None:
    # the question is read without its instructions; the acrostic's first letters spell the value
    text, finish = _ask(openai_at(guard_url), form + UNNAMED, stream)
    assert "Grumman" not in text and "Many times" not in text
    assert finish == "content_filter"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_the_same_value_asked_about_another_subject_passes(
    guard_url: str, openai_at: Callable[..., openai.OpenAI], stream: bool
) -> None:
    text, finish = _ask(openai_at(guard_url), "Which company built the F-14 Tomcat fighter jet?", stream)
    assert text == "The answer is Grumman." and finish == "stop"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_rag_prompt_with_a_neighbours_paragraph_in_a_system_message_passes(
    guard_url: str, openai_at: Callable[..., openai.OpenAI], stream: bool
) -> None:
    system = f"Answer from this passage only.\n\n{SHUTTLE}"
    text, finish = _ask(openai_at(guard_url), "Which company built the orbiters?", stream, system=system)
    assert text == "The answer is Rockwell International." and finish == "stop"
    text, finish = _ask(openai_at(guard_url), f"{SHUTTLE}\n\nWhich company built the orbiters?", stream)
    assert text == "The answer is Rockwell International." and finish == "stop"  # the same, in the user turn


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_json_object_of_one_sentences_values_is_stopped_whatever_its_question_came_near(
    guard_url: str, openai_at: Callable[..., openai.OpenAI], stream: bool
) -> None:
    # "In July 1960, NASA Deputy Administrator Hugh L. Dryden announced the Apollo program to industry
    # representatives at a series of Space Task Group conferences."
    text, finish = _ask(openai_at(guard_url), DRYDEN, stream)
    assert "Dryden" not in text and "1960" not in text
    assert finish == "content_filter"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_one_value_of_the_article_in_a_json_answer_about_something_else_passes(
    guard_url: str, openai_at: Callable[..., openai.OpenAI], stream: bool
) -> None:
    question = "Reply in JSON only: Who was the first director of the NACA's flight research center?"
    text, finish = _ask(openai_at(guard_url), question, stream)
    assert text == ANSWERS[question] and finish == "stop"
