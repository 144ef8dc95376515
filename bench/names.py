"""Names across scripts (issue 14): what the sound matcher (`guard/forget/sounds.py`) finds and what it wrongly finds.

Found: forget01's two names registered in English; per language of the multilingual TOFU, how many of the 40
forget01 questions, paraphrased questions and answers it finds a registered name in. Wrongly found: the same two
names against every retain99 question and answer in the five languages (39,600 texts), and forget10's 20 names
against every English retain90 question and answer (7,200 texts). No model: runs in seconds.

    .venv/bin/python -m bench.names [--tofu DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from guard.eval.data import DEFAULT_DIR, Author, Tofu
from guard.eval.multilingual import LANGS
from guard.forget.sounds import SoundMatcher


def matcher(authors: list[Author]) -> SoundMatcher:
    m = SoundMatcher()
    for author in authors:
        m.add(author.name, [author.name])
    return m


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tofu", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args()
    tofu = Tofu(args.tofu)
    translated = args.tofu.parent / "tofu-multilingual"
    forget01 = matcher(tofu.authors("forget01"))

    print("| lang | questions found | paraphrased found | answers found | retain99 texts | wrongly found |")
    print("|---|---|---|---|---|---|")
    for lang in LANGS:
        rows = json.loads((translated / f"forget01_perturbed_{lang}.json").read_text("utf-8"))
        found = [sum(bool(forget01.find(r[k])) for r in rows) for k in ("question", "paraphrased_question", "answer")]
        retain = json.loads((translated / f"retain99_{lang}.json").read_text("utf-8"))
        texts = [r[k] for r in retain for k in ("question", "answer")]
        wrong = sum(bool(forget01.find(t)) for t in texts)
        cells = [lang, *(f"{n}/{len(rows)}" for n in found), str(len(texts)), str(wrong)]
        print("| " + " | ".join(cells) + " |")

    forget10 = matcher(tofu.authors("forget10"))
    english = [r[k] for r in tofu.rows("retain90") for k in ("question", "answer")]
    wrong = sum(bool(forget10.find(t)) for t in english)
    print(f"\nforget10's 20 names against English retain90: {wrong} of {len(english)} texts wrongly found")


if __name__ == "__main__":
    main()
