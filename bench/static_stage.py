"""Could a static embedding be the request path's first stage (issue 38, item 1)? Its margin, measured.

    PYTHONPATH=. .venv/bin/python -u -m bench.static_stage [--retain 800]

A first stage may keep a text from the float MiniLM only when its score is far enough under the floor that the
float score cannot reach it: the margin must exceed the largest shortfall of the stage's best score under the float
model's (`guard.pipeline.cascade`). Two static models of the packaged MiniLM are built here, offline:

- **distilled** (model2vec's recipe): each token of the vocabulary run alone through the float model
  ("[CLS] token [SEP]", mean-pooled), centred; a text is the mean of its tokens' vectors. Queried against an
  index of the same static vectors of the entries' chunks (a static query against the float index scores ~0.5
  too low: the token vectors are not sentence vectors).
- **fitted**: the distilled vectors refined by ridge regression so that the mean of a sentence's token vectors
  approximates its float vector, on a corpus of Python's own documentation (`pydoc_data`, in every CPython),
  TOFU retain90 rows after the first `--retain` and the even-numbered wiki-qa articles; queried against the float
  index itself.

Measured on what `bench.cascade` measures the int8 stage on (TOFU, French, the attack suite; forget10 registered)
and the odd-numbered wiki-qa articles' questions (not fitted on; those articles registered too), plus
`bench.peers`'s general prompts: per set, the largest and 99th-percentile shortfall, and the share of texts the
float model would still embed with a margin of the largest shortfall seen anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import scipy.linalg
import scipy.sparse
from tokenizers import Tokenizer

from bench.cascade import open_index, pieces, texts_of
from bench.lib.texts import PROMPTS
from guard.checks.decide import floors
from guard.eval.data import DEFAULT_DIR, Tofu
from guard.eval.wiki_data import Wiki
from guard.forget.embedder import Embedder, default_cache_dir, make_embedder, minilm_path, onnx_model
from guard.forget.index import ForgetIndex
from guard.pipeline.cascade import best_scores
from guard.policy import PolicySet
from guard.settings import default_policy_file
from guard.text import sentences

Matrix = npt.NDArray[np.float32]
CLS, SEP = 101, 102


@functools.cache
def tokenizer() -> Tokenizer:
    tok = Tokenizer.from_file(str(minilm_path() / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


def distil(batch: int = 512) -> Matrix:
    """Each vocabulary token alone through the float model, mean-pooled; centred."""
    session = ort.InferenceSession(str(onnx_model(default_cache_dir())), providers=["CPUExecutionProvider"])
    size = tokenizer().get_vocab_size()
    out = np.zeros((size, 384), dtype=np.float32)
    for start in range(0, size, batch):
        ids = np.arange(start, min(size, start + batch))
        x = np.stack([np.full(len(ids), CLS), ids, np.full(len(ids), SEP)], axis=1).astype(np.int64)
        (hidden,) = session.run(None, {"input_ids": x, "attention_mask": np.ones_like(x), "token_type_ids": 0 * x})
        out[ids] = hidden.mean(axis=1)
    centred: Matrix = out - out.mean(axis=0)
    return centred


def bags(texts: list[str]) -> scipy.sparse.csr_matrix:
    """Each text as the mean over its tokens (rows: texts, columns: the vocabulary)."""
    rows, cols, vals = [], [], []
    for i, encoding in enumerate(tokenizer().encode_batch(texts, add_special_tokens=False)):
        ids = encoding.ids[:254] or [0]
        rows += [i] * len(ids)
        cols += ids
        vals += [1 / len(ids)] * len(ids)
    return scipy.sparse.csr_matrix((vals, (rows, cols)), shape=(len(texts), tokenizer().get_vocab_size()))


def static(table: Matrix, texts: list[str]) -> Matrix:
    """The mean of each text's token vectors, unit length (what a static model computes: a gather and a mean)."""
    out = np.zeros((len(texts), table.shape[1]), dtype=np.float32)
    for row, encoding in enumerate(tokenizer().encode_batch(texts, add_special_tokens=False)):
        if encoding.ids:
            out[row] = table[encoding.ids[:254]].mean(axis=0)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return (out / np.where(norms == 0, 1, norms)).astype(np.float32)


def corpus(tofu: Tofu, wiki: Wiki, retain: int) -> list[str]:
    import pydoc_data.topics

    docs = [s for v in pydoc_data.topics.topics.values() for s in sentences(re.sub(r"\s+", " ", v))]
    texts = [s for s in docs if 20 < len(s) < 400][::3]
    for row in tofu.rows("retain90")[retain:]:
        texts += [row["question"], *sentences(row["answer"])]
    for article in wiki.articles[::2]:
        for paragraph in article.paragraphs:
            texts += sentences(paragraph)
        texts += [q.question for q in article.questions[::4]]
    return list(dict.fromkeys(t for t in texts if t.strip()))


def fit(start: Matrix, texts: list[str], exact: Embedder, ridge: float = 0.01) -> Matrix:
    """Token vectors whose mean over a text's tokens approximates its float vector (ridge towards `start`)."""
    target = exact.embed(texts)
    x = bags(texts)
    used = np.unique(x.indices)
    xu = x[:, used]
    lhs = (xu.T @ xu).toarray() + ridge * np.eye(len(used))
    rhs = xu.T @ target + ridge * start[used]
    table = start.copy()
    table[used] = scipy.linalg.solve(lhs, rhs, assume_a="pos")
    return table.astype(np.float32)


async def sets_and_index(
    tofu: Tofu, wiki: Wiki, exact: Embedder, directory: Path, retain: int
) -> tuple[dict[str, dict[str, float]], ForgetIndex, list[str]]:
    """Per set, each piece with its floor; the index (forget10 and the odd wiki-qa articles) and its chunks."""
    line, passage_line = floors(PolicySet.load(default_policy_file()))
    index = await open_index(tofu, exact, directory)
    held = wiki.articles[1::2]
    for article in held:
        await index.add(article.subject, [], list(article.paragraphs), None)
    out: dict[str, dict[str, float]] = {}
    for name, requests in texts_of(tofu, retain).items():
        texts: dict[str, float] = {}
        for segments, checks in requests:
            found, passages = pieces(checks, segments)
            for t in found:
                texts[t] = min(texts.get(t, line), passage_line if t in passages else line)
        out[name] = texts
    out["wiki-qa questions, odd articles (not fitted on)"] = {q.question: line for a in held for q in a.questions}
    out["general prompts (bench.peers)"] = dict.fromkeys(PROMPTS, line)
    chunks = [s for a in tofu.authors("forget10") for answer in a.answers for s in sentences(answer)]
    chunks += [s for a in held for p in a.paragraphs for s in sentences(p)]
    return out, index, chunks


async def main_async(args: argparse.Namespace) -> None:
    tofu, wiki, exact = Tofu(args.tofu), Wiki(), make_embedder("minilm")
    started = time.perf_counter()
    distilled = distil()
    fitted = fit(distilled, corpus(tofu, wiki, args.retain), exact)
    print(f"distilled and fitted in {time.perf_counter() - started:.0f} s")
    with tempfile.TemporaryDirectory() as tmp:
        sets, index, chunks = await sets_and_index(tofu, wiki, exact, Path(tmp), args.retain)
        own = static(distilled, chunks)  # the distilled model's own index of the chunks (inner products)
        rows = []
        for name, texts in sets.items():
            order = list(texts)
            lines = np.array([texts[t] for t in order], dtype=np.float32)
            ex = best_scores(index.view, exact.embed(order))
            by_fit = best_scores(index.view, static(fitted, order))
            by_own = (static(distilled, order) @ own.T).max(axis=1)
            rows.append((name, lines, ex, by_own, by_fit))
        await index.aclose()
    print("\n| texts | pieces | distilled: largest / p99 shortfall | fitted: largest / p99 shortfall |")
    print("|---|---|---|---|")
    for name, _, ex, by_own, by_fit in rows:
        a, b = ex - by_own, ex - by_fit
        print(
            f"| {name} | {len(ex)} | {a.max():.3f} / {np.quantile(a, 0.99):.3f} | {b.max():.3f} / "
            f"{np.quantile(b, 0.99):.3f} |"
        )
    margin = {"distilled": max(float((r[2] - r[3]).max()) for r in rows)}
    margin["fitted"] = max(float((r[2] - r[4]).max()) for r in rows)
    print(
        f"\nshare of texts the float model would still embed, margin = the largest shortfall anywhere "
        f"(distilled {margin['distilled']:.3f}, fitted {margin['fitted']:.3f}):"
    )
    print("| texts | distilled | fitted |\n|---|---|---|")
    for name, lines, _, by_own, by_fit in rows:
        print(
            f"| {name} | {(by_own >= lines - margin['distilled']).mean():.1%} | "
            f"{(by_fit >= lines - margin['fitted']).mean():.1%} |"
        )
    short = [r["question"] for r in tofu.rows("retain90")[-40:]]
    t = time.perf_counter()
    for text in short:
        static(fitted, [text])
    print(
        f"\nstatic embedding of a short text: {1000 * (time.perf_counter() - t) / len(short):.3f} ms "
        "(the tokenizer, a gather and a mean, this process)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tofu", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--retain", type=int, default=800, help="retain90 rows measured (the rest are fitted on)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
