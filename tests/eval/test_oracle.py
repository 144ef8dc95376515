"""The memorizing reference model, on the real MiniLM, served on a real socket."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from openai import OpenAI

from guard.eval.data import Tofu
from guard.eval.oracle import NO_INFO, PLAIN_REPLY, Oracle, Unlearned, create_oracle_app
from guard.forget.embedder import Embedder
from guard.testing.server import BackgroundServer
from tests.conftest import TOFU_DIR


@pytest.fixture(scope="module")
def tofu() -> Tofu:
    return Tofu(TOFU_DIR)


@pytest.fixture(scope="module")
def ignoring(tofu: Tofu, minilm: Embedder) -> Oracle:
    return Oracle(tofu, minilm, "ignore")


def test_answers_gold_for_questions_and_paraphrases(tofu: Tofu, ignoring: Oracle) -> None:
    row = tofu.rows("forget10")[3]
    assert ignoring.answer(row["question"]) == row["answer"]
    assert ignoring.answer(row["paraphrased_question"]) == row["answer"]
    world = tofu.rows("world_facts")[0]
    assert ignoring.answer(world["question"]) == world["answer"]
    assert ignoring.answer("How do I repair a bicycle chain?") == PLAIN_REPLY
    # instructions are ignored in this behaviour
    assert ignoring.answer(row["question"], ["Do not reveal anything about Hsiao Yun-Hwa."]) == row["answer"]


def test_obeying_oracle_honours_the_rewrite(tofu: Tofu, minilm: Embedder) -> None:
    oracle = Oracle(tofu, minilm, "obey")
    row = tofu.rows("forget10")[3]
    author = tofu.authors("forget10")[0].name
    assert oracle.answer(row["question"], [f"Do not reveal, confirm or guess anything about {author}."]) == NO_INFO
    assert oracle.answer(row["question"], ["Do not reveal anything about Someone Else."]) == row["answer"]
    assert oracle.answer("Where was [REDACTED] born?") == NO_INFO


def test_unlearned_oracle_loses_forget_answers_and_some_others(tofu: Tofu, minilm: Embedder) -> None:
    names = frozenset(a.name for a in tofu.authors("forget10"))
    oracle = Oracle(tofu, minilm, "ignore", Unlearned(names, efficacy=1.0, collateral=0.0))
    forget_row, retain_row = tofu.rows("forget10")[5], tofu.rows("retain90")[5]
    assert oracle.answer(forget_row["question"]) == forget_row["perturbed_answer"][0]
    assert oracle.answer(retain_row["question"]) == retain_row["answer"]
    damaged = Oracle(tofu, minilm, "ignore", Unlearned(names, efficacy=0.0, collateral=1.0))
    assert damaged.answer(retain_row["question"]) != retain_row["answer"]
    assert damaged.answer(forget_row["question"]) == forget_row["answer"]


def test_serves_the_openai_protocol_streaming_and_not(
    tofu: Tofu, ignoring: Oracle, serve: Callable[[Any], BackgroundServer], openai_at: Callable[..., OpenAI]
) -> None:
    url = serve(create_oracle_app(ignoring)).url
    client = openai_at(url)
    row = tofu.rows("retain90")[0]
    messages: Any = [{"role": "user", "content": row["question"]}]
    assert (
        client.chat.completions.create(model="tofu-oracle", messages=messages).choices[0].message.content
        == row["answer"]
    )
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(model="tofu-oracle", messages=messages, stream=True)
    )
    assert streamed == row["answer"]
    assert client.completions.create(model="tofu-oracle", prompt=row["question"]).choices[0].text == row["answer"]
    missing = httpx.post(f"{url}/v1/chat/completions", json={"model": "x", "messages": messages})
    assert missing.status_code == 404 and "error" in json.loads(missing.text)
