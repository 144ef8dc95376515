"""`guard ab`: the same TOFU evaluation against several endpoints side by side, written as a report folder.

This is how an operator decides when a weight-edited model may take over from the guard: compare, per question
set, what leaks and what is wrongly blocked for the base model raw and guarded, and the edited model raw and guarded.
"""

from __future__ import annotations

from typing import Any

from guard.eval.data import Tofu, control_questions, forget_questions
from guard.eval.runner import ask, register, summarize
from guard.eval.targets import Target
from guard.eval.tofu import EvalConfig


async def run_ab(tofu: Tofu, targets: list[Target], config: EvalConfig) -> dict[str, Any]:
    authors = tofu.authors(config.split)
    questions = forget_questions(authors) + control_questions(tofu, config.retain_limit, config.seed)
    endpoints: list[dict[str, Any]] = []
    for target in targets:
        if target.guarded:
            await register(target, authors, config.entry_policy)
        records = await ask(
            target, questions, concurrency=config.concurrency, max_tokens=config.max_tokens, label=target.name
        )
        endpoints.append({"name": target.name, "guarded": target.guarded, "model": target.model,
                          "sets": summarize(records)})  # fmt: skip
    return {
        "config": {**config.__dict__, "authors": [a.name for a in authors]},
        "endpoints": endpoints,
    }
