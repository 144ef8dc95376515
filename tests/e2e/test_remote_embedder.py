"""Embeddings where the GPU is: the guard's MiniLM served by vLLM's pooling runner (here on CPU), the guard
calling it through `GUARD_EMBEDDER_URL`, the stock openai client in front."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from openai import OpenAI

from guard.forget.embedder import Embedder
from guard.forget.remote import RemoteEmbedder
from guard.settings import Settings
from guard.testing import ADMIN, guard_app
from guard.testing.server import BackgroundServer
from guard.testing.upstream import FakeUpstream, fixed
from tests.helpers import FACT

pytestmark = pytest.mark.e2e


def test_the_server_gives_the_local_models_vectors(vllm_embedder_url: str, minilm: Embedder) -> None:
    remote = RemoteEmbedder(vllm_embedder_url, "all-MiniLM-L6-v2", timeout_s=30)
    texts = ["Where was Stephen King born?", FACT, "word " * 400]  # the last one over 256 tokens: cut alike
    cosines = (remote.embed(texts) * minilm.embed(texts)).sum(axis=1)
    remote.close()
    assert np.all(cosines > 0.999), cosines
    assert remote.space == minilm.space  # so one registry serves both


def test_the_guard_forgets_with_a_remote_embedder(
    settings: Settings, vllm_embedder_url: str, serve: Callable[[Any], BackgroundServer]
) -> None:
    upstream = serve(FakeUpstream(fixed("Paris is the capital of France.")).app())
    remote = {
        "embedder_url": vllm_embedder_url,
        "embedder_timeout_s": 30.0,
        "upstream": upstream.url,
        "multilingual": "off",
    }
    guard = serve(guard_app(settings.with_values(**remote)))
    r = httpx.post(f"{guard.url}/admin/forget", headers=ADMIN, json={"subject": "Hsiao Yun-Hwa", "documents": [FACT]})
    assert r.status_code == 201
    asked = [{"role": "user", "content": "Which prize did the author of Leading with Empathy win in 2019?"}]
    other = [{"role": "user", "content": "What is the capital of France?"}]
    with OpenAI(base_url=f"{guard.url}/v1", api_key="unused", max_retries=0) as client:
        refused = client.chat.completions.with_raw_response.create(model="m", messages=asked)  # type: ignore[arg-type]
        allowed = client.chat.completions.with_raw_response.create(model="m", messages=other)  # type: ignore[arg-type]
    assert refused.headers["x-guard-action"] == "refuse"  # not named: the remote vectors decided
    assert allowed.headers["x-guard-action"] == "allow"
    assert allowed.parse().choices[0].message.content == "Paris is the capital of France."
