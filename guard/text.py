"""Text helpers shared by the forget index and the checks: sentences (the unit that is embedded and checked)
and word tokens (the unit that names and verbatim runs are matched on).

One module so that the input side, the output side and the index always cut text the same way.
"""

from __future__ import annotations

import hashlib
import re
import threading
import unicodedata
from collections import OrderedDict

from anyascii import anyascii as _anyascii

# A sentence ends at . ! ? (optionally followed by closing quotes/brackets) before white space, or at a newline.
_BOUNDARY = re.compile(r"(?<=[.!?।۔؟])\s+|(?<=[.!?][\"')\]])\s+|\n+|(?<=[。！？])")  # CJK ends need no space
MAX_CHUNK_CHARS = 1000
_NON_WORD = re.compile(r"[^0-9a-z]+")
_NUMBER = re.compile(r"\d{3,}")  # \d: the decimal digits of every script (١٩٥٦, १९५६, １９５６)
# A period after these, followed by a space, does not end a sentence: titles and common abbreviations.
ABBREVIATIONS = (
    r"Dr|Mr|Mrs|Ms|Prof|St|Jr|Sr|Mt|Ft|Gen|Col|Lt|Capt|Sgt|Rev|Gov|Sen|Rep|Co|Corp|Inc|Ltd|vs|cf|ca|approx|e\.g|i\.e"
    r"|Jan|Feb|Aug|Sept|Oct|Nov|Dec|No|Nos|Vol|pp|Fig"
)
# ... nor does one after an initial: a capital letter alone ("J. K. Rowling", "U. S. Army", "Richard R. Fay")
_NO_END = re.compile(rf"(?:^|[\s(\"'.])(?:[A-Z]|{ABBREVIATIONS})\.$")


_LONG = 2000  # a text of more characters is cut once per request (`_CUT`): a passage is read by several steps
_CUT: OrderedDict[bytes, tuple[tuple[int, int], ...]] = OrderedDict()  # digest -> (start, length) per sentence
_CUT_SIZE = 64
_CUT_LOCK = threading.Lock()
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def anyascii(text: str) -> str:
    """anyascii's transliteration, character by character as anyascii does, but only of the runs that need it:
    a 10,000-character passage with a few accented names in 0.3 ms rather than 0.9."""
    return text if text.isascii() else _NON_ASCII.sub(lambda m: _anyascii(m.group()), text)


def sentences(text: str) -> list[str]:
    """The sentences of a text (lines, for text without sentence punctuation), never cut after an initial or an
    abbreviation: a chunk "S." of "U. S." would be as close to any other "S." as a sentence to itself. A long
    text's cut is remembered a while, as places in it (no text is held): the steps of one request that read a
    passage do not cut it again."""
    if len(text) <= _LONG:
        return _sentences(text)
    key = hashlib.blake2b(text.encode(), digest_size=16).digest()
    with _CUT_LOCK:
        spans = _CUT.get(key)
    if spans is not None:
        return [text[start : start + length] for start, length in spans]
    out = _sentences(text)
    with _CUT_LOCK:
        _CUT[key] = tuple(zip(places(text, out), map(len, out), strict=True))
        while len(_CUT) > _CUT_SIZE:
            _CUT.popitem(last=False)
    return out


def places(text: str, parts: list[str]) -> list[int]:
    """Where each of the text's sentences (`sentences`, in order) starts in it."""
    starts, at = [], 0
    for part in parts:
        at = text.find(part, at)
        starts.append(at)
        at += len(part)
    return starts


def _sentences(text: str) -> list[str]:
    out: list[str] = []
    start = 0
    for boundary in _BOUNDARY.finditer(text):
        sep = boundary.group()
        if sep and "\n" not in sep and _NO_END.search(text[start : boundary.start()]):
            continue  # "Dr. Smith", "J. K.": the same sentence goes on
        _add(out, text[start : boundary.start()])
        start = boundary.end()
    _add(out, text[start:])
    return out


def _add(out: list[str], part: str) -> None:
    part = part.strip()
    while len(part) > MAX_CHUNK_CHARS:  # very long "sentences" (lists, code) are cut, not dropped
        out.append(part[:MAX_CHUNK_CHARS])
        part = part[MAX_CHUNK_CHARS:].strip()
    if part:
        out.append(part)


_LATIN = r"0-9A-Za-z\u00C0-\u024F\u1E00-\u1EFF"
# Where Latin letters meet letters of a script written without spaces: "Hsiao Yun-Hwaが彼女の" would otherwise
# transliterate to one word, "hwagabinu..." (the name in Latin letters inside Japanese or Chinese text).
_SCRIPT_CHANGE = re.compile(rf"(?<=[{_LATIN}])(?=[^{_LATIN}\W\u0300-\u036F])|(?<=[^{_LATIN}\W])(?=[{_LATIN}])")


def tokens(text: str) -> list[str]:
    """Lowercase ASCII word tokens: "Yun-Hwa's" -> ["yun", "hwa", "s"]; accents are folded and other scripts
    transliterated ("Николай" -> ["nikolai"]), so a name registered in one script is found in another."""
    if not text.isascii():
        text = anyascii(_SCRIPT_CHANGE.sub(" ", unicodedata.normalize("NFKC", text)))
    return [t for t in _NON_WORD.split(text.casefold()) if t]


def numbers(text: str) -> set[str]:
    """Numbers of three or more digits (years, counts), in ASCII digits whatever the script: a value every
    language writes the same way. Unlike `tokens`, digits glued to letters count ("1956年" -> "1956")."""
    return {m if m.isascii() else "".join(str(unicodedata.digit(c)) for c in m) for m in _NUMBER.findall(text)}


# Function words, and the words every author biography shares: never a fact of one entry.
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "out",
        "over",
        "own",
        "s",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "t",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "one",
        "ve",
        "ll",
        "d",
        "re",
        "m",
        "yes",
        "author",
        "authors",
        "writer",
        "writers",
        "book",
        "books",
        "work",
        "works",
        "wrote",
        "written",
        "writes",
        "writing",
        "known",
        "notable",
    ]
)
