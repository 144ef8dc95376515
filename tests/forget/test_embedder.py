"""The embedding backends agree with the sentence-transformers reference; the cache returns the same vectors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from guard.forget.embedder import CachedEmbedder, Embedder, HashEmbedder, MiniLMEmbedder, OnnxMiniLMEmbedder, Vectors
from guard.settings import Settings
from guard.testing import guard_app, running
from tests.helpers import add, chat, upstream_echo

TEXTS = [
    "Where was Jaime Vasquez born?",
    "The author's full name is Hsiao Yun-Hwa.",
    "Hello",
    "word " * 400,  # longer than the model's 256 tokens: truncated the same way by both backends
]


def test_onnx_backend_matches_the_torch_reference(minilm: Embedder) -> None:
    assert isinstance(minilm, OnnxMiniLMEmbedder)
    reference = MiniLMEmbedder().embed(TEXTS)
    ours = minilm.embed(TEXTS)
    assert ours.shape == (len(TEXTS), 384)
    np.testing.assert_allclose((ours * reference).sum(axis=1), 1.0, atol=1e-4)
    # batching (and the padding it brings) does not change a text's vector
    np.testing.assert_allclose(minilm.embed(TEXTS[:1])[0], ours[0], atol=1e-5)


def test_int8_backend_is_close_but_not_identical(minilm: Embedder) -> None:
    # the float export is reused from the shared cache; only the int8 file is made here
    int8 = OnnxMiniLMEmbedder(int8=True)
    cos = (int8.embed(TEXTS[:3]) * minilm.embed(TEXTS[:3])).sum(axis=1)
    assert np.all(cos > 0.85) and np.all(cos < 0.999), cos


def test_the_first_stage_is_closer_to_the_float_model_than_int8_everywhere(
    minilm: Embedder, minilm_fast: Embedder
) -> None:
    int8 = OnnxMiniLMEmbedder(int8=True)
    reference = minilm.embed(TEXTS)
    fast = (minilm_fast.embed(TEXTS) * reference).sum(axis=1)
    everywhere = (int8.embed(TEXTS) * reference).sum(axis=1)
    assert np.all(fast > 0.97) and np.all(fast < 0.99999), fast  # quantised, and close
    assert np.all(fast > everywhere), (fast, everywhere)
    assert minilm_fast.space != minilm.space  # never an index's embedder in its place


def test_calls_side_by_side_give_the_same_vectors(minilm: Embedder) -> None:
    """With workers, a call's texts are cut in parts embedded side by side on one session: each part is a model
    call of its own, so the float vectors are the same, and the int8 ones differ only as batching makes them
    (their activations are quantised per call)."""
    texts = [f"{t} ({i})" for i, t in enumerate(TEXTS * 5)]
    one = OnnxMiniLMEmbedder(threads=2, workers=1)
    two = OnnxMiniLMEmbedder(threads=1, workers=2)
    try:
        np.testing.assert_allclose(two.embed(texts), one.embed(texts), atol=1e-5)
        np.testing.assert_allclose(two.embed(texts[:2]), minilm.embed(texts[:2]), atol=1e-5)  # one text a worker
        fast = OnnxMiniLMEmbedder(variant="fast", threads=1, workers=2)
        cos = (fast.embed(texts) * minilm.embed(texts)).sum(axis=1)
        assert np.all(cos > 0.97), cos
        fast.close()
    finally:
        one.close()
        two.close()


class Counting(Embedder):
    def __init__(self) -> None:
        self.inner = HashEmbedder()
        self.dim = self.inner.dim
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.calls.append(list(texts))
        return self.inner.embed(texts)


def test_cache_embeds_each_new_text_once_and_stays_bounded() -> None:
    inner = Counting()
    cached = CachedEmbedder(inner, size=3)
    first = cached.embed(["a b", "c d", "a b"])
    assert inner.calls == [["a b", "c d"]]  # a duplicate within one call is embedded once
    np.testing.assert_array_equal(first, inner.inner.embed(["a b", "c d", "a b"]))
    again = cached.embed(["c d", "e f"])
    assert inner.calls[-1] == ["e f"]
    np.testing.assert_array_equal(again[0], first[1])
    cached.embed(["g h", "i j"])  # evicts the least recently used ("a b")
    cached.embed(["a b"])
    assert inner.calls[-1] == ["a b"]
    assert (cached.hits, cached.misses) == (1, 6)


async def test_the_multilingual_model_embeds_a_repeated_turn_once(settings: Settings) -> None:
    """A chat re-sends its earlier turns with every request; e5 (~40 ms a text) reads each once."""
    meaning = Counting()
    app = guard_app(settings, embedder=HashEmbedder(), meaning=meaning, transport=upstream_echo("D'accord.").transport)
    first = "Quel est le métier de ses parents ?"
    turns = [
        {"role": "user", "content": first},
        {"role": "assistant", "content": "Je ne sais pas."},
        {"role": "user", "content": "Et où est-elle née ?"},
    ]
    async with running(app) as client:
        await add(client)
        meaning.calls.clear()
        await client.post("/v1/chat/completions", json=chat("Quel temps fait-il à Lyon aujourd'hui ?"))
        await client.post("/v1/chat/completions", json=chat(turns))
        await client.post("/v1/chat/completions", json=chat(turns))
    texts = [t for call in meaning.calls for t in call]
    assert texts.count("Quel temps fait-il à Lyon aujourd'hui ?") == 1
    assert texts.count(first) == 1  # read for the second request, not again for the third
