"""Names across scripts: a name matched by how it sounds, not how one script spells it.

Text and names are first transliterated to ASCII (`guard.text.tokens`, through `anyascii`): バジル・マフフーズ
becomes "bajiru mafufuzu", Басиль Махфуз "basil' makhfuz", باسل محفوظ "bsl mhfwdh", 巴西尔 "baxier". Those
romanisations disagree on vowels (Arabic writes none, Japanese adds them), on l and r (Japanese has one
sound for both), on b, p, f and v, and on how a sibilant or a guttural is spelled. The key of a word keeps only
what they agree on: its consonants, grouped into classes of sounds that scripts confuse, repeats collapsed.
"Basil Mahfouz Al-Kuwaiti" and all four spellings above give "bsr mbs rkt" (± one class), so one name matcher
over keys (`SoundMatcher`: exact keys, plus one or two differences for long keys) finds the name in any of them.

Keys are coarse on purpose, so short ones would match ordinary words: a name is matched by sound only when its
key has `MIN_KEY` classes or more (two-word names usually do; "Wei-Jun Chen" does not, and stays with the
spelling matcher), and one difference is allowed only from `TYPO_MIN_KEY` classes on.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable

from guard.forget.names import NameMatcher
from guard.text import tokens

MIN_KEY = 6
TYPO_MIN_KEY = 8

# digraphs first: how romanisations spell one sound with two letters
_DIGRAPHS = [
    ("kh", "h"),
    ("gh", "g"),
    ("ph", "f"),
    ("dh", "z"),
    ("th", "t"),
    ("sh", "s"),
    ("ch", "s"),
    ("ts", "s"),
    ("tz", "s"),
    ("ck", "k"),
    ("qu", "k"),
]
_CLASSES = str.maketrans(
    {
        **dict.fromkeys("aeiouyhw'", ""),  # vowels, glides, h: written by some scripts only
        **dict.fromkeys("bpfv", "b"),
        **dict.fromkeys("ckqg", "k"),
        **dict.fromkeys("dt", "t"),
        **dict.fromkeys("szjx", "s"),  # x: the pinyin sibilant (巴西尔 -> "baxier")
        **dict.fromkeys("lr", "r"),
    }
)
_REPEATS = re.compile(r"(.)\1+")
_DIGRAPH = re.compile("|".join(d for d, _ in _DIGRAPHS))
_DIGRAPH_MAP = dict(_DIGRAPHS)


def _script(char: str) -> str:
    """The script class of a character, where it matters for cutting words: CJK, kana and everything else."""
    if "\u30a0" <= char <= "\u30ff" or "\u31f0" <= char <= "\u31ff" or char == "\uff70":
        return "katakana"
    if "\u3040" <= char <= "\u309f":
        return "hiragana"
    if unicodedata.name(char, "").startswith("CJK UNIFIED"):
        return "han"
    return "other"


def words(text: str) -> str:
    """Word breaks where the writing shows none: between runs of katakana (where Japanese writes foreign names),
    hiragana and other scripts, and around every Chinese character
    ("ニコライ・アビロフの両親", "尼古拉·阿比洛夫的父母")."""
    if text.isascii():
        return text
    out: list[str] = []
    previous = "other"
    for char in text:
        script = _script(char)
        if script != previous or script == "han":
            out.append(" ")
        out.append(char)
        previous = script
    return "".join(out)


def _other_script(text: str) -> bool:
    """Letters of a script other than Latin? Latin spellings are the spelling matcher's: keys of Latin names are
    too coarse to tell hundreds of them apart ("Zqezkhhhyz Vrogachqqw" and "Zqikoujwch Vrccuseekt" differ by one
    class)."""
    return not text.isascii() and any(c.isalpha() and not _latin(c) for c in text)


def _latin(char: str) -> bool:
    return char.isascii() or unicodedata.name(char, "").startswith("LATIN")


def key(word: str) -> str:
    """The sound key of one lowercase ASCII word: "kuwaiti" -> "kt", "kuuetei" -> "kt", "basil" -> "bsr"."""
    word = _DIGRAPH.sub(lambda m: _DIGRAPH_MAP[m.group(0)], word)
    word = "".join(c for c in word.translate(_CLASSES) if c.isalpha())
    return _REPEATS.sub(r"\1", word)


class SoundMatcher(NameMatcher):
    """The name matcher over sound keys (see the module doc)."""

    min_key = MIN_KEY

    def __init__(self) -> None:
        super().__init__(typo_min_chars=TYPO_MIN_KEY)
        self._lengths: Counter[int] = Counter()  # key lengths of the names held

    def allowed_typos(self, length: int) -> int:
        """One difference at most: keys are coarse already, and two differences make random names collide."""
        return 0 if length < self.typo_min_chars else 1

    def tokens(self, text: str) -> list[str]:
        return [k for k in (key(t) for t in tokens(words(text)) if not t.isdigit()) if k]

    def _add(self, entry_id: str, names: Iterable[str]) -> list[tuple[str, int]]:
        before = len(self._names.get(entry_id, []))
        new = super()._add(entry_id, names)
        self._lengths.update(len("".join(t)) for t in self._names.get(entry_id, [])[before:])
        return new

    def remove(self, entry_id: str) -> None:
        self._lengths.subtract(len("".join(t)) for t in self._names.get(entry_id, []))
        self._lengths = +self._lengths
        super().remove(entry_id)

    def find(self, text: str) -> set[str]:
        """Like the spelling matcher, but a Chinese character is a word of its own, so a name written in them is as
        many words as it has syllables: a window is a run of words whose keys together are about as long as a
        name's key, spanning at most one word more than the widest name (a run of Chinese characters counts as
        one word there; elsewhere short words in a row — Hindi postpositions — would spell anything)."""
        if not self._exact or not _other_script(text):
            return set()
        toks: list[tuple[str, int, bool]] = []  # (key, group, han): one run of Chinese characters is one group
        group = 0
        for piece in words(text).split():
            han = len(piece) == 1 and _script(piece) == "han"
            for k in self.tokens(piece):
                toks.append((k, group, han))
            if not han:
                group += 1
        longest = max(self._lengths) + 2
        widest = max(self._widths) + 1
        found: set[str] = set()
        fuzzy: list[str] = []
        for i, (first, start, han) in enumerate(toks):
            if len(first) < 2 and not han:  # a name does not start with a one-sound word ("ने", "a")
                continue
            window = ""
            for tok, at, _ in toks[i : i + longest]:
                window += tok
                if len(window) > longest or at - start >= widest:
                    break
                hit = self._exact.get(window)
                if hit:
                    found |= hit
                elif (han or first in self._anchors) and window != first and self.allowed_typos(len(window) + 2):
                    fuzzy.append(window)
        return found | self._fuzzy_lookup(fuzzy)
