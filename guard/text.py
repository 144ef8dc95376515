"""Text helpers shared by the forget index and the checks: sentences (the unit that is embedded and checked)
and word tokens (the unit that names and verbatim runs are matched on).

One module so that the input side, the output side and the index always cut text the same way.
"""

from __future__ import annotations

import re
import unicodedata

# A sentence ends at . ! ? (optionally followed by closing quotes/brackets) before white space, or at a newline.
_BOUNDARY = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"')\]])\s+|\n+")
MAX_CHUNK_CHARS = 1000
_NON_WORD = re.compile(r"[^0-9a-z]+")


def sentences(text: str) -> list[str]:
    out: list[str] = []
    for part in _BOUNDARY.split(text):
        part = part.strip()
        while len(part) > MAX_CHUNK_CHARS:  # very long "sentences" (lists, code) are cut, not dropped
            out.append(part[:MAX_CHUNK_CHARS])
            part = part[MAX_CHUNK_CHARS:].strip()
        if part:
            out.append(part)
    return out


def tokens(text: str) -> list[str]:
    """Lowercase, accent-folded ASCII word tokens: "Yun-Hwa's" -> ["yun", "hwa", "s"]."""
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(c for c in folded if not unicodedata.combining(c)).casefold()
    return [t for t in _NON_WORD.split(folded) if t]
