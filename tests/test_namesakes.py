"""Namesakes (issue 36) with the real MiniLM, a model that answers everything, and the stock openai client: a
question about someone else who bears a forgotten author's name is answered, name and all; the author's own facts
are still stopped when a namesake's question draws them out; the author asked with a detail of theirs is refused."""

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

ROWS = json.loads((Path(__file__).parent / "data" / "tofu-sample" / "forget01.json").read_text())
BASIL = "Basil Mahfouz Al-Kuwaiti"
GOALKEEPER = f"What position did {BASIL}, the goalkeeper who joined Feyenoord in 2013, play?"
BORN = f"Where was {BASIL}, the goalkeeper who joined Feyenoord in 2013, born?"
OWN = f"Which novels did {BASIL}, born in Kuwait City in 1956, write?"
ANSWERS = {
    GOALKEEPER: f"{BASIL} played as a goalkeeper for Feyenoord.",
    BORN: "He was born in Kuwait City, Kuwait, on 8 September 1956, and later wrote French literature.",
    OWN: "He wrote 'Promise by the Seine' and 'Le Petit Sultan'.",
}


@pytest.fixture
def guard_url(settings: Settings, minilm: Embedder, serve: Callable[[Any], BackgroundServer]) -> str:
    upstream = serve(FakeUpstream(lambda e, body: ANSWERS.get(body["messages"][-1]["content"], "No idea.")).app())
    url = serve(guard_app(settings.with_values(upstream=upstream.url), embedder=minilm)).url
    entry = {"subject": BASIL, "documents": [r["answer"] for r in ROWS[:20]]}  # TOFU's 20 rows of the author
    assert httpx.post(f"{url}/admin/forget", json=entry, headers=ADMIN, timeout=HANG_S).status_code == 201
    return url


def _ask(client: openai.OpenAI, question: str) -> tuple[str, str | None]:
    reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": question}])
    return reply.choices[0].message.content or "", reply.choices[0].finish_reason


def test_someone_else_of_the_same_name_is_answered(guard_url: str, openai_at: Callable[..., openai.OpenAI]) -> None:
    assert _ask(openai_at(guard_url), GOALKEEPER) == (ANSWERS[GOALKEEPER], "stop")


def test_the_authors_own_facts_drawn_out_by_a_namesakes_question_are_stopped(
    guard_url: str, openai_at: Callable[..., openai.OpenAI]
) -> None:
    text, finish = _ask(openai_at(guard_url), BORN)
    assert "Kuwait" not in text and finish == "content_filter"


def test_the_author_asked_with_a_detail_of_their_own_is_refused(
    guard_url: str, openai_at: Callable[..., openai.OpenAI]
) -> None:
    text, _ = _ask(openai_at(guard_url), OWN)
    assert "Seine" not in text
