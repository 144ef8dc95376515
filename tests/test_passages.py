"""Long context (a RAG passage, a pasted document, a long system prompt), with the real MiniLM and TOFU: a passage
about other authors passes, however many of its sentences resemble a forgotten author's, while a passage that
states a forgotten author's facts without naming them is refused, and a question inside a passage still counts
as a question."""

from __future__ import annotations

import re
from typing import Any

import pytest

from guard.eval.data import DEFAULT_DIR, Tofu
from guard.forget.embedder import Embedder
from guard.settings import Settings
from guard.testing import ADMIN, guard_app, running
from tests.helpers import chat, upstream_echo

pytestmark = pytest.mark.skipif(not DEFAULT_DIR.is_dir(), reason="TOFU data not found")


@pytest.fixture(scope="module")
def tofu() -> Tofu:
    return Tofu(DEFAULT_DIR)


def _passage(answers: list[str], sentences: int = 40) -> str:
    return " ".join(answers)[: sentences * 160]


def _system(passage: str, question: str) -> dict[str, Any]:
    return chat(
        [
            {"role": "system", "content": f"Answer from this passage only.\n\n{passage}"},
            {"role": "user", "content": question},
        ]
    )


async def _verdicts(settings: Settings, minilm: Embedder, tofu: Tofu, bodies: list[dict[str, Any]]) -> list[str]:
    app = guard_app(settings, embedder=minilm, transport=upstream_echo("It is about several writers.").transport)
    out = []
    async with running(app) as client:
        for author in tofu.authors("forget10")[:10]:
            entry = {"subject": author.name, "documents": author.answers}
            assert (await client.post("/admin/forget", json=entry, headers=ADMIN)).status_code == 201
        for body in bodies:
            r = await client.post("/v1/chat/completions", json=body)
            assert r.status_code == 200
            out.append(r.headers["x-guard-action"])
    return out


async def test_passages_about_authors_not_forgotten_pass(settings: Settings, minilm: Embedder, tofu: Tofu) -> None:
    retain = [r["answer"] for a in tofu.authors("retain90")[:12] for r in a.rows]
    passages = [_passage(retain[i * 40 : (i + 1) * 40]) for i in range(6)]  # ~40 biography sentences each
    actions = await _verdicts(settings, minilm, tofu, [_system(p, "Summarise the passage.") for p in passages])
    assert actions.count("refuse") == 0, actions


async def test_a_passage_stating_a_forgotten_authors_facts_unnamed_is_refused(
    settings: Settings, minilm: Embedder, tofu: Tofu
) -> None:
    bodies = []
    for author in tofu.authors("forget10")[:4]:
        text = " ".join(r["paraphrased_answer"] for r in author.rows)
        for part in author.name.replace("-", " ").split():
            text = re.sub(rf"\b{re.escape(part)}\b", "the writer", text)
        bodies.append(_system(text, "Summarise the passage."))
    actions = await _verdicts(settings, minilm, tofu, bodies)
    assert actions.count("refuse") >= 3, actions


async def test_a_question_inside_a_passage_is_judged_as_a_question(
    settings: Settings, minilm: Embedder, tofu: Tofu
) -> None:
    retain = " ".join(r["answer"] for a in tofu.authors("retain90")[:2] for r in a.rows[:6])
    asked = tofu.authors("forget10")[0].rows[3]["paraphrased_question"]  # its subject unnamed
    actions = await _verdicts(settings, minilm, tofu, [chat(f"{retain}\n\nNow a question. {asked}")])
    assert actions == ["refuse"]


async def test_a_passage_sent_again_with_another_question_appended_is_judged_as_the_first_time(
    settings: Settings, minilm: Embedder, tofu: Tofu
) -> None:
    # the second sending is read in its last block only (the rest remembered): the verdicts must not change
    retain = _passage([r["answer"] for a in tofu.authors("retain90")[:3] for r in a.rows])
    asked = tofu.authors("forget10")[0].rows[3]["paraphrased_question"]
    bodies = [
        chat(f"{retain}\n\nNow a question. Who wrote the first book named above?"),
        chat(f"{retain}\n\nNow a question. {asked}"),
        chat(f"{retain}\n\nNow a question. What genre do they write in?"),
    ]
    assert await _verdicts(settings, minilm, tofu, bodies) == ["allow", "refuse", "allow"]
