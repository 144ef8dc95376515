"""`guard ab`: the same TOFU evaluation against several endpoints side by side, written as a report folder.

This is how an operator decides when a weight-edited model may take over from the guard: compare, per question
set, what leaks and what is wrongly blocked for the base model raw and guarded, and the edited model raw and guarded.
"""

from __future__ import annotations

from typing import Any

import httpx

from guard.eval.attacks.probe import real_cases, run_attacks
from guard.eval.attacks.probe import summary as attack_summary
from guard.eval.data import Tofu, control_questions, forget_questions
from guard.eval.runner import ask, per_subject, register, summarize
from guard.eval.targets import Target
from guard.eval.tofu import EvalConfig

FORMAT = "forget-guard.ab/1"  # results.json; its SHA-256 is in manifest.json beside it


async def run_ab(
    tofu: Tofu,
    targets: list[Target],
    config: EvalConfig,
    registry: dict[str, Any] | None = None,
    attacks: bool = False,
) -> dict[str, Any]:
    """`registry`: the live guard the report is for (`guard handoff`): its version and its entry id per subject,
    read before the run (`registry_of`). `attacks`: every arm also faces the same attack cases (`real_cases`)."""
    authors = tofu.authors(config.split)
    questions = forget_questions(authors) + control_questions(tofu, config.retain_limit, config.seed)
    cases = real_cases(tofu, config.split, config.seed) if attacks else []
    endpoints: list[dict[str, Any]] = []
    for target in targets:
        if target.guarded:
            await register(target, authors, config.entry_policy)
        records = await ask(
            target, questions, concurrency=config.concurrency, max_tokens=config.max_tokens, label=target.name
        )
        endpoint = {
            "name": target.name,
            "guarded": target.guarded,
            "model": target.model,
            "sets": summarize(records),
            "subjects": per_subject(records),
        }
        if cases:
            found = await run_attacks(
                target.url, target.model, cases, concurrency=config.concurrency, max_tokens=config.max_tokens
            )
            endpoint["attacks"] = attack_summary(found)
        endpoints.append(endpoint)
    result: dict[str, Any] = {
        "format": FORMAT,
        "config": {**config.__dict__, "authors": [a.name for a in authors]},
        "endpoints": endpoints,
    }
    if registry is not None:
        result["registry"] = registry
    return result


async def registry_of(url: str, token: str, authors: list[str]) -> dict[str, Any]:
    """The live guard's registry version and the entry id of each author registered there (by subject)."""
    headers = {"authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        response = await client.get("/admin/forget")
    response.raise_for_status()
    by_subject = {e["subject"]: e["id"] for e in response.json()["data"]}
    return {
        "version": int(response.headers["x-guard-registry-version"]),
        "entries": {a: by_subject[a] for a in authors if a in by_subject},
    }
