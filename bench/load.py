"""A bounded load test: the guard (real MiniLM, TOFU forget10 in the index) in front of a fast fake upstream, an
open-loop client at a fixed rate for a fixed time on loopback. It stops by itself and prints errors, latency,
the guard's own overhead and its memory over time (flat = no leak).

    .venv/bin/python bench/load.py [--rate 20] [--seconds 240] [--stream-share 0.2] [--forget-share 0.1]
    .venv/bin/python bench/load.py --seconds 1800 --churn-s 30 --per-minute    # the soak (issue 17)

Mix: retain90 / real-author / world-fact questions (allowed) and forget10 questions (refused), a share streamed.
With --churn-s, an operator adds a forget10 author's entry and removes it again every that many seconds (index,
registry and audit writes under load). --per-minute prints requests, errors, p50/p99 and RSS for each minute.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.lib.measure import pct, rss_mb, wait_ready
from guard.eval.data import Tofu, control_questions
from guard.settings import REPO_ROOT
from guard.testing.server import free_port

TOKEN = "load-test-admin"


@dataclass
class Stats:
    latency_ms: list[float] = field(default_factory=list)
    overhead_ms: list[float] = field(default_factory=list)
    actions: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    rss_mb: list[tuple[float, float]] = field(default_factory=list)
    done: list[tuple[float, float, bool]] = field(default_factory=list)  # (finished at, latency ms, error)
    churn: int = 0  # entries added and removed under load
    churn_errors: int = 0
    origin: float = field(default_factory=time.monotonic)

    def finish(self, latency_ms: float, error: bool) -> None:
        self.done.append((time.monotonic() - self.origin, latency_ms, error))


async def one(client: httpx.AsyncClient, question: str, stream: bool, stats: Stats) -> None:
    body = {"model": "fake", "messages": [{"role": "user", "content": question}], "stream": stream}
    started = time.perf_counter()
    try:
        if stream:
            async with client.stream("POST", "/v1/chat/completions", json=body) as r:
                async for _ in r.aiter_bytes():
                    pass
                text_ok = r.status_code == 200
        else:
            r = await client.post("/v1/chat/completions", json=body)
            text_ok = r.status_code == 200 and "choices" in r.json()
    except httpx.HTTPError as exc:
        stats.errors[type(exc).__name__] = stats.errors.get(type(exc).__name__, 0) + 1
        stats.finish((time.perf_counter() - started) * 1000, True)
        return
    stats.latency_ms.append((time.perf_counter() - started) * 1000)
    stats.finish(stats.latency_ms[-1], not text_ok)
    if not text_ok:
        stats.errors[f"HTTP {r.status_code}"] = stats.errors.get(f"HTTP {r.status_code}", 0) + 1
        return
    action = r.headers.get("x-guard-action", "?")
    stats.actions[action] = stats.actions.get(action, 0) + 1
    stats.overhead_ms.append(float(r.headers.get("x-guard-overhead-ms", "nan")))


async def churn(url: str, every_s: float, authors: list[tuple[str, list[str]]], stats: Stats) -> None:
    """An operator at work: add an author's entry, remove it half a period later, and again."""
    headers = {"authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as admin:
        for i in itertools.count():
            await asyncio.sleep(every_s / 2)
            name, answers = authors[i % len(authors)]
            try:
                r = await admin.post("/admin/forget", json={"subject": name + " (churn)", "documents": answers})
                r.raise_for_status()
                await asyncio.sleep(every_s / 2)
                (await admin.delete(f"/admin/forget/{r.json()['id']}")).raise_for_status()
                stats.churn += 1
            except httpx.HTTPError:
                stats.churn_errors += 1


async def drive(
    url: str, pid: int, args: argparse.Namespace, allowed: list[str], forget: list[str], churned: list[Any]
) -> Stats:
    stats = Stats()
    rng = random.Random(args.seed)
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=128)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        tasks: set[asyncio.Task[None]] = set()
        started = stats.origin = time.monotonic()
        operator = asyncio.create_task(churn(url, args.churn_s, churned, stats)) if args.churn_s > 0 else None
        total = int(args.rate * args.seconds)
        next_sample = started
        for i in range(total):
            due = started + i / args.rate
            now = time.monotonic()
            if now >= next_sample:
                stats.rss_mb.append((now - started, rss_mb(pid)))
                next_sample += 5
            if due > now:
                await asyncio.sleep(due - now)
            question = rng.choice(forget) if rng.random() < args.forget_share else rng.choice(allowed)
            task = asyncio.create_task(one(client, question, rng.random() < args.stream_share, stats))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
        stats.rss_mb.append((time.monotonic() - started, rss_mb(pid)))
        if operator is not None:
            operator.cancel()
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second (open loop)")
    parser.add_argument("--seconds", type=float, default=240.0)
    parser.add_argument("--stream-share", type=float, default=0.2)
    parser.add_argument("--forget-share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--churn-s", type=float, default=0.0, help="add and remove an entry this often (0 = never)")
    parser.add_argument("--per-minute", action="store_true", help="a row per minute: errors, p50/p99, RSS")
    parser.add_argument("--tofu", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "tofu")
    args = parser.parse_args()

    tofu = Tofu(args.tofu)
    authors = tofu.authors("forget10")
    forget = [row["question"] for a in authors for row in a.rows]
    allowed = [q.text for q in control_questions(tofu, 2000, seed=1)]
    up_port, guard_port = free_port(), free_port()
    workdir = Path(tempfile.mkdtemp(prefix="guard-load-"))
    python = sys.executable
    upstream = subprocess.Popen(
        [
            python,
            "-m",
            "uvicorn",
            "--factory",
            "guard.testing.upstream:from_env",
            "--port",
            str(up_port),
            "--log-level",
            "warning",
        ],
        cwd=REPO_ROOT,
    )
    env = {
        **os.environ,
        "GUARD_UPSTREAM": f"http://127.0.0.1:{up_port}",
        "GUARD_PORT": str(guard_port),
        "GUARD_INDEX_DIR": str(workdir / "index"),
        "GUARD_ADMIN_TOKEN": TOKEN,
        "GUARD_LOG_LEVEL": "WARNING",
    }
    log = (workdir / "guard.log").open("wb")
    guard = subprocess.Popen([python, "-m", "guard", "serve"], cwd=REPO_ROOT, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{guard_port}"
    try:
        wait_ready(f"http://127.0.0.1:{up_port}/", upstream)
        wait_ready(url + "/healthz", guard)
        with httpx.Client(base_url=url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=120) as admin:
            for a in authors:
                admin.post("/admin/forget", json={"subject": a.name, "documents": a.answers}).raise_for_status()
            health = admin.get("/healthz").json()
        print(f"index: {health['entries']} entries, {health['chunks']} chunks; guard RSS {rss_mb(guard.pid):.0f} MB")
        print(
            f"load: {args.rate:g} req/s for {args.seconds:g} s, {args.stream_share:.0%} streamed, "
            f"{args.forget_share:.0%} forget questions"
        )
        churned = [(a.name, a.answers) for a in tofu.authors("forget01")]
        stats = asyncio.run(drive(url, guard.pid, args, allowed, forget, churned))
        metrics = httpx.get(url + "/metrics").text
    finally:
        guard.terminate()
        upstream.terminate()
        guard.wait(30)
        upstream.wait(30)
    report(stats, args, metrics)


def report(stats: Stats, args: argparse.Namespace, metrics: str) -> None:
    sent = int(args.rate * args.seconds)
    done = len(stats.latency_ms)
    print(f"\nrequests: {sent} sent, {done} answered, errors: {stats.errors or 'none'}")
    print(f"actions: {dict(sorted(stats.actions.items()))}")
    lat, over = stats.latency_ms, [x for x in stats.overhead_ms if x == x]
    print(
        f"client latency ms  p50 {pct(lat, 0.5):.1f}  p95 {pct(lat, 0.95):.1f}  p99 {pct(lat, 0.99):.1f}  "
        f"max {max(lat):.1f}"
    )
    print(f"guard overhead ms  p50 {pct(over, 0.5):.1f}  p95 {pct(over, 0.95):.1f}  p99 {pct(over, 0.99):.1f}")
    minute = [m for t, m in stats.rss_mb if t <= 60]
    last = [m for t, m in stats.rss_mb if t >= stats.rss_mb[-1][0] - 60]
    print(
        f"guard RSS MB: start {stats.rss_mb[0][1]:.0f}, first-minute mean {statistics.mean(minute):.0f}, "
        f"last-minute mean {statistics.mean(last):.0f}, max {max(m for _, m in stats.rss_mb):.0f}"
    )
    print(
        "RSS samples (s, MB): "
        + ", ".join(f"{t:.0f}:{m:.0f}" for t, m in stats.rss_mb[:: max(1, len(stats.rss_mb) // 12)])
    )
    if args.churn_s > 0:
        print(f"operator churn: {stats.churn} entries added and removed, {stats.churn_errors} failed")
    for line in metrics.splitlines():
        if line.startswith(("guard_requests_total", "guard_errors_total", "guard_upstream_errors_total")):
            print("  " + line)
    if args.per_minute:
        per_minute(stats)


def per_minute(stats: Stats) -> None:
    """Requests by the minute they finished in; RSS is the last sample of that minute."""
    print("\n| minute | answered | errors | p50 ms | p99 ms | max ms | guard RSS MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    minutes = int(max(t for t, _, _ in stats.done) // 60) + 1 if stats.done else 0
    for m in range(minutes):
        rows = [(lat, err) for t, lat, err in stats.done if m * 60 <= t < (m + 1) * 60]
        lat = [x for x, _ in rows]
        rss = [mb for t, mb in stats.rss_mb if t < (m + 1) * 60]
        print(
            f"| {m + 1} | {len(rows)} | {sum(e for _, e in rows)} | {pct(lat, 0.5):.1f} | {pct(lat, 0.99):.1f} | "
            f"{max(lat, default=float('nan')):.1f} | {rss[-1] if rss else float('nan'):.0f} |"
        )


if __name__ == "__main__":
    main()
