"""Normalisation: the spellings and encodings an attacker (or a model told to) may use, undone before matching.

`views(text)` gives the text as the checks should also read it, each view named:

- `folded`: Unicode NFKC, zero-width and other format/control characters removed, homoglyphs mapped to the
  Latin letter they imitate (Unicode's confusables data, from `confusable-homoglyphs`), every other script
  transliterated to ASCII (`anyascii`), case folded;
- `joined`: letters written one by one ("x i n  l e e", "C-a-r-m-e-n", "H.s.i.a.o") joined into words;
- `deleet`: leetspeak in words that mix letters and digits or symbols ("B3hr0uz R0han1") mapped to letters;
- `split`: words glued together ("hsiaoyunhwawonthe…") split again (`wordninja`, English unigram frequencies);
- decodings: `base64` and `hex` runs decoded, the whole text in `rot13` and `reversed`, kept only when they
  read more like language than the text itself.

Each view is a plain string, so every matcher (names, verbatim runs, meaning) applies to it unchanged.
`unnatural(text)` says whether a text is mostly not natural language (encoded, spelled out, one word a line):
under watch such output is refused.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import functools
import json
import re
import unicodedata
from pathlib import Path

import confusable_homoglyphs
import wordninja

from guard.text import anyascii

ACROSTIC_LINES = 4  # lines (or sentences) whose first letters are read as a word (`initials`)
ACROSTIC_MAX = 40  # ... and at most this many (a document's first letters spell short words by chance)
MAX_VIEW_CHARS = 20_000  # views of longer texts are cut: bounded work per text

_LEET = str.maketrans(
    {
        "0": "o",
        "1": "i",
        "3": "e",
        "4": "a",
        "5": "s",
        "7": "t",
        "8": "b",
        "9": "g",
        "@": "a",
        "$": "s",
        "!": "i",
        "|": "l",
        "+": "t",
        "€": "e",
    }
)
_LEET_WORD = re.compile(r"(?=\S*[A-Za-z])(?=\S*[0-9@$!|+€])[A-Za-z0-9@$!|+€]{3,}")
# single letters or digits separated by one separator, at least 3 of them: "x i n", "C-a-r-m-e-n", "H.s.i"
_SPELLED = re.compile(r"(?<![^\W_])(?:[^\W_][ \-_.*·/|]){2,}[^\W_](?![^\W_])")
_WORD_GAP = re.compile(r" {2,}|\t|\s*[/|]\s*(?= )")  # between spelled words: two spaces, a tab, " / "
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_HEX = re.compile(r"\b(?:[0-9a-fA-F]{2}[ :]?){8,}\b")
_LETTERS = re.compile(r"[a-z]+")
_GLUED = re.compile(r"[a-z0-9]+(?:['’-]+[a-z0-9]+)*")  # a word, hyphens and apostrophes kept inside
_GLUED_LETTERS = 16  # a word this long (in letters) is words glued together
_FIRST_LETTER = re.compile(r"[^\W\d_]")  # a line's first letter, after any list marker, number or quote
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")  # between sentences on one line (`initials`)
_MARKED = re.compile(r"[^\W_][\-_.*·/|][^\W_]")


@functools.cache
def _skeleton() -> dict[int, str]:
    """Non-ASCII characters that imitate an ASCII letter or digit -> that letter (e.g. Cyrillic а -> a)."""
    data = json.loads((Path(confusable_homoglyphs.__file__).parent / "confusables.json").read_text("utf-8"))
    table: dict[int, str] = {}
    for char, glyphs in data.items():
        if len(char) != 1 or char.isascii():
            continue
        for glyph in glyphs:
            c = glyph.get("c", "")
            if len(c) == 1 and c.isascii() and c.isalnum():
                table[ord(char)] = c
                break
    return table


@functools.cache
def _vocabulary() -> frozenset[str]:
    model = wordninja.DEFAULT_LANGUAGE_MODEL
    return frozenset(model._wordcost)  # the unigram list wordninja ships, most frequent first


@functools.cache
def _costs() -> dict[str, float]:
    costs: dict[str, float] = wordninja.DEFAULT_LANGUAGE_MODEL._wordcost
    return costs


def rarity(word: str) -> float:
    """How rare a (lower-case) word is in general English: its cost in wordninja's unigram model (-log of its
    Zipf probability, ~4 for "the", ~15 for the rarest listed word); a word not listed is rarer than any."""
    costs = _costs()
    return costs.get(word, _unlisted())


@functools.cache
def _unlisted() -> float:
    return max(_costs().values()) + 1.0


@functools.cache
def common_words(n: int = 1500) -> frozenset[str]:
    """The `n` most frequent English words (wordninja's unigram list)."""
    return frozenset(list(wordninja.DEFAULT_LANGUAGE_MODEL._wordcost)[:n])


def fold(text: str) -> str:
    """NFKC, no zero-width or control characters, homoglyphs to their Latin letter, ASCII, lower case."""
    text = unicodedata.normalize("NFKC", text[:MAX_VIEW_CHARS])
    text = "".join(c for c in text if c in "\n\t" or unicodedata.category(c) not in ("Cf", "Cc", "Co", "Cs"))
    text = text.translate(_skeleton())
    return anyascii(text).casefold()


def join_spelled(text: str) -> str:
    """Letters written one by one joined into words; two spaces (or a tab, or a slash) separate the words."""

    def join(m: re.Match[str]) -> str:
        run = m.group(0)
        # letters tied by a mark ("O-n-e o-f"): a space is a word gap; tied by spaces, two spaces are
        words = re.split(r"\s+", run) if _MARKED.search(run) else _WORD_GAP.split(run)
        return " ".join(re.sub(r"[ \-_.*·/|]", "", w) for w in words if w)

    # a double space inside a spelled run is a word gap: match runs on the text with gaps kept
    return _SPELLED.sub(join, re.sub(r"(?<=\S)( {2,})(?=\S)", lambda g: " " + "\0" + " ", text)).replace(" \0 ", "  ")


def deleet(text: str) -> str:
    """Leetspeak mapped back to letters, only in words that mix letters with digits or symbols."""
    return _LEET_WORD.sub(lambda m: m.group(0).translate(_LEET), text)


def split_glued(text: str) -> str:
    """Long runs of letters without spaces (hyphens and apostrophes may stand inside) split into words."""

    def split(m: re.Match[str]) -> str:
        word = m.group(0)
        if sum(c.isalpha() for c in word) < _GLUED_LETTERS:
            return word
        return " ".join(wordninja.split(word))

    return _GLUED.sub(split, text)


def initials(text: str) -> str:
    """The first letters of a text's lines (or, on one line, its sentences), read as words: an acrostic
    ("Great / Rockets / Usually / ...") spells "grumman". "" for fewer than `ACROSTIC_LINES` of them, or more
    than `ACROSTIC_MAX` (a document's hundred first letters spell some short word by chance)."""
    lines = [line for line in text[:MAX_VIEW_CHARS].splitlines() if line.strip()]
    if len(lines) < ACROSTIC_LINES:
        lines = _SENTENCE_END.split(text[:MAX_VIEW_CHARS])
    firsts = [m.group(0) for m in (_FIRST_LETTER.search(line) for line in lines) if m]
    if not ACROSTIC_LINES <= len(firsts) <= ACROSTIC_MAX:
        return ""
    return " ".join(wordninja.split(fold("".join(firsts))))


def language_score(text: str) -> float:
    """The share of a text's words (2+ letters) that are English words: ~0.9 for prose, ~0.1 for ROT13."""
    words = [w for w in _LETTERS.findall(text.casefold()) if len(w) > 1]
    if not words:
        return 0.0
    vocabulary = _vocabulary()
    return sum(w in vocabulary for w in words) / len(words)


def _printable(data: bytes) -> str | None:
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    shown = sum(c.isprintable() or c in "\n\t" for c in decoded)
    return decoded if decoded and shown / len(decoded) > 0.9 else None


def decodings(text: str) -> list[tuple[str, str]]:
    """Decoded forms of what looks encoded: base64 and hex runs, and the whole text as ROT13 or reversed."""
    text = text[:MAX_VIEW_CHARS]
    out: list[tuple[str, str]] = []
    decoded: list[str] = []
    for m in _BASE64.finditer(text):
        run = m.group(0)
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                plain = _printable(decode(run + "=" * (-len(run) % 4)))
            except (binascii.Error, ValueError):
                continue
            if plain:
                decoded.append(plain)
                break
    for m in _HEX.finditer(text):
        try:
            plain = _printable(bytes.fromhex(re.sub(r"[ :]", "", m.group(0))))
        except ValueError:
            continue
        if plain:
            decoded.append(plain)
    if decoded:
        out.append(("base64", "\n".join(decoded)))
    base = language_score(text)
    for name, variant in (("rot13", codecs.decode(text, "rot13")), ("reversed", text[::-1])):
        if language_score(variant) > base + 0.25:
            out.append((name, variant))
    return out


def views(text: str) -> list[tuple[str, str]]:
    """The other ways to read `text` (name, view), without the text itself and without repeats."""
    folded = fold(text)
    candidates = [("folded", folded)]
    joined = join_spelled(folded)
    candidates.append(("joined", joined))
    candidates.append(("deleet", deleet(joined)))
    candidates.append(("split", split_glued(deleet(joined))))
    for name, decoded in decodings(text):
        candidates.append((name, decoded))
        candidates.append((f"{name}+folded", fold(decoded)))
    acrostic = initials(text)
    if acrostic:
        candidates.append(("initials", acrostic))
    seen = {text, text.casefold()}
    out: list[tuple[str, str]] = []
    for name, view in candidates:
        if view not in seen:
            seen.add(view)
            out.append((name, view))
    return out


def bare_values(text: str) -> bool:
    """A JSON document or a table whose cells are short values rather than sentences."""
    stripped = text.strip()
    cells: list[str] = []
    if stripped[:1] in "{[":
        try:
            data = json.loads(stripped)
        except ValueError:
            data = None

        def leaves(node: object) -> None:
            if isinstance(node, dict):
                for v in node.values():
                    leaves(v)
            elif isinstance(node, list):
                for v in node:
                    leaves(v)
            elif isinstance(node, str | int | float):
                cells.append(str(node))

        leaves(data)
    elif stripped.count("|") >= 6:
        cells = [c.strip() for line in stripped.splitlines() for c in line.split("|") if c.strip(" -:")]
    return len(cells) >= 3 and sum(len(c.split()) <= 3 for c in cells) / len(cells) > 0.7


def unnatural(text: str) -> bool:
    """Mostly not natural language: encoded, spelled letter by letter, leetspeak, reversed, one word a line,
    bare values (JSON or a table)."""
    stripped = text.strip()
    if len(stripped) < 12:
        return False
    if bare_values(stripped):
        return True
    folded = fold(stripped)
    if folded != stripped.casefold() and sum(ord(c) > 127 for c in stripped) > 0:
        hidden = sum(unicodedata.category(c) in ("Cf", "Co") for c in stripped)
        if hidden or any(ord(c) in _skeleton() for c in stripped):
            return True  # zero-width characters or homoglyphs in a generated answer
    if decodings(stripped):
        return True
    spelled = sum(len(m.group(0)) for m in _SPELLED.finditer(folded))
    if spelled > 0.3 * len(folded):
        return True
    if len(_LEET_WORD.findall(stripped)) >= 2 and language_score(deleet(folded)) > language_score(folded) + 0.2:
        return True
    lines = [ln for ln in stripped.splitlines() if ln.strip()]
    if len(lines) >= 5 and sum(len(ln.split()) <= 2 for ln in lines) / len(lines) > 0.8:
        return True
    return bool(_GLUED.search(folded)) and language_score(split_glued(folded)) > language_score(folded) + 0.3
