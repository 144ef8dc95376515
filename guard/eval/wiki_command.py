"""`guard eval wiki` on the command line: run the seeds, print the tables, write results.json and report.md."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from guard.eval.wiki import run_wiki
from guard.eval.wiki_cases import WikiConfig, table
from guard.eval.wiki_data import Wiki, choose_articles
from guard.forget.embedder import Embedder


def config_of(args: argparse.Namespace) -> WikiConfig:
    return WikiConfig(
        seeds=tuple(int(s) for s in args.seeds.split(",") if s.strip()),
        k=args.k,
        per_article=args.per_article,
        benign=args.benign,
        neighbour=args.neighbour,
        near=args.near,
        rag=args.rag,
        concurrency=args.concurrency,
        max_tokens=args.max_tokens,
        policy_file=args.policy,
        cache=args.cache,
    )


def report(result: dict[str, Any]) -> str:
    """Markdown: the pooled table, then each seed's forgotten articles, neighbour pairs and table."""
    parts = [table(result["pooled"], f"all seeds ({len(result['seeds'])}), pooled")]
    for s in result["seeds"]:
        gone = ", ".join(f"{a['title']} ({a['kind']})" for a in s["forgotten"])
        pairs = ", ".join(f"{a} → {b}" for a, b in s["neighbours"].items())
        parts.append(f"**seed {s['seed']}**: forgotten {gone}; neighbours {pairs}")
        parts.append(table(s["summary"]))
    return "\n\n".join(parts)


def eval_wiki(args: argparse.Namespace, embedder: Embedder, command: str) -> int:
    config = config_of(args)
    try:
        wiki = Wiki(args.wiki)
    except FileNotFoundError as e:
        print(f"guard: no wiki-qa data: {e}", file=sys.stderr)
        return 2
    try:
        choose_articles(wiki.articles, config.k, 0)  # before any model is loaded or server started
    except ValueError as e:
        print(f"guard: --k: {e}", file=sys.stderr)
        return 2
    result = run_wiki(wiki, embedder, config)
    result["command"] = command
    text = report(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2))
    (args.out / "report.md").write_text(f"# guard eval wiki\n\n```\n{command}\n```\n\n{text}\n")
    print(text)
    print(f"written to {args.out}/results.json and report.md", file=sys.stderr)
    return 0
