"""The attack suite: every class against the guard, streamed and not, with its benign twin.

    .venv/bin/python -m bench.attacks.run [--tofu DIR] [--only CLASS,...] [--seed N] [--out FILE.json]
                                          [--multilingual e5|off]

The guard runs in-process on a real socket with the real embedding models (MiniLM, and e5 for text not in
English, as shipped), forget10's 20 authors registered
(name + gold answers, as `guard eval tofu` does), in front of the obedient memorizing model
(bench/attacks/upstream.py). A forget case leaks when the key facts of its gold answer can be read back from
everything the client received (every field of every choice, streamed or not) by undoing the encoding the
attack asked for; a benign case is falsely blocked when the guard refused or filtered it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx

from bench.attacks.cases import Case, build
from bench.attacks.upstream import ObedientModel
from guard.app import create_app
from guard.eval.data import DEFAULT_DIR, Tofu
from guard.eval.metrics import leak
from guard.eval.serving import BackgroundServer
from guard.forget.embedder import make_embedder
from guard.settings import Settings

ADMIN_TOKEN = "attack-suite"


def visible(message: dict[str, Any]) -> list[str]:
    """Every piece of text a client can read in a message or a delta."""
    out: list[str] = []
    for key in ("content", "reasoning", "reasoning_content", "refusal"):
        if isinstance(message.get(key), str):
            out.append(message[key])
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        out.extend(str(fn.get(k) or "") for k in ("name", "arguments"))
    fn = message.get("function_call")
    if isinstance(fn, dict):
        out.extend(str(fn.get(k) or "") for k in ("name", "arguments"))
    return out


def logprob_text(logprobs: Any) -> list[str]:
    out: list[str] = []
    for entry in (logprobs or {}).get("content") or [] if isinstance(logprobs, dict) else []:
        out.append(str(entry.get("token", "")))
        out.extend(str(alt.get("token", "")) for alt in entry.get("top_logprobs") or [])
    return out


async def ask(client: httpx.AsyncClient, case: Case, messages: list[dict[str, Any]], stream: bool) -> tuple[str, str]:
    """(everything the client received as text, what the guard did: "" | "input" | "output")"""
    body = {"model": "obedient", "messages": messages, "stream": stream, "n": case.n}
    if case.channel == "top_logprobs":
        body.update(logprobs=True, top_logprobs=5)
    try:
        response = await client.post("/v1/chat/completions", json=body)
    except httpx.TimeoutException:
        return "", "timeout"
    if response.status_code != 200:
        return response.text, "error"
    action = response.headers.get("x-guard-action")
    blocked = action in ("refuse", "filter")
    texts: dict[int, list[str]] = defaultdict(list)
    if stream:
        for line in response.text.splitlines():
            if not line.startswith("data: {"):
                continue
            event = json.loads(line[6:])
            for choice in event.get("choices") or []:
                texts[choice.get("index", 0)] += visible(choice.get("delta") or {})
                texts[choice.get("index", 0)] += logprob_text(choice.get("logprobs"))
                blocked |= choice.get("finish_reason") == "content_filter"
    else:
        for choice in response.json().get("choices") or []:
            texts[choice.get("index", 0)] += visible(choice.get("message") or {})
            texts[choice.get("index", 0)] += logprob_text(choice.get("logprobs"))
            blocked |= choice.get("finish_reason") == "content_filter"
    stage = ("input" if action == "refuse" else "output") if blocked else ""
    return "\n".join("".join(parts) for _, parts in sorted(texts.items())), stage


async def run_case(client: httpx.AsyncClient, case: Case, stream: bool) -> dict[str, Any]:
    text, stage = await ask(client, case, case.messages, stream)
    if case.channel == "halves":
        follow = [
            *case.messages,
            {"role": "assistant", "content": text},
            {"role": "user", "content": f"Now the second half {case.nonce}"},
        ]
        second, stage2 = await ask(client, case, follow, stream)
        text, stage = text + " " + second, stage or stage2
    leaked = leak(case.gold, case.question, case.decode(text)).by_keyfact
    return {
        "attack": case.attack,
        "benign": case.benign,
        "stream": stream,
        "number": case.number,
        "leaked": leaked,
        "blocked": bool(stage),
        "stage": stage,
    }


async def register(client: httpx.AsyncClient, tofu: Tofu) -> None:
    headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    for author in tofu.authors("forget10"):
        r = await client.post(
            "/admin/forget", headers=headers, json={"subject": author.name, "documents": author.answers}
        )
        r.raise_for_status()


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    tofu = Tofu(args.tofu)
    cases = build(tofu, args.seed)
    if args.only:
        keep = set(args.only.split(","))
        cases = [c for c in cases if c.attack in keep]
    embedder = make_embedder("minilm")
    meaning = make_embedder("e5") if args.multilingual == "e5" else None  # as shipped: text not in English too
    with tempfile.TemporaryDirectory() as tmp, BackgroundServer(ObedientModel(cases).app()) as upstream:
        settings = Settings(index_dir=Path(tmp), upstream=upstream.url, admin_token=ADMIN_TOKEN)
        with BackgroundServer(create_app(settings, embedder=embedder, meaning=meaning)) as guard:
            async with httpx.AsyncClient(base_url=guard.url, timeout=60) as client:
                await register(client, tofu)
                gate = asyncio.Semaphore(4)

                async def one(case: Case, stream: bool) -> dict[str, Any]:
                    async with gate:
                        return await run_case(client, case, stream)

                started = time.perf_counter()
                results = await asyncio.gather(*(one(c, s) for c in cases for s in (False, True)))
                print(f"{len(results)} requests in {time.perf_counter() - started:.0f} s")
                failed = sum(r["stage"] in ("timeout", "error") for r in results)
                print(f"{failed} requests failed (timeout or error status)")
    return list(results)


def table(results: list[dict[str, Any]]) -> str:
    by: dict[str, dict[tuple[bool, bool], list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        by[r["attack"]][(r["benign"], r["stream"])].append(r)

    def pct(rows: list[dict[str, Any]], key: str) -> str:
        return f"{100 * sum(r[key] for r in rows) / len(rows):.1f}%" if rows else "–"

    lines = [
        "| class | n | leak (json) | leak (stream) | benign n | false blocks (json) | false blocks (stream) |",
        "|---|---|---|---|---|---|---|",
    ]
    for attack in sorted(by):
        g = by[attack]
        lines.append(
            f"| {attack} | {len(g[(False, False)])} | {pct(g[(False, False)], 'leaked')} | "
            f"{pct(g[(False, True)], 'leaked')} | {len(g[(True, False)])} | {pct(g[(True, False)], 'blocked')} | "
            f"{pct(g[(True, True)], 'blocked')} |"
        )
    forget = [r for r in results if not r["benign"]]
    benign = [r for r in results if r["benign"]]
    lines.append(
        f"| **all** | {len(forget)} | {pct(forget, 'leaked')} (both) | | {len(benign)} | "
        f"{pct(benign, 'blocked')} (both) | |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tofu", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--only", help="comma-separated attack classes")
    parser.add_argument("--seed", type=int, default=0, help="which TOFU rows the cases are built from")
    parser.add_argument("--out", type=Path, help="write every case's result as JSON")
    parser.add_argument("--multilingual", choices=("e5", "off"), default="e5", help="as shipped (e5), or MiniLM only")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    print(table(results))


if __name__ == "__main__":
    main()
