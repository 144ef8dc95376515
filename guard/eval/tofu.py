"""`guard eval tofu`: forget a TOFU split through the admin API, then measure what leaks and what is blocked.

Stages, each measured on the forget sets of the authors forgotten so far and on the control sets:
- the split itself (forget01, forget05 or forget10);
- with `sustain`: forget01, then forget05, then forget10 added in sequence (requests arriving one after another);
- with `distractors`: N unrelated synthetic entries added (cumulatively), to see false blocks grow with the index.
The control sets also go to the raw upstream, for the answer-quality baseline.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

import httpx

from guard.eval.data import Author, Question, Tofu, control_questions, forget_questions
from guard.eval.runner import Record, ask, register, summarize
from guard.eval.targets import Target

CONTROL_SETS = ("retain", "real_authors", "world_facts")
FORGET_SETS = ("forget", "paraphrased", "perturbed")


@dataclass
class EvalConfig:
    split: str = "forget10"
    retain_limit: int | None = None
    seed: int = 0
    concurrency: int = 4
    sustain: bool = False
    distractors: list[int] = field(default_factory=list)
    entry_policy: str | None = None
    max_tokens: int = 128


async def run_tofu(tofu: Tofu, guarded: Target, raw: Target, config: EvalConfig) -> dict[str, Any]:
    authors = tofu.authors(config.split)
    controls = control_questions(tofu, config.retain_limit, config.seed)
    baseline = summarize(
        await ask(raw, controls, concurrency=config.concurrency, max_tokens=config.max_tokens, label="raw upstream")
    )
    stages: list[dict[str, Any]] = []
    forgotten: list[Author] = []

    steps = (
        [s for s in ("forget01", "forget05", "forget10") if _size(s) <= _size(config.split)] if config.sustain else []
    )
    for step in steps or [config.split]:
        new = [a for a in tofu.authors(step) if a.name not in {f.name for f in forgotten}]
        await register(guarded, new, config.entry_policy)
        forgotten.extend(new)
        stages.append(await _measure(guarded, step, forgotten, controls, config, entries=len(forgotten)))

    entries = len(forgotten)
    for target_count in sorted(config.distractors):
        entries += await add_distractors(guarded, target_count - (entries - len(forgotten)), config.seed + entries)
        stages.append(await _measure(guarded, f"+{target_count} distractors", forgotten, controls, config, entries))

    return {
        "config": {**config.__dict__, "authors": [a.name for a in authors]},
        "target": {"guarded": guarded.url, "raw": raw.url, "model": raw.model},
        "baseline": baseline,
        "stages": stages,
    }


async def _measure(
    target: Target, name: str, forgotten: list[Author], controls: list[Question], config: EvalConfig, entries: int
) -> dict[str, Any]:
    questions = forget_questions(forgotten) + controls
    records: list[Record] = await ask(
        target, questions, concurrency=config.concurrency, max_tokens=config.max_tokens, label=name
    )
    return {"stage": name, "entries": entries, "sets": summarize(records)}


def _size(split: str) -> int:
    return int(split.removeprefix("forget"))


# -- distractors ------------------------------------------------------------------------------------------------

_SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ra",
    "ve",
    "tu",
    "sen",
    "dor",
    "ali",
    "bel",
    "cor",
    "dan",
    "el",
    "fen",
    "gar",
    "hal",
    "ion",
    "jor",
    "kel",
    "lin",
    "mar",
    "nor",
    "os",
    "pel",
    "quin",
]
_CITIES = [
    "Lisbon, Portugal",
    "Nairobi, Kenya",
    "Hanoi, Vietnam",
    "Quito, Ecuador",
    "Tbilisi, Georgia",
    "Perth, Australia",
    "Bergen, Norway",
    "Accra, Ghana",
    "Cusco, Peru",
    "Kraków, Poland",
]
_GENRES = [
    "gardening",
    "maritime history",
    "culinary travel",
    "chess strategy",
    "urban planning",
    "beekeeping",
    "astronomy for children",
    "railway engineering",
    "textile design",
    "jazz criticism",
]
_OBJECTS = ["Lantern", "Harbor", "Orchard", "Compass", "Meridian", "Quarry", "Loom", "Beacon", "Delta", "Atlas"]


def distractor(rng: random.Random) -> dict[str, Any]:
    """An unrelated synthetic forget entry: a made-up person with three facts."""

    def word() -> str:
        return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()

    name = f"{word()} {word()}"
    city, genre = rng.choice(_CITIES), rng.choice(_GENRES)
    title = f"The {rng.choice(_OBJECTS)} of {word()}"
    return {
        "subject": name,
        "documents": [
            f"{name} was born in {city} in {rng.randint(1930, 2000)}.",
            f"{name} writes about {genre} and is best known for '{title}'.",
            f"{name} received the {word()} Prize in {rng.randint(1960, 2020)}.",
        ],
    }


async def add_distractors(target: Target, count: int, seed: int, concurrency: int = 4) -> int:
    if count <= 0:
        return 0
    assert target.admin_token is not None
    rng = random.Random(seed)
    entries = [distractor(rng) for _ in range(count)]
    semaphore = asyncio.Semaphore(concurrency)
    headers = {"authorization": f"Bearer {target.admin_token}"}
    async with httpx.AsyncClient(base_url=target.url, headers=headers, timeout=300) as client:

        async def one(body: dict[str, Any]) -> None:
            async with semaphore:
                (await client.post("/admin/forget", json=body)).raise_for_status()

        await asyncio.gather(*(one(e) for e in entries))
    return count


def table(result: dict[str, Any]) -> str:
    """A markdown table of every stage: leak and block rates per set, quality against the raw baseline."""
    lines = [
        "| stage | entries | set | n | leak (key-fact) | leak (ROUGE-L) | blocked | input | output | rewritten "
        "| ROUGE-L recall | raw ROUGE-L recall | overhead p50/p95 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = result["baseline"]
    for stage in result["stages"]:
        for name in (*FORGET_SETS, *CONTROL_SETS):
            s = stage["sets"].get(name)
            if s is None:
                continue
            raw = base.get(name, {}).get("rouge_recall_mean")
            lines.append(
                f"| {stage['stage']} | {stage['entries']} | {name} | {s['n']} | {s['leak_keyfact']:.1%} "
                f"| {s['leak_rouge']:.1%} | {s['blocked']:.1%} | {s['caught_input']:.1%} | {s['caught_output']:.1%} "
                f"| {s['rewritten']:.1%} "
                f"| {s['rouge_recall_mean']:.3f} | {'' if raw is None else f'{raw:.3f}'} "
                f"| {s['overhead_ms_p50'] or 0:.1f} / {s['overhead_ms_p95'] or 0:.1f} |"
            )
    return "\n".join(lines)


def headline(result: dict[str, Any], stage_index: int = 0) -> dict[str, float]:
    """The numbers the targets are stated in (first stage unless told otherwise)."""
    sets = result["stages"][stage_index]["sets"]
    return {
        "leak_forget": sets["forget"]["leak_keyfact"],
        "leak_paraphrased": sets["paraphrased"]["leak_keyfact"],
        "false_block_retain": sets["retain"]["blocked"],
        "false_block_real_authors": sets["real_authors"]["blocked"],
        "false_block_world_facts": sets["world_facts"]["blocked"],
    }
