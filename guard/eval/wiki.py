"""`guard eval wiki`: forget real encyclopedic knowledge (wiki-qa articles) through the admin API, then measure
what leaks of the forgotten articles and what is blocked of the others.

Per seed, a fresh guard (started here, on a real socket, in front of the wiki oracle, `guard.eval.wiki_oracle`)
forgets k articles of k different kinds, registered as an operator would (subject: the title, documents: the
article's paragraphs), and is asked the cases of `guard.eval.wiki_cases`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from tqdm import tqdm

from guard.eval.attacks.probe import visible
from guard.eval.targets import GuardStarter
from guard.eval.wiki_cases import (
    CONTROL_SETS,
    Case,
    WikiConfig,
    control_cases,
    forget_cases,
    is_blocked,
    revealed,
    summarise,
)
from guard.eval.wiki_data import Article, Wiki, choose_articles, closest_questions, neighbours
from guard.eval.wiki_oracle import WikiOracle, create_wiki_oracle_app
from guard.eval.wiki_styles import MODEL_PREFIX
from guard.forget.embedder import Embedder


def cached_embed(embedder: Embedder, texts: Sequence[str], cache: Path | None) -> np.ndarray:
    """Embed texts, or read them back from `cache` when the same embedder embedded the same texts before."""
    if cache is None:
        return np.asarray(embedder.embed(texts))
    key = hashlib.sha256(json.dumps([embedder.space, *texts]).encode()).hexdigest()[:24]
    path = cache / f"wiki-{key}.npy"
    if path.exists():
        return np.asarray(np.load(path))
    vectors = np.asarray(embedder.embed(texts))
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


@dataclass(frozen=True)
class Embedded:
    """The data's embeddings: each article's paragraphs (unit rows), every question (rows of `wiki.questions()`)."""

    paragraphs: dict[str, np.ndarray]
    questions: np.ndarray

    @classmethod
    def of(cls, wiki: Wiki, embedder: Embedder, cache: Path | None) -> Embedded:
        texts = [p for a in wiki.articles for p in a.paragraphs]
        vectors = cached_embed(embedder, texts, cache)
        paragraphs, start = {}, 0
        for a in wiki.articles:
            paragraphs[a.title] = vectors[start : start + len(a.paragraphs)]
            start += len(a.paragraphs)
        return cls(paragraphs, cached_embed(embedder, [q.question for q in wiki.questions()], cache))

    def centroids(self) -> dict[str, np.ndarray]:
        """Each article's mean paragraph embedding."""
        return {title: rows.mean(axis=0) for title, rows in self.paragraphs.items()}


async def register(url: str, token: str, articles: Sequence[Article]) -> list[str]:
    """Each article as a forget entry, as an operator would: subject = the title, documents = its paragraphs."""
    ids = []
    headers = {"authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600) as client:
        for a in articles:
            response = await client.post("/admin/forget", json={"subject": a.subject, "documents": list(a.paragraphs)})
            response.raise_for_status()
            ids.append(str(response.json()["id"]))
    return ids


async def send(client: httpx.AsyncClient, case: Case, max_tokens: int) -> dict[str, Any]:
    """Ask one case; what the client received (every text field, streamed or not) and what the guard did."""
    body = {
        "model": MODEL_PREFIX + case.style,
        "messages": list(case.messages),
        "temperature": 0,
        "max_tokens": max_tokens,
        "stream": case.stream,
    }
    response = await client.post("/v1/chat/completions", json=body)
    texts: list[str] = []
    finish: list[str | None] = []
    if response.status_code != 200:
        texts.append(response.text)
    elif case.stream:
        for line in response.text.splitlines():
            if line.startswith("data: {"):
                for choice in json.loads(line[6:]).get("choices") or []:
                    texts += visible(choice.get("delta") or {})
                    finish.append(choice.get("finish_reason"))
    else:
        for choice in response.json().get("choices") or []:
            texts += visible(choice.get("message") or {})
            finish.append(choice.get("finish_reason"))
    received = "".join(texts)
    action = response.headers.get("x-guard-action", "none")
    q = case.question
    return {
        "set": case.set,
        "title": case.title,
        "kind": case.kind,
        "qid": q.id,
        "style": case.style,
        "wrapped": case.wrapped,
        "named": case.named,
        "stream": case.stream,
        "status": response.status_code,
        "action": action,
        "finish_reason": next((f for f in finish if f), None),
        "blocked": is_blocked(action, finish),
        "leaked": revealed(q.answers, case.sent, received),
        "answered": revealed(q.answers, "", received),
        "question": q.question,
        "answers": list(q.answers),
        "received": received,
    }


async def ask_all(url: str, cases: Sequence[Case], concurrency: int, max_tokens: int, label: str) -> list[Any]:
    semaphore = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(cases), desc=label, unit="q", leave=False, mininterval=1.0)

    async def one(client: httpx.AsyncClient, case: Case) -> dict[str, Any]:
        async with semaphore:
            result = await send(client, case, max_tokens)
        bar.update()
        return result

    try:
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
            return list(await asyncio.gather(*(one(client, c) for c in cases)))
    finally:
        bar.close()


def seed_cases(
    wiki: Wiki, embedded: Embedded, forgotten: Sequence[Article], near: dict[str, str], config: WikiConfig, seed: int
) -> list[Case]:
    rng = random.Random(seed)
    gone = {a.title for a in forgotten}
    others = [(q, i) for i, q in enumerate(wiki.questions()) if q.title not in gone]
    closest = closest_questions(
        [q for q, _ in others],
        embedded.questions[[i for _, i in others]],
        np.concatenate([embedded.paragraphs[t] for t in sorted(gone)]),
        config.near,
    )
    neighbour_titles = set(near.values())
    kept = [a for a in wiki.articles if a.title not in gone]
    benign = [a for a in kept if a.title not in neighbour_titles]
    cases = forget_cases(forgotten, config.per_article, rng)
    cases += control_cases("benign", benign, config.benign, rng)
    cases += control_cases("neighbour", [a for a in kept if a.title in neighbour_titles], config.neighbour, rng)
    cases += control_cases("near", kept, len(closest), rng, closest)
    cases += control_cases("rag-user", kept, config.rag, rng)
    cases += control_cases("rag-system", kept, config.rag, rng)
    return cases


async def run_seed(
    starter: GuardStarter, upstream: str, wiki: Wiki, embedded: Embedded, config: WikiConfig, seed: int
) -> dict[str, Any]:
    forgotten = choose_articles(wiki.articles, config.k, seed)
    near = neighbours(embedded.centroids(), [a.title for a in forgotten])
    cases = seed_cases(wiki, embedded, forgotten, near, config, seed)
    with ExitStack() as stack:
        url, token = starter.guard(upstream, stack)
        await register(url, token, forgotten)
        results = await ask_all(url, cases, config.concurrency, config.max_tokens, f"seed {seed}")
    return {
        "seed": seed,
        "forgotten": [{"title": a.title, "kind": a.kind, "subject": a.subject} for a in forgotten],
        "neighbours": near,
        "summary": summarise(results),
        "cases": results,
    }


def run_wiki(wiki: Wiki, embedder: Embedder, config: WikiConfig) -> dict[str, Any]:
    """Every seed against a fresh guard in front of one wiki oracle; the seeds' results and their pooled sums."""
    embedded = Embedded.of(wiki, embedder, config.cache)
    oracle = WikiOracle(wiki, embedder, embedded.questions)
    seeds = []
    with GuardStarter(embedder, config.policy_file) as starter:
        upstream = starter.serve(create_wiki_oracle_app(oracle))
        for seed in config.seeds:
            seeds.append(asyncio.run(run_seed(starter, upstream, wiki, embedded, config, seed)))
    pooled = summarise([r for s in seeds for r in s["cases"]])
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    return {"config": settings, "sets": ("forget", *CONTROL_SETS), "seeds": seeds, "pooled": pooled}
