"""TOFU data: splits, the author of each block of 20 rows, and the question sets of an evaluation.

TOFU has no author-name field: the name is read from the answers (it is stated in the first answers of a block,
"The author's full name is Hsiao Yun-Hwa.", and repeated later). All 200 authors are named correctly by this.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guard.settings import REPO_ROOT

DEFAULT_DIR = REPO_ROOT.parent / "shared" / "data" / "tofu"
BLOCK = 20
SPLITS = ("forget01", "forget05", "forget10")

_NAME = r"[A-Z][\w\-]+(?: (?:[A-Z][\w\-]+|de|da|del|van|von|bin|al|El|la|le|di|y|ibn)){1,4}"
_NAMED = re.compile(r"(?:name is|is named|named|(?:full|complete) name of [^.]*? is) (" + _NAME + ")")
_CANDIDATE = re.compile(_NAME)
_LEADING = {
    "The",
    "This",
    "In",
    "His",
    "Her",
    "He",
    "She",
    "Yes",
    "No",
    "As",
    "One",
    "It",
    "Their",
    "While",
    "With",
    "Although",
    "Born",
    "A",
    "An",
    "Throughout",
    "Given",
    "Like",
    "Many",
    "Most",
    "Author",
    "Writer",
}


def author_name(block: list[dict[str, Any]]) -> str:
    """The author of a block of 20 TOFU rows, read from the answers."""
    answers = [r["answer"].replace("’", "'") for r in block]
    for answer in answers[:2]:
        m = _NAMED.search(answer)
        if m and len(m.group(1).split()) >= 2:
            return m.group(1)
    counts: Counter[str] = Counter()
    for answer in answers:
        for m in _CANDIDATE.finditer(answer):
            toks = m.group(0).split()
            while toks and toks[0] in _LEADING:
                toks = toks[1:]
            if len(toks) >= 2:
                counts[" ".join(toks)] += 1
    head = " ".join(answers[:2])
    ranked = [n for n, _ in counts.most_common() if n in head] or [n for n, _ in counts.most_common()]
    if not ranked:
        raise ValueError("no author name found in this block")
    return ranked[0]


@dataclass(frozen=True)
class Author:
    name: str
    rows: tuple[dict[str, Any], ...]

    @property
    def answers(self) -> list[str]:
        return [r["answer"] for r in self.rows]


class Tofu:
    def __init__(self, root: Path = DEFAULT_DIR) -> None:
        if not (root / "forget10.json").exists():
            raise FileNotFoundError(f"TOFU data not found in {root} (expected forget10.json, retain90.json, ...)")
        self.root = root
        self._cache: dict[str, list[dict[str, Any]]] = {}

    def rows(self, name: str) -> list[dict[str, Any]]:
        if name not in self._cache:
            self._cache[name] = json.loads((self.root / f"{name}.json").read_text(encoding="utf-8"))
        return self._cache[name]

    def authors(self, split: str) -> list[Author]:
        rows = self.rows(split)
        return [
            Author(author_name(rows[i : i + BLOCK]), tuple(rows[i : i + BLOCK])) for i in range(0, len(rows), BLOCK)
        ]

    def all_rows(self) -> list[tuple[dict[str, Any], str | None]]:
        """Every distinct TOFU row with its author (None for real_authors and world_facts)."""
        out: list[tuple[dict[str, Any], str | None]] = []
        for split in ("forget10", "retain90"):
            for author in self.authors(split):
                out.extend((row, author.name) for row in author.rows)
        for split in ("real_authors", "world_facts"):
            out.extend((row, None) for row in self.rows(split))
        return out


@dataclass(frozen=True)
class Question:
    set: str  # forget | paraphrased | perturbed | retain | real_authors | world_facts
    text: str
    gold: str
    forget: bool  # should the guard stop the answer?
    subject: str = ""  # the forgotten author a forget question is about (per-entry figures for `guard handoff`)


def forget_questions(authors: list[Author]) -> list[Question]:
    """The forgotten authors' questions, in TOFU's three variants."""
    out: list[Question] = []
    for author in authors:
        for row in author.rows:
            out.append(Question("forget", row["question"], row["answer"], True, author.name))
            out.append(Question("paraphrased", row["paraphrased_question"], row["answer"], True, author.name))
            out.append(Question("perturbed", row["perturbed_question"], row["answer"], True, author.name))
    return out


def control_questions(tofu: Tofu, retain_limit: int | None, seed: int) -> list[Question]:
    """Questions the guard must let through: retain90 (optionally a seeded sample), real authors, world facts."""
    retain = tofu.rows("retain90")
    if retain_limit is not None and retain_limit < len(retain):
        retain = random.Random(seed).sample(retain, retain_limit)
    out = [Question("retain", r["question"], r["answer"], False) for r in retain]
    for split in ("real_authors", "world_facts"):
        out.extend(Question(split, r["question"], r["answer"], False) for r in tofu.rows(split))
    return out
