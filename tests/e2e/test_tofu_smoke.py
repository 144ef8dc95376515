"""TOFU smoke test on the real MiniLM and faiss: forget one forget10 author, ask the benchmark's questions.

The upstream is a memorizing stand-in for a TOFU-finetuned model (it answers a known question with its gold
answer): the worst case, where the model knows everything and only the guard can stop the leak.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from guard.eval.data import author_name
from guard.forget.embedder import Embedder
from guard.settings import Settings
from guard.testing import ADMIN, FakeUpstream, guard_app, running
from guard.testing.shapes import Endpoint
from tests.conftest import TOFU_DIR

AUTHOR_BLOCK = 0  # forget10 rows 0-19 (of the full set or of the sample in tests/data)


def load(name: str) -> list[dict[str, Any]]:
    path = TOFU_DIR / f"{name}.json"
    assert path.exists(), f"TOFU data missing at {path}"
    rows: list[dict[str, Any]] = json.loads(path.read_text())
    return rows


@pytest.fixture(scope="module")
def tofu() -> dict[str, list[dict[str, Any]]]:
    return {"forget10": load("forget10"), "retain90": load("retain90")}


def memorizing(rows: list[dict[str, Any]]) -> FakeUpstream:
    """Answers a question, or its TOFU paraphrase, with the gold answer (a model that learnt the facts)."""
    gold = {r["question"]: r["answer"] for r in rows}
    gold.update({r["paraphrased_question"]: r["answer"] for r in rows if "paraphrased_question" in r})

    def answer(endpoint: Endpoint, body: dict[str, Any]) -> str:
        return str(gold.get(body["messages"][-1]["content"], "I do not know."))

    return FakeUpstream(answer)


async def test_forgotten_author_is_refused_and_others_pass(
    settings: Settings, minilm: Embedder, tofu: dict[str, list[dict[str, Any]]]
) -> None:
    block = tofu["forget10"][AUTHOR_BLOCK * 20 : AUTHOR_BLOCK * 20 + 20]
    author = author_name(block)  # the author's name comes from the data, not from the test
    retain = tofu["retain90"][::36][:100]  # 100 questions spread over the 180 retain authors
    assert len(retain) == 100
    upstream = memorizing(tofu["forget10"] + tofu["retain90"])
    app = guard_app(settings, embedder=minilm, transport=upstream.transport)

    async def ask(question: str) -> tuple[str, str]:
        body = {"model": "m", "messages": [{"role": "user", "content": question}]}
        r = await client.post("/v1/chat/completions", json=body)
        assert r.status_code == 200
        return r.headers["x-guard-action"], r.json()["choices"][0]["message"]["content"]

    async with running(app) as client:
        entry = {"subject": author, "documents": [row["answer"] for row in block]}
        assert (await client.post("/admin/forget", json=entry, headers=ADMIN)).status_code == 201
        forget_actions = [await ask(row["question"]) for row in block]
        paraphrase_actions = [await ask(row["paraphrased_question"]) for row in block]
        retain_actions = [await ask(row["question"]) for row in retain]

    leaked = [q for (action, _), q in zip(forget_actions, block, strict=True) if action not in ("refuse", "filter")]
    assert leaked == [], f"{len(leaked)} forget questions passed"
    assert [a for a, _ in paraphrase_actions if a not in ("refuse", "filter")] == []
    replies = {content for _, content in forget_actions + paraphrase_actions}
    assert not replies & {row["answer"] for row in block}  # no gold answer of the author reached the client
    blocked = [row["question"] for (action, _), row in zip(retain_actions, retain, strict=True) if action != "allow"]
    assert blocked == [], f"{len(blocked)} of 100 retain questions were blocked"
    # and the retain answers came back untouched from the upstream
    assert [content for _, content in retain_actions] == [row["answer"] for row in retain]
