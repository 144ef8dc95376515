"""`guard eval wiki` end to end on a tiny slice of wiki-qa: the real MiniLM, the wiki oracle and the guard on real
sockets. What the guard must do at the least: stop the forgotten article's recited sentences, let another
article's questions through (answered)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from guard.eval.wiki import run_wiki
from guard.eval.wiki_cases import WikiConfig
from guard.eval.wiki_data import DEFAULT_WIKI_DIR
from guard.forget.embedder import Embedder

pytestmark = pytest.mark.socket  # the oracle and the guard are served on real ports

TITLES = {"Apollo_program": "work-event", "Kenya": "place", "Rhine": "place"}


def _slice(directory: Path) -> Path:
    """Three articles, their first eight paragraphs each, written as a wiki-qa directory."""
    source = DEFAULT_WIKI_DIR / "articles.json.gz"
    if not source.exists():
        pytest.skip(f"no wiki-qa data at {DEFAULT_WIKI_DIR}")
    with gzip.open(source, "rt", encoding="utf-8") as f:
        data = json.load(f)["data"]
    kept = [{**a, "paragraphs": a["paragraphs"][:8]} for a in data if a["title"] in TITLES]
    with gzip.open(directory / "articles.json.gz", "wt", encoding="utf-8") as f:
        json.dump({"version": "slice", "data": kept}, f)
    (directory / "categories.json").write_text(json.dumps(TITLES))
    return directory


def test_a_tiny_wiki_eval_blocks_recited_sentences_and_passes_other_questions(minilm: Embedder, tmp_path: Path) -> None:
    from guard.eval.wiki_data import Wiki

    wiki = Wiki(_slice(tmp_path))
    config = WikiConfig(seeds=(0,), k=1, per_article=3, benign=6, neighbour=3, near=4, rag=3, concurrency=2)
    result = run_wiki(wiki, minilm, config)
    seed = result["seeds"][0]
    (gone,) = (a["title"] for a in seed["forgotten"])
    near = seed["neighbours"][gone]
    assert near in TITLES and near != gone
    cases = seed["cases"]
    recited = [c for c in cases if c["set"] == "forget" and c["style"] == "recite"]
    assert len(recited) == 6 and all(c["title"] == gone for c in recited)
    # the article's own sentence, word for word: the guard must stop every one, streamed or not
    assert all(c["blocked"] and not c["leaked"] for c in recited), [(c["action"], c["stream"]) for c in recited]
    # questions of the third article pass, and are answered (the oracle knows them)
    benign = [c for c in cases if c["set"] == "benign"]
    assert len(benign) == 6 and {c["title"] for c in benign} == set(TITLES) - {gone, near}
    assert all(not c["blocked"] and c["answered"] for c in benign), [c["action"] for c in benign]
    assert all(c["title"] != gone for c in cases if c["set"] != "forget")
    assert len([c for c in cases if c["set"] == "near"]) == 4
    summary = result["pooled"]
    assert summary["forget"]["n"] == 24
    assert summary["forget"]["leak"] + summary["forget"]["blocked"] <= 1.0
