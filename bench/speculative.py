"""Speculative dispatch (policy `speculative`), side by side in one run: the upstream called directly, the bare
proxy (every check off), the guard with the checks before the upstream call, the guard sending upstream at once
while its checks run, and that guard also streaming non-streamed requests from the upstream (policy
`stream_upstream`: the answer's sentences are embedded while it is generated). One fake upstream that answers
after FIRST_MS (a real model's time to first token), then paced at TOKEN_MS a word when given (a non-streamed
answer comes once all of it is generated; every paced answer has `--tokens` words), TOFU forget10's 20 authors
registered in every guard. `--novel` numbers every sentence of the fake's answers (by default they come from
a pool of six, which the embedder's cache soon holds, so the output check is flattered). `--before REV` adds the
speculative guard as it was at a git revision (a worktree).

    .venv/bin/python -m bench.speculative [--requests 200] [--first-ms 100] [--token-ms 15] [--novel] [--before REV]

Requests are short plain prompts that touch no entry (`bench.cost`'s), sent to the four targets in turn, one at a
time, non-streamed and streamed (time to first content). Reported: p50/p95 and what each adds over the direct call.
Then forget10's questions to both guards: how many are refused (speculation must not change that).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from bench.lib.texts import OTHER, PROMPTS
from bench.procs import policies, register_forget10, start_fake_upstream, start_guard, stop
from guard.eval.data import DEFAULT_DIR, Tofu
from guard.settings import REPO_ROOT


def timed(client: httpx.Client, url: str, body: Mapping[str, object], stream: bool) -> tuple[float, str]:
    """(ms to the answer, or to the first content when streamed; the guard's action)"""
    started = time.perf_counter()
    if not stream:
        r = client.post(f"{url}/v1/chat/completions", json=body)
        assert r.status_code == 200, r.text
        return (time.perf_counter() - started) * 1000, r.headers.get("x-guard-action", "allow")
    with client.stream("POST", f"{url}/v1/chat/completions", json={**body, "stream": True}) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        for line in lines:
            if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                ms = (time.perf_counter() - started) * 1000
                break
        else:
            ms = (time.perf_counter() - started) * 1000
        for _ in lines:  # the rest of the stream
            pass
        return ms, r.headers.get("x-guard-action", "allow")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--first-ms", type=float, default=100.0)
    parser.add_argument("--token-ms", type=float, default=0.0, help="pace of the answer's words (0: all at once)")
    parser.add_argument("--tokens", type=int, default=30, help="words in each paced answer")
    parser.add_argument("--novel", action="store_true", help="every sentence of every answer new (numbered)")
    parser.add_argument("--before", help="also the speculative guard at this git revision")
    parser.add_argument("--prompts", choices=("en", "other"), default="en")
    parser.add_argument("--tofu", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args()
    prompts = PROMPTS if args.prompts == "en" else OTHER
    tmp = Path(tempfile.mkdtemp())
    procs: list[subprocess.Popen[bytes]] = []
    before = tmp / "before"
    if args.before:
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(before), args.before],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
        )
    try:
        paced = {"FAKE_TOKEN_MS": str(args.token_ms), "FAKE_TOKENS": str(args.tokens)} if args.token_ms else {}
        novel = {"FAKE_NOVEL": "1"} if args.novel else {}
        proc, upstream = start_fake_upstream({"FAKE_FIRST_MS": str(args.first_ms), **paced, **novel})
        procs.append(proc)
        urls = {"direct": upstream}
        targets = [
            ("bare proxy", {}, REPO_ROOT),
            ("guard", {"GUARD_POLICY_FILE": str(policies(tmp))}, REPO_ROOT),
            ("guard, speculative", {"GUARD_POLICY_FILE": str(policies(tmp, speculative=True))}, REPO_ROOT),
            (
                "guard, speculative, stream_upstream",
                {"GUARD_POLICY_FILE": str(policies(tmp, speculative=True, stream_upstream=True))},
                REPO_ROOT,
            ),
        ]
        if args.before:
            spec = {"GUARD_POLICY_FILE": str(policies(tmp, before / "policies", speculative=True))}
            targets.insert(3, (f"guard, speculative, at {args.before}", spec, before))
        for label, extra, tree in targets:
            extra |= {"GUARD_UPSTREAM": upstream, "GUARD_INDEX_DIR": str(tmp / f"index-{len(urls)}")}
            proc, urls[label] = start_guard(extra, tmp / f"{len(urls)}.log", tree, bare=label == "bare proxy")
            procs.append(proc)
        guards = [k for k in urls if k.startswith("guard")]
        authors = Tofu(args.tofu).authors("forget10")
        for label in guards:
            register_forget10(urls[label], Tofu(args.tofu))
        results: dict[tuple[str, bool], list[float]] = {(k, s): [] for k in urls for s in (False, True)}
        blocked: dict[str, int] = dict.fromkeys(urls, 0)
        rng = random.Random(7)
        with httpx.Client(timeout=60) as client:
            for i in range(args.requests + 10):
                order = list(urls.items())
                rng.shuffle(order)  # no target always gets the same one of the fake's rotating answers
                for stream in (False, True):
                    ask = f"{prompts[i % len(prompts)]} ({i}{'s' if stream else ''})"  # --novel: its own answer
                    body = {"model": "m", "messages": [{"role": "user", "content": ask}]}
                    for label, url in order:
                        ms, action = timed(client, url, body, stream)
                        blocked[label] += action != "allow"
                        if i >= 10:
                            results[(label, stream)].append(ms)
            refused = dict.fromkeys(guards, 0)
            questions = [r["question"] for a in authors for r in a.rows[:5]]  # 100
            for q in questions:
                for label in guards:
                    body = {"model": "m", "messages": [{"role": "user", "content": q}]}
                    refused[label] += timed(client, urls[label], body, False)[1] == "refuse"
        novelty = ", novel sentences" if args.novel else ""
        print(
            f"{args.requests} short plain prompts ({args.prompts}) per target, in turn; upstream answers after "
            f"{args.first_ms:.0f} ms, then a word every {args.token_ms:.0f} ms{novelty}; forget10 registered in "
            "every guard"
        )
        print("\n| target | answer p50 ms | p95 | added p50 | added p95 | first content p50 ms | added p50 | blocked |")
        print("|---|---|---|---|---|---|---|---|")
        base = {s: statistics.median(results[("direct", s)]) for s in (False, True)}
        base95 = statistics.quantiles(results[("direct", False)], n=20)[18]
        for label in urls:
            a, f = results[(label, False)], results[(label, True)]
            p95 = statistics.quantiles(a, n=20)[18]
            print(
                f"| {label} | {statistics.median(a):.2f} | {p95:.2f} | {statistics.median(a) - base[False]:+.2f} | "
                f"{p95 - base95:+.2f} | {statistics.median(f):.2f} | {statistics.median(f) - base[True]:+.2f} | "
                f"{blocked[label]} |"
            )
        print(
            f"\nforget10 questions refused at input (of {len(questions)}): "
            + ", ".join(f"{k} {v}" for k, v in refused.items())
        )
    finally:
        stop(procs)
        if args.before:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=REPO_ROOT, capture_output=True)


if __name__ == "__main__":
    main()
