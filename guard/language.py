"""Which language a text is in, as far as the guard needs to know: English (MiniLM reads it), mostly another
script (only the multilingual model may compare it), and a coarse key telling languages apart by script.

No language-identification model: English function words and Unicode script names are enough for these three
decisions, cost microseconds, and fail towards reading a text with both models.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from guard.text import STOPWORDS, tokens

ENGLISH_SHARE = 0.2  # a text whose words are at least this share English function words is English
_ASCII_LETTER = re.compile("[A-Za-z]")  # exactly the ASCII characters `str.isalpha` accepts
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_SCRIPTS = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "HALFWIDTH": "CJK", "FULLWIDTH": "CJK"}


def other_script(text: str) -> bool:
    """Are more than a fifth of the text's letters outside ASCII (Cyrillic, Arabic, CJK, Devanagari...)? Accented
    Latin (French, Spanish) stays well under. MiniLM cannot read such text: it puts any two texts of one such
    script close together (with documents registered in Arabic, 94% of Arabic retain questions scored above the
    input threshold), so only the multilingual model compares it."""
    if text.isascii():  # most text, decided at C speed (start-up reads a million chunks through here)
        return False
    others: int = sum(c.isalpha() for c in _NON_ASCII.findall(text))
    return others > 0.2 * (len(_ASCII_LETTER.findall(text)) + others)


def english(text: str, words: list[str] | None = None) -> bool:
    """Is the text English (so MiniLM reads it well)? Mostly Latin letters, and English function words among its
    words (names and loanwords are shared by languages; "the", "was", "of" are not). A text without any, however
    short, is read by both models: a few ms wasted rather than a language missed. `words`: the text's `tokens`,
    when the caller has them already."""
    if not any(c.isalpha() for c in text):
        return True
    if other_script(text):
        return False
    words = [t for t in (tokens(text) if words is None else words) if t.isalpha() and len(t) > 1]
    if not words:
        return True
    return sum(w in STOPWORDS for w in words) >= ENGLISH_SHARE * len(words)


def language(text: str) -> str:
    """A coarse language key: "" for English, else the script most of its letters are written in ("ARABIC",
    "CYRILLIC", "CJK" for Chinese and Japanese, "LATIN" for French, Spanish...). Two texts with one non-empty key
    are taken to be in one language; e5 scores such pairs higher (`guard.forget.meaning.SAME_LANGUAGE_OFFSET`)."""
    if english(text):
        return ""
    scripts = Counter(
        _SCRIPTS.get(name, name) for name in (unicodedata.name(c, "?").split(" ", 1)[0] for c in text if c.isalpha())
    )
    return scripts.most_common(1)[0][0] if scripts else ""
