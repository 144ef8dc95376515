"""Name evidence: a forget entry's subject or an alias mentioned in a segment (see `guard.forget.names`), and
the weaker evidence of a part of a name mentioned alone (a surname).

A part counts only where it stands alone: "What did Rajeev's father do?" refers to someone by that name, while
"Rajeev Sharma" is another person who shares a given name. So parts are looked for where capitals can still be
seen (the text itself and its decodings, not its lower-cased views). An occurrence is someone else's name when a
capitalised word that is not the entry's own stands beside it in the same phrase, unless that word is a common
one opening a sentence ("Has Park received…" is Park alone; "Yeon? Give…" is two sentences)."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from guard.checks.conversation import SPELLING_VIEWS, is_view, lexical
from guard.checks.evidence import Evidence, Segment
from guard.forget.embedder import Vectors
from guard.forget.view import IndexView
from guard.normalize import common_words
from guard.text import tokens

_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
COMMON_START = 3000  # a capitalised word this common that starts a sentence is not taken for a name


class NamesFound(NamedTuple):
    names: dict[str, str]  # entry id -> where its name was first found
    parts: dict[str, tuple[frozenset[str], str]]  # entry id -> the parts found alone, and where first


class NameCheck:
    space = None  # embeds nothing

    def embed(self, segments: Sequence[Segment]) -> list[str]:
        return []

    def passages(self, segments: Sequence[Segment]) -> set[str]:
        return set()

    def read(self, segments: Sequence[Segment], view: IndexView, vectors: Mapping[str, Vectors]) -> NamesFound:
        names: dict[str, str] = {}
        parts: dict[str, tuple[set[str], str]] = {}
        for segment in lexical(segments):
            for entry_id in view.find_names(segment.text):
                names.setdefault(entry_id, segment.where)
            if not keeps_case(segment):
                continue
            for entry_id, words in view.find_parts(segment.text).items():
                entry = view.get(entry_id)
                own = {t for name in ((entry.subject, *entry.aliases) if entry else ()) for t in tokens(name)}
                alone = {w for w in words if standalone(segment.text, w, own)}
                if alone:
                    parts.setdefault(entry_id, (set(), segment.where))[0].update(alone)
        return NamesFound(names, {e: (frozenset(w), where) for e, (w, where) in parts.items()})

    def evidence(self, readings: Sequence[NamesFound], view: IndexView) -> list[Evidence]:
        names: dict[str, str] = {}
        parts: dict[str, tuple[set[str], str]] = {}
        for reading in readings:
            for entry_id, where in reading.names.items():
                names.setdefault(entry_id, where)
            for entry_id, (words, where) in reading.parts.items():
                parts.setdefault(entry_id, (set(), where))[0].update(words)
        out = [Evidence(e, "lexical", 1.0, where) for e, where in names.items()]
        out += [Evidence(e, "part", float(len(w)), where, frozenset(w)) for e, (w, where) in parts.items()]
        return out


def keeps_case(segment: Segment) -> bool:
    """The respellings are lower-cased: who a name part belongs to is lost."""
    return not is_view(segment, SPELLING_VIEWS)


def standalone(text: str, word: str, own: set[str]) -> bool:
    """Is `word` (a part of an entry's name) used somewhere in `text` on its own, not inside another name?"""
    found = list(_WORD.finditer(text))
    for i, m in enumerate(found):
        parts = tokens(m.group(0))
        if word not in parts:
            continue
        if any(p not in own and p not in ("s", word) for p in parts):
            continue  # a compound with someone else's name part ("Ji-Yeong")
        before = found[i - 1] if i else None
        after = found[i + 1] if i + 1 < len(found) else None
        if (before and _other_name(text, before, m, own)) or (after and _other_name(text, m, after, own)):
            continue  # next to a capitalised word that is not the entry's: another person's full name
        return True
    return False


def _other_name(text: str, left: re.Match[str], right: re.Match[str], own: set[str]) -> bool:
    """Are two neighbouring words one name, the neighbour (the one that is not the entry's) someone else's part?

    Only words with nothing but a space between belong together ("Yeon? Give" does not), and a capitalised word
    that starts a sentence is a name part only if it is not a common word ("Has Park received" is Park alone)."""
    if text[left.end() : right.start()].strip():
        return False
    for m in (left, right):
        w = m.group(0)
        if not w[:1].isupper() or set(tokens(w)) - {"s"} <= own:
            continue
        before = text[max(0, m.start() - 80) : m.start()].rstrip()
        starts = not before or before[-1] in ".?!:;\"'(*#>"
        if starts and w.casefold() in _common():
            continue
        return True
    return False


@functools.cache
def _common() -> frozenset[str]:
    return common_words(COMMON_START)
