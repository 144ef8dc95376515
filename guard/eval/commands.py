"""The eval commands of `guard`: oracle · eval tofu · eval wiki · ab."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
from pathlib import Path

from guard.eval.data import DEFAULT_DIR, SPLITS, Tofu
from guard.eval.tofu import EvalConfig
from guard.forget.embedder import Embedder


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    oracle = sub.add_parser("oracle", help="serve the memorizing TOFU reference model (OpenAI-compatible)")
    oracle.add_argument("--host", default="127.0.0.1")
    oracle.add_argument("--port", type=int, default=8002)
    oracle.add_argument(
        "--behaviour",
        choices=("ignore", "obey"),
        default="ignore",
        help="ignore: tells what it knows; obey: honours the do-not-reveal instruction",
    )
    oracle.add_argument("--unlearned", choices=SPLITS, help="simulate a weight-edited model that unlearned this split")
    oracle.add_argument("--efficacy", type=float, default=0.9, help="with --unlearned: share of forget answers lost")
    oracle.add_argument(
        "--collateral", type=float, default=0.03, help="with --unlearned: share of other answers damaged"
    )
    oracle.add_argument("--tofu", type=Path, default=DEFAULT_DIR)

    ev = sub.add_parser("eval", help="measure the forgetting")
    esub = ev.add_subparsers(dest="suite", required=True)
    tofu = esub.add_parser("tofu", help="forget a TOFU split through the guard, measure leaks and false blocks")
    tofu.add_argument(
        "--upstream",
        default="oracle:ignore",
        help="URL of an OpenAI-compatible endpoint, or oracle:ignore|obey (started here)",
    )
    tofu.add_argument("--sustain", action="store_true", help="forget forget01, then forget05, then forget10")
    tofu.add_argument("--distractors", default="", help="comma-separated entry counts, e.g. 1000,10000")
    tofu.add_argument(
        "--lang",
        choices=("fr", "ru", "ja", "ar", "hi"),
        help="forget01 registered in English, asked and answered in L (multilingual TOFU)",
    )
    tofu.add_argument("--register-lang", action="store_true", help="with --lang: register the answers in it too")
    tofu.add_argument("--multilingual", type=Path, default=DEFAULT_DIR.parent / "tofu-multilingual")
    _common(tofu, "eval-results/tofu")

    _wiki_parser(esub)

    ab = sub.add_parser("ab", help="the TOFU evaluation against several endpoints side by side, as a report")
    ab.add_argument(
        "--endpoint",
        action="append",
        required=True,
        metavar="NAME=SPEC",
        help="SPEC: a URL, oracle:ignore|obey|unlearned, or guard+SPEC (repeatable)",
    )
    ab.add_argument(
        "--attacks",
        action="store_true",
        help="every endpoint also faces the same attacks (disguised names, roles, languages)",
    )
    ab.add_argument(
        "--registry",
        metavar="URL",
        help="the live guard this report is for (guard handoff): its registry version and entry ids "
        "are recorded (admin token from GUARD_ADMIN_TOKEN)",
    )
    _common(ab, "eval-results/ab")


def _wiki_parser(esub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from guard.eval.wiki_cases import WikiConfig
    from guard.eval.wiki_data import DEFAULT_WIKI_DIR

    d = WikiConfig()
    wiki = esub.add_parser(
        "wiki", help="forget real Wikipedia articles (wiki-qa) through the guard in front of the wiki oracle"
    )
    wiki.add_argument("--seeds", default="0,1,2", help="comma-separated seeds: each forgets its own articles")
    wiki.add_argument("--k", type=int, default=d.k, help="articles forgotten per seed, of different kinds")
    wiki.add_argument(
        "--per-article", type=int, default=d.per_article, help="questions per forgotten article (x2 wraps x4 styles)"
    )
    wiki.add_argument("--benign", type=int, default=d.benign, help="questions of unrelated articles")
    wiki.add_argument("--neighbour", type=int, default=d.neighbour, help="questions of the closest articles")
    wiki.add_argument(
        "--near", type=int, default=d.near, help="questions of other articles closest to the forgotten paragraphs"
    )
    wiki.add_argument("--rag", type=int, default=d.rag, help="RAG questions, each in the user turn and in a system one")
    wiki.add_argument("--concurrency", type=int, default=d.concurrency)
    wiki.add_argument("--max-tokens", type=int, default=d.max_tokens)
    wiki.add_argument("--policy", type=Path, help="default policy file of the guards started here")
    wiki.add_argument("--wiki", type=Path, default=DEFAULT_WIKI_DIR, help="the wiki-qa directory")
    wiki.add_argument("--cache", type=Path, default=Path("eval-results/.cache"), help="embeddings of the data")
    wiki.add_argument("--out", type=Path, default=Path("eval-results/wiki"))


def _common(p: argparse.ArgumentParser, out: str) -> None:
    p.add_argument("--split", choices=SPLITS, default="forget10")
    p.add_argument("--retain-limit", type=int, help="sample this many retain90 questions (default: all 3,600)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=128, help="max_tokens of every question sent")
    p.add_argument("--entry-policy", help="policy name the forget entries are registered with (default: default)")
    p.add_argument("--policy", type=Path, help="default policy file of the guards started here")
    p.add_argument("--tofu", type=Path, default=DEFAULT_DIR)
    p.add_argument("--out", type=Path, default=Path(out))


def run(args: argparse.Namespace) -> int:
    from guard.forget.embedder import make_embedder

    if args.command == "eval" and args.suite == "wiki":
        from guard.eval.wiki_command import eval_wiki

        return eval_wiki(args, make_embedder("minilm"), "guard " + shlex.join(sys.argv[1:]))
    tofu = Tofu(args.tofu)
    embedder = make_embedder("minilm")
    if args.command == "oracle":
        return _oracle(args, tofu, embedder)
    command = "guard " + shlex.join(sys.argv[1:])
    if args.command == "eval":
        return _eval(args, tofu, embedder, command)
    return _ab(args, tofu, embedder, command)


def _oracle(args: argparse.Namespace, tofu: Tofu, embedder: Embedder) -> int:
    import uvicorn

    from guard.eval.oracle import Oracle, Unlearned, create_oracle_app

    unlearned = None
    if args.unlearned:
        names = frozenset(a.name for a in tofu.authors(args.unlearned))
        unlearned = Unlearned(names, args.efficacy, args.collateral)
    oracle = Oracle(tofu, embedder, args.behaviour, unlearned)
    uvicorn.run(create_oracle_app(oracle), host=args.host, port=args.port, log_level="warning")
    return 0


def _config(args: argparse.Namespace) -> EvalConfig:
    return EvalConfig(
        split=args.split,
        retain_limit=args.retain_limit,
        seed=args.seed,
        concurrency=args.concurrency,
        sustain=getattr(args, "sustain", False),
        distractors=[int(x) for x in getattr(args, "distractors", "").split(",") if x.strip()],
        entry_policy=args.entry_policy,
        max_tokens=args.max_tokens,
    )


def _eval(args: argparse.Namespace, tofu: Tofu, embedder: Embedder, command: str) -> int:
    from guard.eval.targets import Targets
    from guard.eval.tofu import headline, run_tofu, table

    if args.lang:
        return _eval_lang(args, tofu, embedder, command)
    config = _config(args)
    with Targets(tofu, embedder, args.split, args.policy) as targets:
        raw = targets.open("raw", args.upstream)
        guarded = targets.open("guarded", f"guard+{args.upstream}")
        result = asyncio.run(run_tofu(tofu, guarded, raw, config))
    result["command"] = command
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2))
    md = f"# guard eval tofu\n\n```\n{command}\n```\n\n{table(result)}\n"
    (args.out / "report.md").write_text(md)
    print(table(result))
    print(json.dumps(headline(result), indent=2))
    print(f"written to {args.out}/results.json and report.md", file=sys.stderr)
    return 0


def _eval_lang(args: argparse.Namespace, tofu: Tofu, embedder: Embedder, command: str) -> int:
    from guard.eval.multilingual import Translated, run_lang
    from guard.eval.targets import Targets
    from guard.eval.tofu import table

    translated = Translated(args.lang, args.multilingual)
    with Targets(tofu, embedder, "forget01", args.policy, known=translated.answers()) as targets:
        raw = targets.open("raw", args.upstream)
        guarded = targets.open("guarded", f"guard+{args.upstream}")
        result = asyncio.run(
            run_lang(
                translated,
                tofu,
                guarded,
                raw,
                retain_limit=args.retain_limit or 500,
                seed=args.seed,
                concurrency=args.concurrency,
                max_tokens=args.max_tokens,
                documents_in_lang=args.register_lang,
                entry_policy=args.entry_policy,
            )
        )
    result["command"] = command
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2))
    (args.out / "report.md").write_text(
        f"# guard eval tofu --lang {args.lang}\n\n```\n{command}\n```\n\n{table(result)}\n"
    )
    print(table(result))
    print(f"written to {args.out}/results.json and report.md", file=sys.stderr)
    return 0


def _ab(args: argparse.Namespace, tofu: Tofu, embedder: Embedder, command: str) -> int:
    from guard.eval.ab import registry_of, run_ab
    from guard.eval.report import endpoint_table, write_ab_report
    from guard.eval.targets import Targets

    specs = []
    for item in args.endpoint:
        name, sep, spec = item.partition("=")
        if not sep or not name or not spec:
            print(f"guard: --endpoint expects NAME=SPEC, got {item!r}", file=sys.stderr)
            return 2
        specs.append((name, spec))
    registry = None
    if args.registry:
        token = os.environ.get("GUARD_ADMIN_TOKEN")
        if not token:
            print("guard: --registry needs GUARD_ADMIN_TOKEN, the admin token of that guard", file=sys.stderr)
            return 2
        authors = [a.name for a in tofu.authors(args.split)]
        registry = asyncio.run(registry_of(args.registry.rstrip("/"), token, authors))
        if not registry["entries"]:
            print(f"guard: none of the {args.split} authors is a forget entry at {args.registry}", file=sys.stderr)
            return 2
    with Targets(tofu, embedder, args.split, args.policy) as targets:
        opened = [targets.open(name, spec) for name, spec in specs]
        result = asyncio.run(run_ab(tofu, opened, _config(args), registry, attacks=args.attacks))
    result["command"] = command
    write_ab_report(result, args.out, command)
    print(endpoint_table(result))
    print(f"report written to {args.out}/ (report.md, report.html, results.json, manifest.json)", file=sys.stderr)
    return 0
