"""Send question sets to a target, score every answer, and summarise per question set."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from tqdm import tqdm

from guard.eval.data import Author, Question
from guard.eval.metrics import leak, percentile, rouge_l_recall
from guard.eval.targets import Target

BLOCKING = ("refuse", "filter")


@dataclass(frozen=True)
class Record:
    set: str
    forget: bool
    action: str  # the guard's x-guard-action, "none" for a raw endpoint
    finish_reason: str | None
    leak_rouge: bool
    leak_keyfact: bool
    rouge_recall: float
    latency_ms: float
    overhead_ms: float | None
    subject: str = ""


async def register(target: Target, authors: Sequence[Author], policy: str | None = None) -> list[str]:
    """Add each author as a forget entry through the admin API (subject = name, documents = gold answers)."""
    assert target.admin_token is not None, "only a guarded target has an admin API"
    headers = {"authorization": f"Bearer {target.admin_token}"}
    ids = []
    async with httpx.AsyncClient(base_url=target.url, headers=headers, timeout=300) as client:
        for author in authors:
            body: dict[str, Any] = {"subject": author.name, "documents": author.answers}
            if policy:
                body["policy"] = policy
            response = await client.post("/admin/forget", json=body)
            response.raise_for_status()
            ids.append(response.json()["id"])
    return ids


async def ask(
    target: Target, questions: Sequence[Question], *, concurrency: int = 4, max_tokens: int = 128, label: str = ""
) -> list[Record]:
    limits = httpx.Limits(max_connections=concurrency)
    semaphore = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(questions), desc=label or target.name, unit="q", leave=False, mininterval=1.0)

    async def one(client: httpx.AsyncClient, q: Question) -> Record:
        body = {
            "model": target.model,
            "messages": [{"role": "user", "content": q.text}],
            "temperature": 0,
            "max_tokens": max_tokens,
        }
        async with semaphore:
            started = time.perf_counter()
            response = await client.post("/v1/chat/completions", json=body)
            latency = (time.perf_counter() - started) * 1000.0
        bar.update()
        response.raise_for_status()
        choice = response.json()["choices"][0]
        text = choice["message"].get("content") or ""
        found = leak(q.gold, q.text, text)
        overhead = response.headers.get("x-guard-overhead-ms")
        return Record(
            set=q.set,
            forget=q.forget,
            action=response.headers.get("x-guard-action", "none"),
            finish_reason=choice.get("finish_reason"),
            leak_rouge=found.by_rouge,
            leak_keyfact=found.by_keyfact,
            rouge_recall=rouge_l_recall(q.gold, text),
            latency_ms=latency,
            overhead_ms=float(overhead) if overhead is not None else None,
            subject=q.subject,
        )

    try:
        async with httpx.AsyncClient(base_url=target.url, timeout=600, limits=limits) as client:
            return list(await asyncio.gather(*(one(client, q) for q in questions)))
    finally:
        bar.close()


def summarize(records: Sequence[Record]) -> dict[str, dict[str, Any]]:
    """Per question set: leak rates (both definitions), false blocks, attribution, quality, latency."""
    by_set: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_set[r.set].append(r)
    out: dict[str, dict[str, Any]] = {}
    for name, rs in by_set.items():
        n = len(rs)
        blocked = [r for r in rs if r.action in BLOCKING or r.finish_reason == "content_filter"]
        overheads = [r.overhead_ms for r in rs if r.overhead_ms is not None]
        latencies = [r.latency_ms for r in rs]
        summary: dict[str, Any] = {
            "n": n,
            "leak_keyfact": sum(r.leak_keyfact for r in rs) / n,
            "leak_rouge": sum(r.leak_rouge for r in rs) / n,
            "blocked": len(blocked) / n,
            "rouge_recall_mean": sum(r.rouge_recall for r in rs) / n,
            "latency_ms_p50": percentile(latencies, 50),
            "latency_ms_p95": percentile(latencies, 95),
            "overhead_ms_p50": percentile(overheads, 50) if overheads else None,
            "overhead_ms_p95": percentile(overheads, 95) if overheads else None,
            # attribution: who stopped it (for the forget sets), what went through
            "caught_input": sum(r.action == "refuse" for r in rs) / n,
            "caught_output": sum(r.action == "filter" for r in rs) / n,
            "rewritten": sum(r.action == "rewrite" for r in rs) / n,
            "missed": sum((r.leak_keyfact or r.leak_rouge) for r in rs if r.action not in BLOCKING) / n,
        }
        out[name] = summary
    return out


def per_subject(records: Sequence[Record]) -> dict[str, dict[str, Any]]:
    """Per forgotten subject, over its forget questions (all three variants): how many, and the leak rates."""
    by_subject: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        if r.forget and r.subject:
            by_subject[r.subject].append(r)
    return {
        subject: {
            "n": len(rs),
            "leak_keyfact": sum(r.leak_keyfact for r in rs) / len(rs),
            "leak_rouge": sum(r.leak_rouge for r in rs) / len(rs),
        }
        for subject, rs in sorted(by_subject.items())
    }
