"""Live A/B on real parts: the guard (real MiniLM, faiss) on a socket, upstream A a plain server, upstream B the
memorizing TOFU model (a stand-in for a weight-edited model that still knows), the stock openai client."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from openai import OpenAI

from guard.eval.data import Tofu
from guard.eval.oracle import Oracle, create_oracle_app
from guard.forget.embedder import Embedder
from guard.settings import Settings
from guard.testing import ADMIN, BackgroundServer, FakeUpstream, fixed, guard_app
from tests.conftest import TOFU_DIR

PLAIN = "I can only talk about the weather."


def test_route_and_shadow_against_a_real_second_model(
    settings: Settings,
    minilm: Embedder,
    serve: Callable[[Any], BackgroundServer],
    openai_at: Callable[..., OpenAI],
    caplog: pytest.LogCaptureFixture,
) -> None:
    tofu = Tofu(TOFU_DIR)
    author = tofu.authors("forget10")[0]
    retain = tofu.rows("retain90")[0]
    a = serve(FakeUpstream(fixed(PLAIN), model="tofu-oracle").app())
    b = serve(create_oracle_app(Oracle(tofu, minilm, "ignore")))
    update = {"upstream": a.url, "upstream_b": b.url, "shadow": True}
    guard = serve(guard_app(settings.with_values(**update), embedder=minilm))
    caplog.set_level(logging.INFO, logger="guard.decisions")
    entry = {"subject": author.name, "documents": author.answers}
    assert httpx.post(f"{guard.url}/admin/forget", headers=ADMIN, json=entry).status_code == 201

    client = openai_at(guard.url)

    def ask(question: str, route: str | None = None) -> Any:
        headers = {"x-guard-route": route} if route else None
        return client.chat.completions.with_raw_response.create(
            model="tofu-oracle", messages=[{"role": "user", "content": question}], extra_headers=headers
        )

    forgotten = ask(author.rows[5]["question"])  # refused at input; its shadow goes to B all the same
    kept = ask(retain["question"])  # A answers; B's shadow answer is the retain gold answer: allowed
    routed = ask(retain["question"], route="b")  # B answers the client
    assert forgotten.headers["x-guard-action"] == "refuse" and forgotten.headers["x-guard-upstream"] == "none"
    assert kept.headers["x-guard-upstream"] == "a" and kept.parse().choices[0].message.content == PLAIN
    assert routed.headers["x-guard-upstream"] == "b"
    assert routed.parse().choices[0].message.content == retain["answer"]

    deadline = time.monotonic() + 60
    shadows: list[logging.LogRecord] = []
    while len(shadows) < 3 and time.monotonic() < deadline:
        shadows = [r for r in caplog.records if r.getMessage() == "shadow"]
        time.sleep(0.1)
    verdicts = sorted((r.__dict__["primary"], r.__dict__["action"]) for r in shadows)
    # B still knows the forgotten author: its shadow answer is caught; the retain answers pass
    assert verdicts == [("allow", "allow"), ("allow", "allow"), ("refuse", "filter")]
