"""What extracting an entry's fact values costs (start-up does it for every entry of the index): the mean time
per document, each TOFU retain90 author's answers joined into one document (~500 words), three times over.

    .venv/bin/python -m bench.fact_values
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from guard.eval.data import Tofu
from guard.forget.facts import fact_values
from guard.settings import REPO_ROOT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tofu", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "tofu")
    args = parser.parse_args()
    docs = [" ".join(author.answers) for author in Tofu(args.tofu).authors("retain90")] * 3
    fact_values(docs[:2], ["Warm Up"])
    started = time.perf_counter()
    for doc in docs:
        fact_values([doc], ["Some Name"])
    took = (time.perf_counter() - started) / len(docs) * 1000
    words = sum(len(d.split()) for d in docs) / len(docs)
    print(f"{len(docs)} documents of {words:.0f} words on average: {took:.2f} ms each")


if __name__ == "__main__":
    main()
