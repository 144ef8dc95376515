"""Answer evidence: what an answer adds to its question, found in the entry's passages the question retrieves.

"Who initially wanted more unmanned testing done regarding the LM?" — "The answer is Grumman." Neither says
anything alone: the question is 0.60 from the Apollo program's sentences (as near as a neighbour's question), the
answer is a name. But the question *retrieves* its answer's sentence from the forgotten article ("...Grumman
wanted more unmanned tests..."), and the answer's new word is in it. That is what a client learns from the
entry, whatever the answer's form: a bare value, a value echoing the question, the question reworded as a
statement. A neighbour's question retrieves sentences too, but its answer's words are not in them.

So, for an answer to a question that came near entries at input (`input.asked_threshold`, `Watch.asked`):
the answer's *new* content words (those its question lacks: "grumman"; "answer" too, in "The answer is
Grumman.") are looked up in the entry's `ASKED_K` chunks the question retrieves (among its top `SEARCH_K`
overall) and, where the semantic check embeds the question and answer read together (an answer that says
little, to a question near the entry), in the top `QA_K` chunks that reading retrieves (at `QA_FLOOR` or above).
The share of them found in such a chunk that also shares a content word with the question (the answer's
sentence speaks of what was asked) or holds a telling value (`telling`) is the evidence's score; a short answer
with a telling value found counts whole (`share`); `output.answer_coverage` decides. A JSON answer is read as its
values and a table as its cells (`values`), an acrostic as the word its first letters spell. A question that names
something the entry never mentions (a capitalised word none of its chunks or names use: "What genre does Jaime
Vasquez write in?" against another author) is about something else: its answer is not read against that entry.
An answer that names such a thing is about it too, unless what it shares with the entry is telling: "Prithvi
Kapoor's identity ... noticeably influences his work" (to a question that spelled the name out) shares only
"influences" with another author; "Grumman, of Bethpage" shares "grumman".

A question that does not name its subject ("Can you name some notable books written by the author?") comes near
no entry, or near every author alike, and retrieves none of the right one's sentences. So the answer's words are
also looked for where they stand together (`locate`): in the entries whose fact values it holds and those the
question retrieved passages of, the sentences that hold most of its new words. Such a sentence holding
`answer_coverage` of them, with `output.located_rare` rare values among them (a multi-word name is one:
`value_count`) or one rare value and `output.located_asked` of the question's words, is the statement the answer
restates in another form (kind "answer-located": a bare value, a JSON object of its values, a table), whatever the
question came near (`guard.checks.decide.answer_counts`). A question near no entry is read for this alone
(`LOCATED`).

Measured before it was built, offline over 1,500 wiki-qa questions (half the articles; the other half kept to
check): the own article's sentences hold at least half an answer's new words for 90% of its questions (88.8% on
the unseen half); another article's for 0.04% (0.06%) of (question, article) pairs; TOFU's retain answers
against the forget10 authors, 4 of 2,000.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from guard.checks.conversation import ANSWERED, LOCATED, SAYS_LITTLE, VIEW
from guard.checks.evidence import INDEX, Evidence, Segment
from guard.forget.chunkwords import content_words
from guard.forget.embedder import Vectors
from guard.forget.facts import proper_nouns
from guard.forget.view import IndexView
from guard.normalize import initials, rarity
from guard.text import tokens

SEARCH_K = 64  # chunks a question retrieves overall
ASKED_K = 8  # of them, an entry's best that the answer is looked for in
ANY_K = 32  # ... and, where the conversation is about the entry ("answer-any"), this many
QA_K = 3  # chunks the question and answer together retrieve
QA_FLOOR = 0.5  # ... at this score or above
LOCATE_ENTRIES = 8  # entries an answer's words are looked for in (`locate`): its fact values', then retrieved
LOCATE_K = 3  # ... in the chunks of each that hold most of them
RARE_VALUE = 14.0  # wordninja's cost of a word that answers by itself (~4 for "the"; "vicodin" 15.2)


class Answered(NamedTuple):
    entry_id: str
    kind: str  # "answer": found in sentences that answer the question; "answer-any": in any it retrieved;
    # "answer-located": in the sentence that holds most of the answer's own words (`locate`)
    share: float  # of the answer's new words, the share found in those chunks
    words: frozenset[str]  # those found (the entry's own words)
    where: str
    asked: float = 0.0  # "answer-located": the share of the question's words the answer's sentence uses
    values: int = 0  # ... and how many distinct values of the answer the words found are (`value_count`)


def new_words(answer: str, question: str) -> list[str]:
    """The content words of the answer its question lacks, in order (not an initial: "W. E. B. Du Bois" adds
    "du" and "bois")."""
    asked, said = set(tokens(question)), content_words(answer)
    return [w for w in dict.fromkeys(tokens(answer)) if w not in asked and w in said and _word(w)]


def _word(token: str) -> bool:
    """A word or a number, not an initial ("W.") or an identifier ("field1")."""
    return token.isdigit() or (len(token) > 1 and not any(c.isdigit() for c in token))


def values(answer: str) -> str:
    """What a structured answer states: a JSON document's leaf values (its keys are the frame: "author_name",
    "field1"), a Markdown table's cells below its header; any other answer as it is."""
    text = answer.strip().strip("`").removeprefix("json").strip()
    if text[:1] in "{[":
        try:
            return " ; ".join(_leaves(json.loads(text)))
        except ValueError:
            pass
    rows = [line for line in answer.splitlines() if line.count("|") >= 2]
    if len(rows) >= 2 and set(rows[1].replace("|", "").strip()) <= set("-: "):
        return "\n".join(" ; ".join(c.strip() for c in row.strip().strip("|").split("|")) for row in rows[2:])
    return answer


def _leaves(data: object) -> list[str]:
    if isinstance(data, dict):
        return [leaf for value in data.values() for leaf in _leaves(value)]
    if isinstance(data, list):
        return [leaf for value in data for leaf in _leaves(value)]
    return [] if data is None else [str(data)]


def locate(
    view: IndexView, said: Sequence[str], asked: Sequence[str], near: Sequence[str] = ()
) -> dict[str, list[int]]:
    """Where an answer's words stand, whichever entry its question seemed to be about: in the entries with one of
    their fact values among them (those with most first), then those the question retrieved passages of (`near`):
    `LOCATE_ENTRIES` at most, in each its `LOCATE_K` chunks that hold most of the words (two at least, one for an
    answer that says little), then most of the question's (`asked`). An article's fact values are capped, and a
    value two entries share is no one's: a year of the article may be neither."""
    found = view.find_values(" ".join(said))
    ranked = sorted(found, key=lambda e: (-len(found[e]), e))
    least = 1 if len(said) <= SAYS_LITTLE else 2
    entries = list(dict.fromkeys([*ranked, *near]))[:LOCATE_ENTRIES]
    return {e: ids for e in entries if (ids := view.chunks_holding(e, said, LOCATE_K, asked, least))}


_NAME_RUN = re.compile(r"[A-Z][\w'-]*\.?(?:\s+[A-Z][\w'-]*\.?)+")  # "Nora Roberts", "Hugh L. Dryden"


def value_count(text: str, found: set[str]) -> int:
    """How many distinct values of the answer the found words are: the words of one multi-word name count once
    ("Nora Roberts", whom a forgotten author's sentence mentions, is one value, not two facts), any other word
    on its own."""
    runs = [set(tokens(m.group(0))) for m in _NAME_RUN.finditer(text)]
    named = [run & found for run in runs if run & found]
    alone = found - set().union(*named) if named else found
    return len(alone) + len({frozenset(n) for n in named})


def located_reading(
    view: IndexView, ids: Sequence[int], said: Sequence[str], about: Sequence[str], proper: set[str]
) -> tuple[set[str], float]:
    """Of the located chunks, the one that holds most of the answer's words and speaks of what was asked (shares a
    word with the question) or holds a telling value: the words it holds, and the share of the question's words
    (`about`) it uses."""
    best: tuple[set[str], float] = (set(), 0.0)
    for chunk_id in ids:
        here = view.words_found([chunk_id], said)
        asked = len(view.words_found([chunk_id], about)) / len(about) if about else 0.0
        if here and (asked or any(telling(w, proper) for w in here)) and (len(here), asked) > (len(best[0]), best[1]):
            best = (here, asked)
    return best


def parts(segment: Segment) -> tuple[str, str]:
    """An answered segment's question and answer."""
    return segment.text[: segment.asked], segment.text[segment.asked :].lstrip("\n")


def name_words(view: IndexView, entry_id: str) -> set[str]:
    entry = view.get(entry_id)
    return {w for name in ((entry.subject, *entry.aliases) if entry is not None else ()) for w in tokens(name)}


def share(found: set[str], new: Sequence[str], proper: set[str]) -> float:
    """How much of what the answer adds is the entry's: the share of its new words found; all of it when the
    answer adds little (`SAYS_LITTLE` words or fewer) and a telling value among them is found. "Die Antwort
    lautet: Grumman." adds four words, three of them the frame of another language; "Grumman" is the answer."""
    if len(new) <= SAYS_LITTLE and any(telling(w, proper) for w in found):
        return 1.0
    return len(found) / len(new)


def telling(word: str, proper: set[str]) -> bool:
    """A value that answers by itself wherever it stands: a number of three or more digits (a year, a count), one
    of the entry's proper nouns (`proper`: "grumman", capitalised in its documents), or a word rarer than
    `RARE_VALUE` in English ("vicodin"). Not a rare adjective or adverb ("noticeably", "illustrious": as rare
    in wordninja's counts as "grumman", and in any author's biography). Not "000": the tail of any number written
    with a thousands separator ("10,000" is read as "10" and "000")."""
    if word.isdigit():
        return len(word) >= 3 and not zeros(word)
    return word in proper or rarity(word) >= RARE_VALUE


def zeros(word: str) -> bool:
    """A group of zeros: what "60,000" and "10,000" share, which tells nothing."""
    return word.isdigit() and not word.strip("0")


def answering(
    view: IndexView,
    answers: Sequence[int],
    others: Sequence[int],
    new: Sequence[str],
    asked: Sequence[str],
    proper: set[str],
) -> tuple[set[str], set[str]]:
    """The answer's new words found in the chunks: (in `answers` that answer the question, in any chunk). A
    chunk answers when it also shares a content word with the question (an answer's sentence speaks of what was
    asked: "...Grumman wanted more unmanned tests...") or the words it holds are telling (`telling`); a sentence
    that merely holds a common word of the answer ("Christian", "three") somewhere among the retrieved need not."""
    strict: set[str] = set()
    loose = view.words_found(others, new) if others else set()
    for chunk_id in answers:
        here = view.words_found([chunk_id], new)
        if not here:
            continue
        loose |= here
        if here - strict and (
            any(telling(w, proper) for w in here) or view.words_found([chunk_id], [w for w in asked if w not in here])
        ):
            strict |= here
    return strict, loose


class AnswerCheck:
    space = INDEX

    def embed(self, segments: Sequence[Segment]) -> list[str]:
        """The question (embedded at input already: the embedder's cache has it). The question with its answer is
        read when the semantic check embeds it anyway (an answer that says little, to a question near the
        entry: `QA`); embedding it for every question that comes near an entry cost ~5 ms of CPU a request
        (`bench.cost`)."""
        return [parts(s)[0] for s in segments if s.role == ANSWERED and VIEW not in s.where and s.where != LOCATED]

    def passages(self, segments: Sequence[Segment]) -> set[str]:
        return set()

    def read(self, segments: Sequence[Segment], view: IndexView, vectors: Mapping[str, Vectors]) -> list[Answered]:
        out: list[Answered] = []
        for s in segments:
            if s.role != ANSWERED or VIEW in s.where:
                continue
            question, answer = parts(s)
            new = new_words(values(answer), question)
            acrostic = new_words(initials(answer), question)  # what its lines' first letters spell, read apart
            if (new or acrostic) and (question in vectors or s.where == LOCATED):
                out.extend(_answered(s, new, acrostic, view, vectors))
        return out

    def evidence(self, readings: Sequence[list[Answered]], view: IndexView) -> list[Evidence]:
        best: dict[tuple[str, str], Answered] = {}
        for found in (a for reading in readings for a in reading):
            key = (found.entry_id, found.kind)
            if key not in best or found.share > best[key].share:
                best[key] = found
        return [Evidence(a.entry_id, a.kind, a.share, a.where, a.words, a.asked, a.values) for a in best.values()]


def _retrieved(segment: Segment, view: IndexView, vectors: Mapping[str, Vectors]) -> dict[str, list[int]]:
    """Per entry, the chunks its question retrieves (best first, `ANY_K` at most)."""
    out: dict[str, list[int]] = {}
    for entry_id, chunk_id, _ in view.search_chunks(vectors[parts(segment)[0]][None], SEARCH_K)[0]:
        if len(out.setdefault(entry_id, [])) < ANY_K:
            out[entry_id].append(chunk_id)
    return out


def _answered(
    s: Segment, new: list[str], acrostic: list[str], view: IndexView, vectors: Mapping[str, Vectors]
) -> list[Answered]:
    """The evidence of one answered text, per entry: its new words (and the word its acrostic spells) found in the
    chunks its question retrieved ("answer", "answer-any"; none for a `LOCATED` text) and where they stand
    together ("answer-located")."""
    question, answer = parts(s)
    retrieved = _retrieved(s, view, vectors) if s.where != LOCATED else {}
    answers = {entry_id: ids[:ASKED_K] for entry_id, ids in retrieved.items()}
    if s.text in vectors:
        for entry_id, chunk_id, score in view.search_chunks(vectors[s.text][None], QA_K)[0]:
            if score >= QA_FLOOR:
                answers.setdefault(entry_id, []).append(chunk_id)
    asked = sorted(content_words(question))
    located = {said: locate(view, list(said), asked, list(answers)) for said in (tuple(new), tuple(acrostic)) if said}
    named = sorted(proper_nouns(question))
    names = sorted({w for line in answer.splitlines() for w in proper_nouns(line)})  # not a line's start
    mentioned = view.find_parts(question)  # entries the question names (a part of a name)
    out: list[Answered] = []
    for entry_id in dict.fromkeys([*answers, *(e for found in located.values() for e in found)]):
        if named and entry_id not in mentioned and view.words_lacking(entry_id, named):
            continue  # the question (or a long answer) is about something the entry never mentions
        ids, others = answers.get(entry_id, []), retrieved.get(entry_id, [])[ASKED_K:]
        about = [w for w in asked if w not in name_words(view, entry_id)]  # its name is in every sentence
        elsewhere = bool(names) and entry_id not in mentioned and bool(view.words_lacking(entry_id, names))
        for said in (new, acrostic):
            if not said:
                continue
            proper = view.details_among(entry_id, said)
            strict, loose = answering(view, ids, others, said, about, proper)
            alone, overlap = located_reading(view, located[tuple(said)].get(entry_id, []), said, about, proper)
            # located by its words alone, an answer that names what the entry never mentions is about that
            located_here = set() if elsewhere else alone
            for kind, found in (("answer", strict), ("answer-any", loose), ("answer-located", located_here)):
                if found and not (elsewhere and not any(telling(w, proper) for w in found)):
                    value, count = share(found, said, proper), value_count(values(answer), found)
                    out.append(Answered(entry_id, kind, value, frozenset(found), s.where, overlap, count))
    return out
