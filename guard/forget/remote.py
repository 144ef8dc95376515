"""An embedder on another machine: an OpenAI-compatible `POST /v1/embeddings` (vLLM's pooling runner,
text-embeddings-inference, ...), so the embedding runs where the GPU is and the guard keeps only the cheap parts.

Texts go in batches of `batch_size` per call, each call bounded by `timeout_s`. A failure (unreachable, an error
status, a malformed or wrong-sized answer) raises `RemoteEmbedderError`: on the request path the global `on_error`
decides what that means (refuse / pass), as for the local model. Vectors are L2-normalised here whatever the
server does. Its `name` is the model name it is configured with and sends (`GUARD_EMBEDDER_MODEL`): the registry
records which model wrote its vectors and the guard refuses to start on vectors of another (`claim_embedder`).
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import numpy as np

from guard.forget.embedder import Embedder, Vectors


class RemoteEmbedderError(RuntimeError):
    """The embedding server did not give one vector of the expected size per text."""


class RemoteEmbedder(Embedder):
    def __init__(
        self,
        url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 2.0,
        batch_size: int = 64,
        truncate: int = 256,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/") + "/v1/embeddings"
        self.model = model
        self.batch_size = batch_size
        # longer texts are cut to this many tokens, as the local model does (vLLM's `truncate_prompt_tokens`;
        # without it vLLM refuses a text over the model's length); 0: not sent, for servers that truncate anyway
        self.extra = {"truncate_prompt_tokens": truncate} if truncate else {}
        self._client = httpx.Client(timeout=timeout_s, headers=headers, transport=transport)
        self.name = model
        self.dim = len(self._call(["dimension probe"])[0])  # and the server is there at start

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            rows += self._call(texts[start : start + self.batch_size])
        if any(len(row) != self.dim for row in rows):
            raise RemoteEmbedderError(f"embedding server answered vectors not of {self.dim} dimensions")
        out = np.asarray(rows, dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        normed: Vectors = (out / np.maximum(norms, 1e-12)).astype(np.float32)
        return normed

    def _call(self, texts: Sequence[str]) -> list[list[float]]:
        try:
            response = self._client.post(self.url, json={"model": self.model, "input": list(texts), **self.extra})
        except httpx.HTTPError as exc:
            raise RemoteEmbedderError(f"embedding server unreachable ({type(exc).__name__})") from exc
        if response.status_code != 200:
            raise RemoteEmbedderError(f"embedding server answered {response.status_code}")
        try:
            data = sorted(response.json()["data"], key=lambda d: d["index"])
            rows = [list(map(float, d["embedding"])) for d in data]
        except (ValueError, KeyError, TypeError) as exc:
            raise RemoteEmbedderError("embedding server answered a malformed body") from exc
        if len(rows) != len(texts):
            raise RemoteEmbedderError(f"embedding server answered {len(rows)} vectors for {len(texts)} texts")
        return rows

    def close(self) -> None:
        self._client.close()
