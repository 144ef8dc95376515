"""What the guard adds, side by side in one run: the upstream called directly, a bare pass-through proxy (the same
guard with every check off) and the guard with all checks on, in front of one fast fake upstream on loopback.

    .venv/bin/python -m bench.overhead [--sizes 1000,100000,1000000] [--requests 300] [--out FILE.md]

For each forget-index size (synthetic chunks, see `build_index`, plus the 20 real TOFU forget10 authors added
through the admin API) it measures, with the real MiniLM, faiss and SQLite:
- non-streaming latency, short prompt / 2k-token prompt × 1 / 8 user turns, one client, requests to the three
  targets interleaved; "added" = the guard's percentile minus the direct one;
- the same at 8 concurrent clients (short prompt, 1 turn);
- streaming: time to first token and tokens/s (the fake paces 64 tokens at FAKE_TOKEN_MS);
- sustained requests/s, 8 closed-loop clients, bare proxy vs guard;
- the index itself, in this process: load time, search p50 for one query, recall of the real forget entries
  among the synthetic ones (the guard's best score vs the exact best), add → enforced, guard RSS.
With --out the tables also go to FILE.md with the command and the machine, to rewrite the section of
bench/RESULTS.md from (its sections are rewritten when a bench is rerun, never appended to). `--policy-fields
speculative,stream_upstream` runs the guard with those fields of its default policy on (the bare proxy as it is).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.lib.corpus import WORK, Corpus, build_index, conversation, load_corpus
from bench.lib.measure import pct, rss_mb, wait_ready
from bench.procs import policies
from guard.eval.data import Tofu
from guard.forget.embedder import Embedder, make_embedder
from guard.forget.index import ForgetIndex
from guard.forget.sqlite import REGISTRY_FILE, SqliteRegistry
from guard.settings import REPO_ROOT
from guard.testing.server import free_port

TOKEN = "bench-admin"
TOKEN_MS = 5.0
STREAM_TOKENS = 64


# -- measuring --------------------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    url: str
    client: httpx.AsyncClient = field(init=False)


async def ask(target: Target, messages: list[dict[str, str]]) -> tuple[float, str]:
    started = time.perf_counter()
    r = await target.client.post("/v1/chat/completions", json={"model": "fake", "messages": messages})
    ms = (time.perf_counter() - started) * 1000
    if r.status_code != 200:
        raise SystemExit(f"{target.name}: HTTP {r.status_code} {r.text[:200]}")
    return ms, r.headers.get("x-guard-action", "-")


async def stream(target: Target, messages: list[dict[str, str]]) -> tuple[float, float]:
    """(time to first token ms, tokens per second)."""
    body = {"model": "fake", "messages": messages, "stream": True}
    started = time.perf_counter()
    first = last = 0.0
    tokens = 0
    async with target.client.stream("POST", "/v1/chat/completions", json=body) as r:
        async for line in r.aiter_lines():
            if not line.startswith("data: {"):
                continue
            delta = json.loads(line[6:])["choices"][0].get("delta", {}).get("content")
            if delta:
                now = time.perf_counter()
                first = first or now
                last = now
                tokens += 1
    ttft = (first - started) * 1000
    rate = (tokens - 1) / (last - first) if tokens > 1 and last > first else float("nan")
    return ttft, rate


def row(label: str, samples: dict[str, list[float]]) -> list[str]:
    d, b, g = samples["direct"], samples["bare"], samples["guard"]
    out = [label]
    for q in (0.5, 0.95, 0.99):
        out.append(f"{pct(d, q):.2f}")
    for q in (0.5, 0.95, 0.99):
        out.append(f"{pct(b, q) - pct(d, q):+.2f}")
    for q in (0.5, 0.95, 0.99):
        out.append(f"{pct(g, q) - pct(d, q):+.2f}")
    return out


Messages = list[dict[str, str]]


async def sequential(targets: list[Target], requests: list[Messages]) -> tuple[dict[str, list[float]], dict[str, int]]:
    samples: dict[str, list[float]] = {t.name: [] for t in targets}
    actions: dict[str, int] = {}
    for messages in requests[:5]:  # warm-up: connections, caches of the first turns
        for t in targets:
            await ask(t, messages)
    for messages in requests[5:]:
        for t in random.sample(targets, len(targets)):
            ms, action = await ask(t, messages)
            samples[t.name].append(ms)
            if t.name == "guard":
                actions[action] = actions.get(action, 0) + 1
    return samples, actions


async def concurrent(
    target: Target, requests: list[list[dict[str, str]]], clients: int, seconds: float | None = None
) -> tuple[list[float], float]:
    """Closed loop: `clients` workers send back to back; (latencies, requests per second)."""
    latencies: list[float] = []
    queue = list(requests)
    deadline = time.perf_counter() + seconds if seconds else None
    started = time.perf_counter()

    async def worker(w: int) -> None:
        i = w
        while True:
            if deadline is None:
                if not queue:
                    return
                messages = queue.pop()
            else:
                if time.perf_counter() >= deadline:
                    return
                messages = requests[i % len(requests)]
                i += clients
            ms, _ = await ask(target, messages)
            latencies.append(ms)

    await asyncio.gather(*(worker(w) for w in range(clients)))
    return latencies, len(latencies) / (time.perf_counter() - started)


# -- one index size ---------------------------------------------------------------------------------------


def start_stack(
    index_dir: Path, bare_dir: Path, log_dir: Path, policy_fields: str = ""
) -> tuple[list[subprocess.Popen[bytes]], dict[str, str]]:
    python = sys.executable
    up_port, bare_port, guard_port = free_port(), free_port(), free_port()
    env = {**os.environ, "FAKE_TOKEN_MS": str(TOKEN_MS), "FAKE_TOKENS": str(STREAM_TOKENS)}
    procs = [
        subprocess.Popen(
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
            env=env,
        )
    ]
    urls = {"direct": f"http://127.0.0.1:{up_port}"}
    proxies = (("bare", bare_port, bare_dir, "bench.bare"), ("guard", guard_port, index_dir, "guard"))
    for label, port, directory, module in proxies:
        genv = {
            **os.environ,
            "GUARD_UPSTREAM": urls["direct"],
            "GUARD_PORT": str(port),
            "GUARD_INDEX_DIR": str(directory),
            "GUARD_ADMIN_TOKEN": TOKEN,
            "GUARD_LOG_LEVEL": "WARNING",
            "GUARD_AUDIT_LOG": str(log_dir / f"{label}-audit.jsonl"),
            # e5 embeds every chunk it holds no vector for when the guard starts (~50 ms each here: 14 hours at
            # 1e6); this bench's prompts are English, which never reach it (the peer comparison does the same)
            "GUARD_MULTILINGUAL": os.environ.get("GUARD_MULTILINGUAL", "off"),
        }
        if policy_fields and label == "guard":  # e.g. "speculative,stream_upstream": set true in the default policy
            fields = dict.fromkeys(policy_fields.split(","), True)
            genv["GUARD_POLICY_FILE"] = str(policies(log_dir, None, **fields))
        log = (log_dir / f"{label}.log").open("wb")
        command = [python, "-m", module, *(["serve"] if module == "guard" else [])]
        procs.append(subprocess.Popen(command, cwd=REPO_ROOT, env=genv, stdout=log, stderr=log))
        urls[label] = f"http://127.0.0.1:{port}"
    wait_ready(urls["direct"] + "/", procs[0])
    wait_ready(urls["bare"] + "/healthz", procs[1])
    wait_ready(urls["guard"] + "/healthz", procs[2], timeout_s=1800)
    return procs, urls


async def measure_size(n: int, corpus: Corpus, args: argparse.Namespace, emb: Embedder) -> dict[str, Any]:
    index_dir = WORK / f"index-{n}"
    started = time.perf_counter()
    build_index(index_dir, n, corpus, emb.dim)
    print(f"\n== {n:,} synthetic chunks (registry ready in {time.perf_counter() - started:.0f} s)", flush=True)
    # the planted real entries are added through the API below; start from the synthetic ones only
    with sqlite3.connect(index_dir / REGISTRY_FILE) as db:
        db.execute("DELETE FROM chunks WHERE entry_id NOT LIKE 'fg-synth%'")
        db.execute("DELETE FROM entries WHERE id NOT LIKE 'fg-synth%'")
    bare_dir = WORK / "index-bare"
    log_dir = WORK / f"logs-{n}"
    log_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    procs, urls = start_stack(index_dir, bare_dir, log_dir, args.policy_fields)
    load_s = time.perf_counter() - started
    result: dict[str, Any] = {"n": n, "guard_start_s": load_s}
    try:
        targets = [Target(k, v) for k, v in urls.items()]
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        for t in targets:
            t.client = httpx.AsyncClient(base_url=t.url, timeout=120, limits=limits)
        admin = httpx.AsyncClient(base_url=urls["guard"], headers={"authorization": f"Bearer {TOKEN}"}, timeout=300)
        # add the 20 real authors; time each add and check the very next request is refused
        add_ms, enforced = [], 0
        for subject, answers in corpus.forget:
            t0 = time.perf_counter()
            (await admin.post("/admin/forget", json={"subject": subject, "documents": answers})).raise_for_status()
            add_ms.append((time.perf_counter() - t0) * 1000)
            _, action = await ask(targets[2], [{"role": "user", "content": f"What do you know about {subject}?"}])
            enforced += action == "refuse"
        result["add_ms_p50"] = statistics.median(add_ms)
        result["enforced_next"] = f"{enforced}/{len(add_ms)}"
        print(
            f"adds: p50 {result['add_ms_p50']:.0f} ms (POST → 201, enforced when acknowledged); "
            f"next request refused: {result['enforced_next']}",
            flush=True,
        )
        rng = random.Random(0)
        rows, actions_seen = [], {}
        for long in [kind == "2k" for kind in args.kinds.split(",")]:
            for depth in (1, 8):
                count = args.requests if not long else max(40, args.requests // 5)
                label = f"{'2k' if long else 'short'} prompt, {depth} turn{'s' if depth > 1 else ''}"
                samples, actions = await sequential(targets, conversation(corpus, rng, long, depth, count + 5))
                rows.append(row(label, samples))
                actions_seen[label] = actions
                print("  " + " | ".join(rows[-1]) + f"  guard actions {actions}", flush=True)
        conc: dict[str, list[float]] = {}
        reqs = conversation(corpus, rng, False, 1, args.requests)
        for t in targets:
            await concurrent(t, reqs[:16], 8)  # warm-up
            conc[t.name], _ = await concurrent(t, reqs, 8)
        rows.append(row("short, 1 turn, 8 clients", conc))
        print("  " + " | ".join(rows[-1]), flush=True)
        result["latency_rows"] = rows
        result["actions"] = actions_seen
        # streaming
        ttft: dict[str, list[float]] = {t.name: [] for t in targets}
        rate: dict[str, list[float]] = {t.name: [] for t in targets}
        for messages in conversation(corpus, rng, False, 1, args.streams):
            for t in random.sample(targets, len(targets)):
                a, b = await stream(t, messages)
                ttft[t.name].append(a)
                rate[t.name].append(b)
        result["stream"] = {k: (statistics.median(ttft[k]), statistics.median(rate[k])) for k in ttft}
        print(f"  streaming: {result['stream']}", flush=True)
        # sustained throughput: bare vs guard, 8 closed-loop clients
        rps = {}
        for t in targets:
            _, rps[t.name] = await concurrent(t, reqs, 8, seconds=args.seconds)
        result["rps"] = rps
        print(f"  sustained req/s: {rps}", flush=True)
        result["guard_rss_mb"] = rss_mb(procs[2].pid)
        result["bare_rss_mb"] = rss_mb(procs[1].pid)
        for c in [*(t.client for t in targets), admin]:
            await c.aclose()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(60)
    result.update(await index_figures(index_dir, corpus, emb))
    return result


async def index_figures(index_dir: Path, corpus: Corpus, emb: Embedder) -> dict[str, Any]:
    """The index in this process: load, search p50, recall of the planted entries, add → enforced."""
    import faiss

    faiss.omp_set_num_threads(1)
    before = rss_mb(os.getpid())
    started = time.perf_counter()
    registry = SqliteRegistry(index_dir / REGISTRY_FILE, emb.dim)
    index = await ForgetIndex.open(registry, emb, ngram_words=12, typo_min_chars=6)
    load_s = time.perf_counter() - started
    grown = rss_mb(os.getpid()) - before
    queries = emb.embed(corpus.forget_questions)
    times = []
    for q in queries:
        t0 = time.perf_counter()
        index.memory.search(q[None, :])
        times.append((time.perf_counter() - t0) * 1000)
    found = index.memory.search(queries)
    # exact best score per query, by brute force over every stored vector
    exact = np.full(len(queries), -1.0, dtype=np.float32)
    async with registry.snapshot() as snap:
        async for batch in snap.chunks(text=False, batch=50_000):
            vectors = np.stack([c.vector for c in batch])
            exact = np.maximum(exact, (queries @ vectors.T).max(axis=1))
    ours = np.array([max(f.values(), default=-1.0) for f in found], dtype=np.float32)
    relevant = exact >= 0.6
    recall = float(np.mean(ours[relevant] >= exact[relevant] - 0.01)) if relevant.any() else float("nan")

    # add → enforced in-process: from the call to a search that finds the new entry
    doc = "Quentin Zarvell-Osk was born in Ilmarsk in 1961 and wrote the Brass Lantern trilogy."
    vec = emb.embed(["Where was Quentin Zarvell-Osk born?"])
    t0 = time.perf_counter()
    entry = await index.add("Quentin Zarvell-Osk", [], [doc], None)
    hit = await index.run(index.view.search, vec)
    add_ms = (time.perf_counter() - t0) * 1000
    # found by the vector search alone (the name matcher finds it in any case: "enforced_next" above)
    found_score = hit[0].get(entry.id, 0.0)
    await index.remove(entry.id)
    await index.aclose()
    return {
        "kind": index.memory.vectors.kind,
        "load_s": load_s,
        "index_rss_mb": grown,
        "search_p50_ms": statistics.median(times),
        "search_p99_ms": pct(times, 0.99),
        "recall": recall,
        "relevant": int(relevant.sum()),
        "add_ms": add_ms,
        "add_found_score": found_score,
    }


# -- report -----------------------------------------------------------------------------------------------


def machine() -> str:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)) / 2**20  # type: ignore[union-attr]
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, {python}"


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"`{' '.join(['.venv/bin/python', '-m', 'bench.overhead', *sys.argv[1:]])}` — {time.strftime('%Y-%m-%d')}, "
        f"{machine()}, embedder {args.embedder}.",
        "",
        "Latency in ms. direct = the fake upstream itself; bare/guard = added over direct at the same percentile.",
        "",
    ]
    for r in results:
        lines.append(f"### {r['n']:,} synthetic chunks (+ 20 TOFU authors), vector index: {r['kind']}")
        lines.append("")
        lines.append("| requests | direct p50 | p95 | p99 | bare +p50 | +p95 | +p99 | guard +p50 | +p95 | +p99 |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        lines.extend("| " + " | ".join(cells) + " |" for cells in r["latency_rows"])
        lines.append("")
        s = r["stream"]
        lines.append(
            f"- streaming ({STREAM_TOKENS} tokens, one per {TOKEN_MS:g} ms): time to first token p50 direct "
            f"{s['direct'][0]:.1f} ms, bare {s['bare'][0]:.1f}, guard {s['guard'][0]:.1f} ms; tokens/s direct "
            f"{s['direct'][1]:.0f}, bare {s['bare'][1]:.0f}, guard {s['guard'][1]:.0f} "
            f"(guard/direct {s['guard'][1] / s['direct'][1]:.2f})"
        )
        rps = r["rps"]
        lines.append(
            f"- sustained, 8 clients: direct {rps['direct']:.0f} req/s, bare {rps['bare']:.0f}, guard "
            f"{rps['guard']:.0f} (guard/bare {rps['guard'] / rps['bare']:.2f})"
        )
        lines.append(
            f"- index: search p50 {r['search_p50_ms']:.3f} ms (p99 {r['search_p99_ms']:.3f}) for one query; "
            f"recall of the real forget entries {r['recall']:.3f} over {r['relevant']} questions scoring ≥ 0.6; "
            f"load {r['load_s']:.0f} s; guard start {r['guard_start_s']:.0f} s; add → searched "
            f"{r['add_ms']:.0f} ms (the new entry's vector score {r['add_found_score']:.2f}; 0 = not in the top 8)"
        )
        lines.append(
            f"- memory: guard RSS {r['guard_rss_mb']:.0f} MB (bare proxy {r['bare_rss_mb']:.0f} MB); "
            f"in-process index structures +{r['index_rss_mb']:.0f} MB"
        )
        lines.append(
            f"- adds: POST → 201 p50 {r['add_ms_p50']:.0f} ms, enforced when acknowledged; the next request was "
            f"refused {r['enforced_next']}"
        )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--requests", type=int, default=300, help="non-streaming requests per scenario and target")
    parser.add_argument("--streams", type=int, default=30, help="streamed requests per target")
    parser.add_argument("--seconds", type=float, default=15.0, help="duration of each sustained-throughput run")
    parser.add_argument("--embedder", default=os.environ.get("GUARD_EMBEDDER", "minilm"))
    parser.add_argument("--kinds", default="short,2k", help="prompts measured: short, 2k (a 2k-token one) or both")
    parser.add_argument("--out", type=Path, help="also write the tables, with the command and machine, to this file")
    parser.add_argument("--index-only", action="store_true", help="only the in-process index figures (prints them)")
    parser.add_argument("--tofu", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "tofu")
    parser.add_argument(
        "--policy-fields",
        default="",
        help="policy fields set true in the guard's default policy, e.g. speculative,stream_upstream",
    )
    args = parser.parse_args()
    os.environ["GUARD_EMBEDDER"] = args.embedder
    emb = make_embedder(args.embedder)
    corpus = load_corpus(Tofu(args.tofu), emb)
    if args.index_only:
        for n in (int(float(s)) for s in args.sizes.split(",")):
            build_index(WORK / f"index-{n}", n, corpus, emb.dim)
            print(n, asyncio.run(index_figures(WORK / f"index-{n}", corpus, emb)), flush=True)
        return
    results = []
    for n in (int(float(s)) for s in args.sizes.split(",")):
        results.append(asyncio.run(measure_size(n, corpus, args, emb)))
    text = report(results, args)
    print("\n" + text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
