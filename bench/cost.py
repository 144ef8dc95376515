"""What a change to the checks costs: two guards side by side in one run, the code of a git revision (before)
and this tree (after), each with TOFU forget10's 20 authors registered, in front of one fast fake upstream.

    .venv/bin/python -m bench.cost --before <rev> [--requests 300] [--prompts en|other]

Requests are short plain prompts that touch no entry, sent alternately to both guards (so both share the
machine's state), one at a time. Reported: client-side latency p50/p95 and the guard's own
`x-guard-overhead-ms` p50, and their difference.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from guard.eval.data import DEFAULT_DIR, Tofu
from guard.eval.serving import free_port
from guard.settings import REPO_ROOT

TOKEN = "cost-bench"
PROMPTS = [
    "What is a good name for a golden retriever?",
    "How do I keep basil alive on a windowsill?",
    "Give me a synonym for quick.",
    "What is the boiling point of water at sea level?",
    "Suggest a title for a talk about databases.",
    "How many legs does a spider have?",
]
OTHER = [  # the same kind of prompt in other languages: these are read by the multilingual model too
    "Quel est un bon nom pour un golden retriever ?",
    "如何在窗台上养活罗勒？",
    "「速い」の類義語を教えてください。",
    "Какова температура кипения воды на уровне моря?",
    "اقترح عنوانا لمحاضرة عن قواعد البيانات.",
    "एक मकड़ी के कितने पैर होते हैं?",
]


def start(tree: Path, upstream: str, index_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "GUARD_UPSTREAM": upstream, "GUARD_PORT": str(port), "GUARD_INDEX_DIR": str(index_dir),
           "GUARD_ADMIN_TOKEN": TOKEN, "GUARD_LOG_LEVEL": "WARNING", "PYTHONPATH": str(tree)}  # fmt: skip
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "guard", "serve"], cwd=tree, env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"guard in {tree} did not start; see {log}")
        time.sleep(0.2)


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
    subprocess.run(["git", "worktree", "add", "--detach", str(before), args.before], cwd=REPO_ROOT, check=True,
                   capture_output=True)  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    try:
        up_port = free_port()
        procs.append(subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory",
                                       "guard.eval.fake_upstream:from_env", "--port", str(up_port),
                                       "--log-level", "warning"], cwd=REPO_ROOT))  # fmt: skip
        upstream = f"http://127.0.0.1:{up_port}"
        urls = {}
        for label, tree in (("before", before), ("after", REPO_ROOT)):
            proc, urls[label] = start(tree, upstream, tmp / f"index-{label}", tmp / f"{label}.log")
            procs.append(proc)
        headers = {"authorization": f"Bearer {TOKEN}"}
        adds: dict[str, list[float]] = {k: [] for k in urls}
        for label, url in urls.items():
            for author in Tofu(args.tofu).authors("forget10"):
                started = time.perf_counter()
                r = httpx.post(f"{url}/admin/forget", headers=headers, json={"subject": author.name,
                               "documents": author.answers}, timeout=60)  # fmt: skip
                r.raise_for_status()
                adds[label].append((time.perf_counter() - started) * 1000)
        latency: dict[str, list[float]] = {k: [] for k in urls}
        overhead: dict[str, list[float]] = {k: [] for k in urls}
        blocked: dict[str, list[str]] = {k: [] for k in urls}
        with httpx.Client(timeout=30) as client:
            for i in range(args.requests + 20):
                for label, url in urls.items():
                    body = {
                        "model": "m",
                        "messages": [{"role": "user", "content": f"{prompts[i % len(prompts)]} ({i})"}],
                    }
                    started = time.perf_counter()
                    r = client.post(f"{url}/v1/chat/completions", json=body)
                    ms = (time.perf_counter() - started) * 1000
                    assert r.status_code == 200, r.text
                    if r.headers["x-guard-action"] != "allow":  # a false block: counted and shown, not hidden
                        blocked[label].append(f"{r.headers['x-guard-action']}: {body['messages'][0]['content']}")
                    if i >= 20:  # warm-up done
                        latency[label].append(ms)
                        overhead[label].append(float(r.headers["x-guard-overhead-ms"]))
        print(
            f"{args.requests} short plain prompts ({args.prompts}) per guard, alternating; forget10 registered; "
            f"before = {args.before}"
        )
        print("| guard | latency p50 ms | latency p95 ms | x-guard-overhead-ms p50 |")
        print("|---|---|---|---|")
        for label in urls:
            q = statistics.quantiles(latency[label], n=20)
            print(f"| {label} | {statistics.median(latency[label]):.2f} | {q[18]:.2f} | "
                  f"{statistics.median(overhead[label]):.2f} |")  # fmt: skip
        print("\nadmin adds (forget10's 20 authors, 20 answers each, one at a time): POST -> 201 ms")
        for label in urls:
            print(f"- {label}: p50 {statistics.median(adds[label]):.0f} ms, max {max(adds[label]):.0f} ms")
        for label in urls:
            shown = "; ".join(sorted(set(blocked[label]))[:5])
            print(f"- {label}: {len(blocked[label])} of {args.requests + 20} prompts blocked (none should be) {shown}")
        delta = statistics.median(latency["after"]) - statistics.median(latency["before"])
        print(f"\nadded by the change: {delta:+.2f} ms p50 latency")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
        subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=REPO_ROOT, capture_output=True)


if __name__ == "__main__":
    main()
