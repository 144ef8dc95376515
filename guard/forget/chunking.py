"""Split forget documents and generated text into sentences, the unit that is embedded and checked."""

from __future__ import annotations

import re

# A sentence ends at . ! ? (optionally followed by closing quotes/brackets) before white space, or at a newline.
_BOUNDARY = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"')\]])\s+|\n+")
MAX_CHUNK_CHARS = 1000


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
