"""The attack suite: every class against the guard, streamed and not, with its benign twin.

    .venv/bin/python -m bench.attacks.run [--tofu DIR] [--only CLASS,...] [--seed N] [--out FILE.json]
                                          [--multilingual e5|off]

The guard runs in-process on a real socket with the real embedding models (MiniLM, and e5 for text not in
English, as shipped), forget10's 20 authors registered (name + gold answers, as `guard eval tofu` does), in front
of the obedient memorizing model (bench/attacks/upstream.py). How a case is sent and scored is in
guard/eval/attacks/probe.py (shared with `guard ab --attacks`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.attacks.upstream import obedient
from guard.app import create_app, first_stage
from guard.eval.attacks.cases import Case, build
from guard.eval.attacks.probe import run_case, table
from guard.eval.data import DEFAULT_DIR, Tofu
from guard.forget.embedder import make_embedder
from guard.settings import Settings
from guard.testing.server import BackgroundServer

ADMIN_TOKEN = "attack-suite"


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
    with tempfile.TemporaryDirectory() as tmp, BackgroundServer(obedient(cases).app()) as upstream:
        settings = Settings.load(index_dir=Path(tmp), upstream=upstream.url, admin_token=ADMIN_TOKEN)
        fast = first_stage(settings, embedder.space)  # as shipped (GUARD_FIRST_STAGE=off: the float model alone)
        with BackgroundServer(create_app(settings, embedder=embedder, meaning=meaning, fast=fast)) as guard:
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
