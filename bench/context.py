"""Long prompts and repeated context (issue 15, item 3), side by side in one run: the bare proxy and the guard
(forget10 registered), in front of one fast fake upstream.

    .venv/bin/python -m bench.context [--prompts 30] [--tokens 2000]

Each prompt is a ~2k-token context (TOFU retain90 answers of authors not in forget10, as a RAG passage in a system
message) and a question. It is sent once ("first"), then again with another question after it ("seen": the same
context, as a chat or a RAG deployment re-sends it). Reported: latency p50/p95 and what the guard adds over the
bare proxy, first and seen.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from bench.procs import register_forget10, start_fake_upstream, start_guard, stop
from bench.speculative import policies
from guard.eval.data import DEFAULT_DIR, Tofu


def contexts(tofu: Tofu, n: int, tokens: int) -> list[str]:
    answers = [r["answer"] for a in tofu.authors("retain90") for r in a.rows]
    out, at = [], 0
    for _ in range(n):
        words: list[str] = []
        while len(words) < tokens * 3 // 4:  # ~0.75 words a token
            words += answers[at % len(answers)].split()
            at += 1
        out.append(" ".join(words))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=30)
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--tofu", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args()
    tofu = Tofu(args.tofu)
    tmp = Path(tempfile.mkdtemp())
    procs: list[subprocess.Popen[bytes]] = []
    try:
        proc, upstream = start_fake_upstream()
        procs.append(proc)
        urls: dict[str, str] = {}
        for label, extra in (("bare proxy", {"GUARD_CHECKS": "false"}),
                             ("guard", {"GUARD_POLICY_FILE": str(policies(tmp, False))})):  # fmt: skip
            extra |= {"GUARD_UPSTREAM": upstream, "GUARD_INDEX_DIR": str(tmp / f"index-{len(urls)}")}
            proc, urls[label] = start_guard(extra, tmp / f"{len(urls)}.log")
            procs.append(proc)
        register_forget10(urls["guard"], tofu)
        ms: dict[tuple[str, str], list[float]] = {(k, s): [] for k in urls for s in ("first", "seen")}
        blocked = dict.fromkeys(urls, 0)
        with httpx.Client(timeout=120) as client:
            for i, context in enumerate(contexts(tofu, args.prompts + 2, args.tokens)):
                for label, url in urls.items():
                    for seen, question in (("first", "Summarise the passage."), ("seen", "Who is it about?")):
                        body = {"model": "m", "messages": [
                            {"role": "system", "content": f"Answer from this passage only.\n\n{context}"},
                            {"role": "user", "content": f"{question} ({i})"}]}  # fmt: skip
                        started = time.perf_counter()
                        r = client.post(f"{url}/v1/chat/completions", json=body)
                        elapsed = (time.perf_counter() - started) * 1000
                        assert r.status_code == 200, r.text
                        blocked[label] += r.headers.get("x-guard-action", "allow") != "allow"
                        if i >= 2:  # warm-up
                            ms[(label, seen)].append(elapsed)
        print(f"{args.prompts} prompts of ~{args.tokens} tokens (a system passage and a question), each sent first "
              "and then again with another question; forget10 registered")  # fmt: skip
        print("\n| target | context | p50 ms | p95 ms | guard added p50 over bare |")
        print("|---|---|---|---|---|")
        for seen in ("first", "seen"):
            bare = statistics.median(ms[("bare proxy", seen)])
            for label in urls:
                values = ms[(label, seen)]
                p95 = statistics.quantiles(values, n=20)[18]
                print(f"| {label} | {seen} | {statistics.median(values):.1f} | {p95:.1f} | "
                      f"{statistics.median(values) - bare:+.1f} |")  # fmt: skip
        print(f"\nblocked (none should be): {blocked}")
    finally:
        stop(procs)


if __name__ == "__main__":
    main()
