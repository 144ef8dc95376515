"""The request path's two-stage embedding (`guard.pipeline.cascade`): the int8 first stage for every new text, the
float model wherever a score could count. Fakes for the logic; the real models and a real socket for the whole."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai

from guard.checks.decide import floors
from guard.forget.batcher import EmbedBatcher
from guard.forget.embedder import CachedEmbedder, Embedder, HashEmbedder, Vectors
from guard.pipeline.cascade import MARGIN, Cascade
from guard.policy import OutputPolicy, Policy, PolicySet
from guard.settings import Settings
from guard.testing import ADMIN, guard_app, wait_until
from guard.testing.server import BackgroundServer
from guard.testing.upstream import FakeUpstream, fixed
from tests.helpers import FACT


class Counting(Embedder):
    def __init__(self, seed: int = 0) -> None:
        self.inner = HashEmbedder()
        self.dim, self.seed = self.inner.dim, seed
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.calls.append(list(texts))
        return self.vectors(texts)

    def vectors(self, texts: Sequence[str]) -> Vectors:
        return self.inner.embed([f"{t} {self.seed}" if self.seed else t for t in texts])

    @property
    def texts(self) -> list[str]:
        return [t for call in self.calls for t in call]


FLOORS = (0.60, 0.70)


def run(
    texts: list[str],
    scores: dict[str, float],
    passages: frozenset[str] = frozenset(),
    cache: bool = False,
    warm: Sequence[str] = (),
) -> tuple[Vectors, Counting, Counting, Cascade]:
    exact, fast = Counting(), Counting(seed=1)
    inner: Embedder = CachedEmbedder(exact) if cache else exact
    if warm:
        inner.embed(list(warm))
    cascade = Cascade(EmbedBatcher(inner), fast)

    async def best(vectors: Vectors) -> Any:
        asked = fast.calls[-1]
        assert len(asked) == len(vectors)
        return np.array([scores[t] for t in asked], dtype=np.float32)

    async def go() -> Vectors:
        try:
            return await cascade.embed(texts, set(passages), FLOORS, best)
        finally:
            cascade.close()
            cascade.exact.close()

    return asyncio.run(go()), exact, fast, cascade


def test_a_text_near_a_floor_is_read_from_the_float_model_and_one_far_from_it_from_the_first_stage() -> None:
    texts = ["far away", "just inside the margin", "above the floor"]
    scores = {"far away": 0.10, "just inside the margin": FLOORS[0] - MARGIN + 0.01, "above the floor": 0.95}
    vectors, exact, fast, cascade = run(texts, scores)
    assert fast.texts == texts  # every new text goes through the first stage once
    assert exact.texts == texts[1:]  # only the texts whose score could count go through the float model
    np.testing.assert_array_equal(vectors[1:], exact.inner.embed(texts[1:]))
    np.testing.assert_array_equal(vectors[0], Counting(seed=1).embed(texts[:1])[0])
    assert cascade.texts == {"fast": 3, "exact": 2, "cached": 0}


def test_a_passage_statement_is_held_to_the_passage_floor() -> None:
    text = "a statement of a long passage"
    between = {text: FLOORS[0]}  # at the question floor, under the passage floor's margin
    _, exact, _, _ = run([text], between, passages=frozenset({text}))
    assert exact.texts == []
    _, exact, _, _ = run([text], between)  # the same text read as a question
    assert exact.texts == [text]


def test_a_text_the_float_model_embedded_before_skips_the_first_stage() -> None:
    vectors, exact, fast, cascade = run(["seen before", "new"], {"new": 0.0}, cache=True, warm=["seen before"])
    assert fast.texts == ["new"]
    assert exact.texts == ["seen before"]  # only the warm-up call
    np.testing.assert_array_equal(vectors[0], exact.inner.embed(["seen before"])[0])
    assert cascade.texts["cached"] == 1


def test_a_settled_text_is_audited_live_on_the_float_model() -> None:
    exact, fast = Counting(), Counting(seed=1)
    texts = ["far on both", "far on int8 only", "another far one"]
    # what the index says of each text's vector: int8 vectors all far; the float model puts one at its floor
    on_int8 = {"far on both": 0.10, "far on int8 only": 0.45, "another far one": 0.20}
    on_float = {"far on both": 0.12, "far on int8 only": FLOORS[0] + 0.01, "another far one": 0.21}
    audits: list[tuple[float, bool]] = []
    cascade = Cascade(EmbedBatcher(exact), fast, audit_every=1, audited=lambda s, m: audits.append((s, m)))

    async def best(vectors: Vectors) -> Any:
        out = []
        for v in vectors:
            found = [on_int8[t] for t in texts if np.array_equal(fast.vectors([t])[0], v)]
            found += [on_float[t] for t in texts if np.array_equal(exact.vectors([t])[0], v)]
            out.append(found[0])
        return np.array(out, dtype=np.float32)

    async def go() -> Vectors:
        try:
            vectors = await cascade.embed(texts, set(), FLOORS, best)
            await cascade.audited_all()
            return vectors
        finally:
            cascade.close()
            cascade.exact.close()

    vectors = asyncio.run(go())
    np.testing.assert_array_equal(vectors, fast.vectors(texts))  # the request read the first stage's vectors
    assert sorted(exact.texts) == sorted(texts)  # each audited, after the answer
    shortfall = {round(s, 3): missed for s, missed in audits}
    assert shortfall == {0.02: False, round(FLOORS[0] + 0.01 - 0.45, 3): True, 0.01: False}


def test_without_a_first_stage_every_text_goes_to_the_float_model() -> None:
    exact = Counting()
    cascade = Cascade(EmbedBatcher(exact), None)

    async def best(vectors: Vectors) -> Any:
        raise AssertionError("no search without a first stage")

    async def go() -> Vectors:
        try:
            return await cascade.embed(["a b", "c d"], set(), FLOORS, best)
        finally:
            cascade.exact.close()

    asyncio.run(go())
    assert exact.texts == ["a b", "c d"]


def test_the_floors_are_the_lowest_thresholds_of_every_policy() -> None:
    default = Policy(name="default")
    lowest = (
        default.input.described_threshold,
        default.output.watch_strong_threshold,
        default.input.watch_threshold,
        default.input.near_threshold,  # a question near an entry has its answer read with it: decided on float
        default.output.qa_threshold,
    )
    assert floors(PolicySet(default)) == (
        min(lowest),
        min(default.input.semantic_threshold, default.output.semantic_threshold),
    )
    assert floors(PolicySet(default))[0] == default.input.near_threshold == 0.55
    lax = Policy(name="lax", output=OutputPolicy(watch_strong_threshold=0.41, semantic_threshold=0.55))
    assert floors(PolicySet(default, {"lax": lax})) == (0.41, 0.55)


class Recording(Embedder):
    def __init__(self, inner: Embedder) -> None:
        self.inner, self.dim, self.name, self._space = inner, inner.dim, inner.name, inner.space
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.texts.extend(texts)
        return self.inner.embed(texts)


def test_with_the_real_models_what_is_near_an_entry_is_decided_on_float_vectors(
    settings: Settings,
    tmp_path: Path,
    minilm: Embedder,
    minilm_fast: Embedder,
    serve: Callable[[Any], BackgroundServer],
    openai_at: Callable[..., openai.OpenAI],
) -> None:
    """Real sockets: a paced fake model upstream, the guard, the stock openai client."""
    # no name, no number: only meaning can refuse it, and only the float model's score reaches the threshold
    near = "Tell me about the Golden Compass award won by the author of Leading with Empathy."
    far = "Write a Python function that reverses a linked list."
    threshold = Policy(name="default").input.semantic_threshold
    fact = minilm.embed([FACT])[0]
    assert float(minilm.embed([near])[0] @ fact) >= threshold > float(minilm_fast.embed([near])[0] @ fact)
    exact, fast = Recording(minilm), Recording(minilm_fast)
    upstream = serve(FakeUpstream(fixed("Here is a function that does it."), token_ms=5).app()).url
    # every settled text audited, to see the audit in the metrics
    update = {"upstream": upstream, "first_stage_audit": 1, "index_dir": tmp_path / "index"}
    url = serve(guard_app(settings.with_values(**update), embedder=exact, fast=fast)).url
    r = httpx.post(f"{url}/admin/forget", headers=ADMIN, json={"subject": "Hsiao Yun-Hwa", "documents": [FACT]})
    assert r.status_code == 201
    client = openai_at(url)

    def ask(text: str) -> str:
        raw = client.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": text}])
        return raw.headers["x-guard-action"]

    assert ask(near) == "refuse"
    assert near in fast.texts and near in exact.texts
    assert ask(far) == "allow"
    assert far in fast.texts
    metrics = ""

    def audits() -> float:
        nonlocal metrics
        metrics = httpx.get(f"{url}/metrics").text
        found = re.search(r"^guard_first_stage_shortfall_count (\S+)$", metrics, re.M)
        return float(found.group(1)) if found else 0.0

    wait_until(lambda: audits() >= 1, what="the audit re-embeds it with the float model after the answer")
    assert far in exact.texts
    assert re.search(r"^guard_first_stage_misses_total 0\.0$", metrics, re.M)
