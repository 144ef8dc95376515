"""The peer comparison (issue 15), side by side in one run, in front of one fast fake upstream on loopback: the
upstream called directly, the bare proxy (this guard with every check off), LiteLLM's proxy with no guardrail, and
the guard with all checks on (TOFU forget10 registered through the admin API, plus `--chunks` synthetic chunks;
with those, the multilingual model is off: it would embed each of them at start, and English prompts never
reach it).

    .venv/bin/python -m bench.peers [--requests 300] [--chunks 100000] [--seconds 15] [--float-too]

`--float-too` adds the same guard without its int8 first stage (`GUARD_FIRST_STAGE=off`, every text through the
float MiniLM; `guard.pipeline.cascade`) as a fifth target. `--gateway` adds LiteLLM with a guard of its own as its
guardrail (`generic_guardrail_api`, pre_call and post_call: `guard.api.litellm`), beside LiteLLM alone and the guard
in-line; its CPU per request is both processes'.

LiteLLM (`litellm[proxy]`, pinned) lives in its own virtual environment under `.peers/` (git-ignored), created on
first use from the package registry and started offline: see `guard.testing.litellm`.

Measured, per target:
- short prompts one at a time, non-streamed, the four targets in a shuffled order for each prompt: latency p50 /
  p99 and what each adds over the direct call at the same percentile. Two kinds of prompt: general requests
  (`bench.cost.PROMPTS`) and near-domain ones (TOFU world facts and real authors: questions about books and
  writers, the ones a forget index of authors is closest to). Each is made distinct by a serial number, so no
  cache answers from an earlier identical prompt;
- the same streamed: time to the first content;
- CPU milliseconds per request of the proxy's process (user + system, from /proc, over the non-streamed phase);
- sustained requests/s: 8 closed-loop clients for `--seconds` against each proxy in turn, and the ratio to the
  bare proxy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from bench.lib.corpus import WORK, build_index, load_corpus
from bench.lib.texts import PROMPTS
from bench.procs import cpu_seconds, register_forget10, start_fake_upstream, start_guard, stop
from guard.eval.data import DEFAULT_DIR, Tofu
from guard.forget.embedder import make_embedder
from guard.forget.sqlite import REGISTRY_FILE
from guard.testing.litellm import LITELLM_KEY, start_litellm

CLIENTS = 8
FLOAT = "guard, float only"
GATEWAY = "LiteLLM + guard"


def gateway(
    guard_env: dict[str, str], index_dir: Path, tmp: Path, tofu: Tofu, urls: dict[str, str], pids: dict[str, list[int]]
) -> list[subprocess.Popen[bytes]]:
    """LiteLLM with a guard of its own (the same index, a copy) as its generic guardrail, pre_call and post_call:
    the target GATEWAY, whose CPU is both processes'."""
    gw_dir = tmp / "gateway-index"
    if index_dir.exists():
        shutil.copytree(index_dir, gw_dir)
    guard, guard_url = start_guard(guard_env | {"GUARD_INDEX_DIR": str(gw_dir)}, tmp / "gw-guard.log", timeout_s=1800)
    register_forget10(guard_url, tofu)
    (tmp / "gateway").mkdir()
    litellm, urls[GATEWAY] = start_litellm(guard_env["GUARD_UPSTREAM"], tmp / "gateway", guard=guard_url)
    pids[GATEWAY] = [litellm.pid, guard.pid]
    return [guard, litellm]


def prompts(kind: str, n: int, tofu: Tofu) -> list[str]:
    near = [r["question"] for r in tofu.rows("world_facts") + tofu.rows("real_authors")]
    pool = PROMPTS if kind == "general" else near
    return [f"{pool[i % len(pool)]} ({i})" for i in range(n)]


def timed(client: httpx.Client, url: str, text: str, stream: bool) -> tuple[float, str]:
    body = {"model": "m", "messages": [{"role": "user", "content": text}]}
    started = time.perf_counter()
    if not stream:
        r = client.post(f"{url}/v1/chat/completions", json=body)
        if r.status_code == 400 and "guardrail" in r.text.lower():  # LiteLLM's guardrail refused it
            return (time.perf_counter() - started) * 1000, "refuse"
        assert r.status_code == 200, r.text[:300]
        return (time.perf_counter() - started) * 1000, r.headers.get("x-guard-action", "allow")
    ms = 0.0
    with client.stream("POST", f"{url}/v1/chat/completions", json={**body, "stream": True}) as r:
        if r.status_code == 400:  # LiteLLM's guardrail refused it
            return (time.perf_counter() - started) * 1000, "refuse"
        assert r.status_code == 200
        for line in r.iter_lines():
            if not ms and line.startswith("data: {"):
                choices = json.loads(line[6:]).get("choices") or [{}]
                if (choices[0].get("delta") or {}).get("content"):
                    ms = (time.perf_counter() - started) * 1000
        return ms or (time.perf_counter() - started) * 1000, r.headers.get("x-guard-action", "allow")


async def sustained(url: str, texts: list[str], seconds: float) -> float:
    """Requests/s of CLIENTS closed-loop clients sending back to back for `seconds`."""
    done = 0
    deadline = time.perf_counter() + seconds
    headers = {"authorization": f"Bearer {LITELLM_KEY}"}
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers) as client:

        async def worker(w: int) -> None:
            nonlocal done
            i = w
            while time.perf_counter() < deadline:
                body = {"model": "m", "messages": [{"role": "user", "content": texts[i % len(texts)]}]}
                r = await client.post("/v1/chat/completions", json=body)
                assert r.status_code == 200, r.text[:300]
                done += 1
                i += CLIENTS

        started = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(CLIENTS)))
    return done / (time.perf_counter() - started)


def guard_index(chunks: int, tofu: Tofu) -> Path:
    """A fresh index directory holding `chunks` synthetic chunks (none: an empty one)."""
    if not chunks:
        return Path(tempfile.mkdtemp()) / "index"
    directory = WORK / f"index-{chunks}"
    emb = make_embedder("minilm")
    build_index(directory, chunks, load_corpus(tofu, emb), emb.dim)
    with sqlite3.connect(directory / REGISTRY_FILE) as db:  # forget10 is added through the admin API below
        db.execute("DELETE FROM chunks WHERE entry_id NOT LIKE 'fg-synth%'")
        db.execute("DELETE FROM entries WHERE id NOT LIKE 'fg-synth%'")
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="per kind of prompt, per target")
    parser.add_argument("--chunks", type=int, default=0, help="synthetic chunks in the guard's index besides forget10")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each sustained-throughput run")
    parser.add_argument("--tofu", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--float-too", action="store_true", help="also the guard without its int8 first stage")
    parser.add_argument("--gateway", action="store_true", help="also LiteLLM with a guard as its guardrail")
    args = parser.parse_args()
    tofu = Tofu(args.tofu)
    tmp = Path(tempfile.mkdtemp())
    index_dir = guard_index(args.chunks, tofu)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        proc, upstream = start_fake_upstream()
        procs.append(proc)
        urls: dict[str, str] = {"direct": upstream}
        pids: dict[str, list[int]] = {}
        proc, urls["bare proxy"] = start_guard(
            {"GUARD_UPSTREAM": upstream, "GUARD_INDEX_DIR": str(tmp / "bare")}, tmp / "bare.log", bare=True
        )
        procs.append(proc)
        pids["bare proxy"] = [proc.pid]
        proc, urls["LiteLLM"] = start_litellm(upstream, tmp)
        procs.append(proc)
        pids["LiteLLM"] = [proc.pid]
        guard_env = {"GUARD_UPSTREAM": upstream, "GUARD_INDEX_DIR": str(index_dir)}
        if args.chunks:
            # e5 embeds every chunk it has no cached vector for when the guard starts (~50 ms each here: hours at
            # 1e5). English prompts never reach e5, so the figures below do not depend on it.
            guard_env["GUARD_MULTILINGUAL"] = "off"
        proc, urls["guard"] = start_guard(guard_env, tmp / "guard.log", timeout_s=1800)
        procs.append(proc)
        pids["guard"] = [proc.pid]
        register_forget10(urls["guard"], tofu)
        if args.float_too:  # the same guard, every text through the float MiniLM (no int8 first stage)
            float_dir = tmp / "float-index"
            if index_dir.exists():
                shutil.copytree(index_dir, float_dir)
            float_env = guard_env | {"GUARD_INDEX_DIR": str(float_dir), "GUARD_FIRST_STAGE": "off"}
            proc, urls[FLOAT] = start_guard(float_env, tmp / "float.log", timeout_s=1800)
            procs.append(proc)
            pids[FLOAT] = [proc.pid]
            register_forget10(urls[FLOAT], tofu)
        if args.gateway:
            procs += gateway(guard_env, index_dir, tmp, tofu, urls, pids)
        rows = []
        cpu_ms: dict[str, float] = {}
        blocked = dict.fromkeys(urls, 0)
        headers = {"authorization": f"Bearer {LITELLM_KEY}"}
        with httpx.Client(timeout=60, headers=headers) as client:
            for kind in ("general", "near-domain"):
                texts = prompts(kind, args.requests + 10, tofu)
                for stream in (False, True):
                    ms: dict[str, list[float]] = {k: [] for k in urls}
                    cpu_before = {k: sum(map(cpu_seconds, p)) for k, p in pids.items()}
                    for i, text in enumerate(texts):
                        for label in random.sample(list(urls), len(urls)):
                            took, action = timed(client, urls[label], text, stream)
                            blocked[label] += action != "allow"
                            if i >= 10:  # warm-up
                                ms[label].append(took)
                    if not stream:
                        for k, p in pids.items():
                            cpu_ms.setdefault(k, 0.0)
                            cpu_ms[k] += (sum(map(cpu_seconds, p)) - cpu_before[k]) * 1000 / len(texts) / 2
                    rows.append((kind, stream, ms))
        rps = {k: asyncio.run(sustained(urls[k], prompts("general", 4000, tofu), args.seconds)) for k in pids}
        print(
            f"\n{args.requests} short prompts per kind and target; the guard holds forget10 and {args.chunks:,} "
            f"synthetic chunks\n"
        )
        print("| prompts | target | p50 ms | p99 ms | added p50 | added p99 | streamed: first content p50 | added |")
        print("|---|---|---|---|---|---|---|---|")
        for kind in ("general", "near-domain"):
            plain = next(ms for k, s, ms in rows if k == kind and not s)
            streamed = next(ms for k, s, ms in rows if k == kind and s)
            d50, d99 = statistics.median(plain["direct"]), statistics.quantiles(plain["direct"], n=100)[98]
            s50 = statistics.median(streamed["direct"])
            for label in urls:
                p50, p99 = statistics.median(plain[label]), statistics.quantiles(plain[label], n=100)[98]
                f50 = statistics.median(streamed[label])
                print(
                    f"| {kind} | {label} | {p50:.2f} | {p99:.2f} | {p50 - d50:+.2f} | {p99 - d99:+.2f} | "
                    f"{f50:.2f} | {f50 - s50:+.2f} |"
                )
        print("\n| target | CPU ms per request | sustained req/s (8 clients) | of the bare proxy |")
        print("|---|---|---|---|")
        for label in pids:
            print(f"| {label} | {cpu_ms[label]:.2f} | {rps[label]:.0f} | {rps[label] / rps['bare proxy']:.2f} |")
        print(f"\nblocked (none should be): {blocked}")
    finally:
        stop(procs)


if __name__ == "__main__":
    main()
