"""What a change to the checks costs: two guards side by side in one run, the code of a git revision (before)
and this tree (after), each with TOFU forget10's 20 authors registered, in front of one fast fake upstream.

    .venv/bin/python -m bench.cost --before <rev> [--requests 300] [--prompts en|other]

Requests are short plain prompts that touch no entry, sent alternately to both guards (so both share the
machine's state), one at a time. Reported: client-side latency p50/p95 and the guard's own
`x-guard-overhead-ms` p50, the CPU time each guard's process spent per request, and their difference.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from bench.lib.texts import OTHER, PROMPTS
from bench.procs import cpu_seconds, register_forget10, start_fake_upstream, start_guard, stop
from guard.eval.data import DEFAULT_DIR, Tofu
from guard.settings import REPO_ROOT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="the git revision to compare with (e.g. main~3)")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--tofu", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--prompts", choices=("en", "other"), default="en", help="English prompts, or other languages")
    args = parser.parse_args()
    prompts = PROMPTS if args.prompts == "en" else OTHER
    tmp = Path(tempfile.mkdtemp())
    before = tmp / "before"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(before), args.before], cwd=REPO_ROOT, check=True, capture_output=True
    )
    procs: list[subprocess.Popen[bytes]] = []
    try:
        proc, upstream = start_fake_upstream()
        procs.append(proc)
        urls: dict[str, str] = {}
        for label, tree in (("before", before), ("after", REPO_ROOT)):
            env = {"GUARD_UPSTREAM": upstream, "GUARD_INDEX_DIR": str(tmp / f"index-{label}")}
            proc, urls[label] = start_guard(env, tmp / f"{label}.log", tree)
            procs.append(proc)
        adds = {label: register_forget10(url, Tofu(args.tofu)) for label, url in urls.items()}
        latency: dict[str, list[float]] = {k: [] for k in urls}
        overhead: dict[str, list[float]] = {k: [] for k in urls}
        blocked: dict[str, list[str]] = {k: [] for k in urls}
        pids = {"before": procs[1].pid, "after": procs[2].pid}
        cpu: dict[str, float] = dict.fromkeys(urls, 0.0)
        with httpx.Client(timeout=30) as client:
            for i in range(args.requests + 20):
                if i == 20:  # warm-up done
                    cpu_started = {k: cpu_seconds(p) for k, p in pids.items()}
                for label, url in urls.items():
                    prompt = f"{prompts[i % len(prompts)]} ({i})"
                    body = {"model": "m", "messages": [{"role": "user", "content": prompt}]}
                    started = time.perf_counter()
                    r = client.post(f"{url}/v1/chat/completions", json=body)
                    ms = (time.perf_counter() - started) * 1000
                    assert r.status_code == 200, r.text
                    if r.headers["x-guard-action"] != "allow":  # a false block: counted and shown, not hidden
                        blocked[label].append(f"{r.headers['x-guard-action']}: {prompt}")
                    if i >= 20:  # warm-up done
                        latency[label].append(ms)
                        overhead[label].append(float(r.headers["x-guard-overhead-ms"]))
            for label, pid in pids.items():
                cpu[label] = (cpu_seconds(pid) - cpu_started[label]) * 1000 / args.requests
        print(
            f"{args.requests} short plain prompts ({args.prompts}) per guard, alternating; forget10 registered; "
            f"before = {args.before}"
        )
        print("| guard | latency p50 ms | latency p95 ms | x-guard-overhead-ms p50 | CPU ms per request |")
        print("|---|---|---|---|---|")
        for label in urls:
            q = statistics.quantiles(latency[label], n=20)
            print(
                f"| {label} | {statistics.median(latency[label]):.2f} | {q[18]:.2f} | "
                f"{statistics.median(overhead[label]):.2f} | {cpu[label]:.2f} |"
            )
        print("\nadmin adds (forget10's 20 authors, 20 answers each, one at a time): POST -> 201 ms")
        for label in urls:
            print(f"- {label}: p50 {statistics.median(adds[label]):.0f} ms, max {max(adds[label]):.0f} ms")
        for label in urls:
            shown = "; ".join(sorted(set(blocked[label]))[:5])
            print(f"- {label}: {len(blocked[label])} of {args.requests + 20} prompts blocked (none should be) {shown}")
        delta = statistics.median(latency["after"]) - statistics.median(latency["before"])
        print(f"\nadded by the change: {delta:+.2f} ms p50 latency")
    finally:
        stop(procs)
        subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=REPO_ROOT, capture_output=True)


if __name__ == "__main__":
    main()
