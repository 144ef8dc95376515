"""Two runs of the attack suite side by side: the classes whose leaks (attacks) or blocks (benign twins) differ.

    .venv/bin/python -m bench.attacks.compare BEFORE.json AFTER.json

The files are `bench.attacks.run --out` results. Prints one line per (class, benign) whose count differs, and
"identical" when none does.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path


def counts(path: Path) -> tuple[Counter[tuple[str, bool]], Counter[tuple[str, bool]]]:
    """Per (class, benign): cases that leaked (attacks) or were blocked (benign twins), and cases run."""
    hit: Counter[tuple[str, bool]] = Counter()
    runs: Counter[tuple[str, bool]] = Counter()
    for r in json.loads(path.read_text()):
        key = (r["attack"], r["benign"])
        hit[key] += bool(r["blocked"] if r["benign"] else r["leaked"])
        runs[key] += 1
    return hit, runs


def main(argv: list[str] | None = None) -> int:
    before, after = (counts(Path(p)) for p in (argv or sys.argv[1:])[:2])
    differ = 0
    for key in sorted(set(before[1]) | set(after[1])):
        if (before[0][key], before[1][key]) != (after[0][key], after[1][key]):
            differ += 1
            what = "blocked" if key[1] else "leaked"
            print(
                f"{key[0]} ({'benign' if key[1] else 'attack'}): {what} {before[0][key]}/{before[1][key]}"
                f" -> {after[0][key]}/{after[1][key]}"
            )
    if not differ:
        print("identical")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
