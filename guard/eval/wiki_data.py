"""wiki-qa data: 23 Wikipedia articles in the SQuAD v1.1 layout, their kinds, and the choices an evaluation makes
over them (which articles a seed forgets, which are their neighbours, which questions name the subject).

The data (`../shared/data/wiki-qa`, see its README) is SQuAD v1.1's development split, 23 of its 48 articles:
CC BY-SA 4.0, Rajpurkar et al. 2016 and the Wikipedia contributors of these articles.
"""

from __future__ import annotations

import gzip
import itertools
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from guard.settings import REPO_ROOT
from guard.text import STOPWORDS, tokens

DEFAULT_WIKI_DIR = REPO_ROOT.parent / "shared" / "data" / "wiki-qa"
# a sentence ends at . ! ? (a closing quote or bracket may follow) before a space and a capital, digit or quote
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[A-Z0-9\"'(\[])")


@dataclass(frozen=True)
class WikiQuestion:
    id: str
    title: str  # the article's title, underscores kept ("Apollo_program")
    paragraph: int  # index of the paragraph in its article
    question: str
    answers: tuple[str, ...]  # every crowd answer, duplicates removed, in order
    answer_start: int  # of the first answer, in the paragraph


@dataclass(frozen=True)
class Article:
    title: str
    kind: str
    paragraphs: tuple[str, ...]
    questions: tuple[WikiQuestion, ...]

    @property
    def subject(self) -> str:
        """The subject an operator would register: the title with underscores as spaces."""
        return subject_of(self.title)


def subject_of(title: str) -> str:
    return title.replace("_", " ")


class Wiki:
    """The articles of a wiki-qa directory (articles.json.gz, categories.json), in file order."""

    def __init__(self, directory: Path = DEFAULT_WIKI_DIR) -> None:
        with gzip.open(directory / "articles.json.gz", "rt", encoding="utf-8") as f:
            raw = json.load(f)
        kinds: dict[str, str] = json.loads((directory / "categories.json").read_text(encoding="utf-8"))
        self.articles: list[Article] = [_article(a, kinds[a["title"]]) for a in raw["data"]]
        self.by_title = {a.title: a for a in self.articles}

    def questions(self) -> list[WikiQuestion]:
        return [q for a in self.articles for q in a.questions]

    def context(self, q: WikiQuestion) -> str:
        return self.by_title[q.title].paragraphs[q.paragraph]


def _article(raw: dict[str, Any], kind: str) -> Article:
    title = str(raw["title"])
    paragraphs: list[str] = []
    questions: list[WikiQuestion] = []
    for i, p in enumerate(raw["paragraphs"]):
        paragraphs.append(p["context"])
        for qa in p["qas"]:
            answers = tuple(dict.fromkeys(a["text"].strip() for a in qa["answers"] if a["text"].strip()))
            if answers:
                start = int(qa["answers"][0]["answer_start"])
                questions.append(WikiQuestion(qa["id"], title, i, qa["question"].strip(), answers, start))
    return Article(title, kind, tuple(paragraphs), tuple(questions))


def answer_sentence(context: str, start: int, length: int) -> str:
    """The sentence of `context` that holds the answer span [start, start+length), verbatim; the sentences it
    crosses when it crosses a boundary."""
    cuts = [0, *(m.end() for m in _SENTENCE_END.finditer(context)), len(context)]
    spans = [(a, b) for a, b in itertools.pairwise(cuts) if b > a]
    end = start + max(length, 1)
    held = [(a, b) for a, b in spans if a < end and b > start] or spans[-1:]
    return context[held[0][0] : held[-1][1]].strip()


def main_words(subject: str) -> set[str]:
    """The words that name a subject: its content words ("Victoria (Australia)" -> victoria, australia)."""
    return {t for t in tokens(subject) if t.isalpha() and len(t) >= 3 and t not in STOPWORDS}


def names_subject(question: str, subject: str) -> bool:
    """Whether a question names the subject: one of its main words, or a word of the same stem ("Huguenots",
    "Islamist", "Kenyan": a shared prefix that leaves at most three letters of the main word out)."""
    words = main_words(subject)
    for token in tokens(question):
        if len(token) < 4:
            if token in words:
                return True
            continue
        for w in words:
            shared = len(_common_prefix(token, w))
            if shared == len(w) == len(token) or shared >= max(4, len(w) - 3):
                return True
    return False


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def choose_articles(articles: Sequence[Article], k: int, seed: int) -> list[Article]:
    """k articles of k different kinds, chosen by the seed (the kinds first, then one article of each)."""
    by_kind: dict[str, list[Article]] = {}
    for a in sorted(articles, key=lambda a: a.title):
        by_kind.setdefault(a.kind, []).append(a)
    if not 0 < k <= len(by_kind):
        raise ValueError(f"k must be between 1 and {len(by_kind)} (one article per kind), not {k}")
    rng = random.Random(seed)
    kinds = rng.sample(sorted(by_kind), k)
    return [rng.choice(by_kind[kind]) for kind in kinds]


def neighbours(centroids: dict[str, np.ndarray], forgotten: Sequence[str]) -> dict[str, str]:
    """For each forgotten title, the closest other title that is not forgotten (cosine of mean embeddings)."""
    others = sorted(t for t in centroids if t not in set(forgotten))
    if not others:
        return {}
    matrix = np.stack([_unit(centroids[t]) for t in others])
    return {t: others[int(np.argmax(matrix @ _unit(centroids[t])))] for t in forgotten}


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return v / norm if norm else v


def closest_questions(
    questions: Sequence[WikiQuestion], vectors: np.ndarray, paragraphs: np.ndarray, n: int
) -> list[WikiQuestion]:
    """The n questions (rows of `vectors`) most similar to any of the `paragraphs` (unit rows), most similar first."""
    if n <= 0 or not len(questions) or not len(paragraphs):
        return []
    scores = (vectors @ paragraphs.T).max(axis=1)
    order = sorted(range(len(questions)), key=lambda i: (-float(scores[i]), questions[i].id))
    return [questions[i] for i in order[:n]]
