"""What the checks read: a request's conversation and a response's text, cut into located segments.

The input side reads every message of every role (system, developer, user, assistant, tool), every text field
of it (content and its parts, `name`, tool calls, reasoning) or every prompt (completions). Names are looked for
in all of it; meaning is compared for every text the client wrote and the recent window (the last `window_turns`
texts the client wrote, joined, so a question spread over turns is seen whole). Every segment is also read in its
normalised views (`guard.normalize`): other spellings, scripts and encodings.

A text of more than `PASSAGE_SENTENCES` sentences is a *passage* (a RAG context, a pasted document, a long system
prompt), and so is a context message (system, developer, tool) of more than one sentence. Its statements are
pieces of role `PASSAGE`: the decision weighs them on the scale of statements (as it weighs the model's own
sentences), not of questions, because a passage of 80 biography sentences about other
people has a sentence near some forgotten one most of the time. Its questions, and the last sentence of a user's
passage (where the request usually is), stay question pieces.

A sentence of fewer than two words ("(3)", "Thanks!", "OK.") is a *fragment*: it is read whole with its text and
for names, but not embedded on its own. It cannot state a forgotten fact alone, and each embedded piece costs the
transformer ~0.45 ms a token on 2 CPU cores.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from guard.checks.evidence import Segment
from guard.language import other_script
from guard.normalize import views
from guard.text import STOPWORDS, places, sentences, tokens

MAX_SEGMENTS = 256  # bound the embedding work of one request
VIEW = "~"  # separates a segment's place from the name of a normalised view of it
NOT_CLIENT = ("assistant", "history")  # whose text is not compared by meaning on the input side
PASSAGE_SENTENCES = 5  # a text of more sentences is a passage
PASSAGE = "passage"  # the role of a passage's statements among the pieces
CONTEXT_ROLES = ("system", "developer", "tool")  # what the client supplies as context, not what it asks
# Output side: an answer joined to the question it answers, read as one text by meaning only ("Grumman." says
# nothing alone; "Who wanted more unmanned tests of the LM? Grumman." states a fact). Names, values and runs of
# words are not read in it: the question's own were read at input.
QA = "qa"
# The same joined text, read for the answer's new words in the entry's passages the question retrieves
# (`guard.checks.answers`): whatever the answer's length, only for entries the question came near.
ANSWERED = "answered"
# Where an `ANSWERED` text is read only for where the answer's own words stand (`guard.checks.answers.locate`):
# its question came near no entry, so no entry's passages are retrieved for it.
LOCATED = "located"
# A passage of more sentences is read in blocks (`blocks`), each remembered on its own: a passage re-sent with a
# new question appended to it costs only its last block. A block starts `BLOCK_OVERLAP` sentences before its
# count, so that every run of `guard.checks.facts.FACT_SPAN` (3) sentences lies whole in one block.
BLOCK_SENTENCES = 8
BLOCK_OVERLAP = 2
IN_BLOCK, LAST_BLOCK = 1, 2  # `Segment.block`: a passage's block, its last one (where a user's request is)
SAYS_LITTLE = 4  # an answer with at most this many content words its question lacks says little without it


def blocks(text: str, parts: list[str] | None = None) -> list[str]:
    """A passage of more than `BLOCK_SENTENCES` sentences in runs of that many, cut at fixed counts of sentences
    from its start (each with the `BLOCK_OVERLAP` sentences before it), as written: the same passage with anything
    appended gives the same blocks but the last. A shorter text is its own only block. `parts`: its sentences,
    when they are at hand."""
    parts = sentences(text) if parts is None else parts
    if len(parts) <= BLOCK_SENTENCES:
        return [text]
    starts = places(text, parts)
    ends = [*starts[BLOCK_SENTENCES::BLOCK_SENTENCES], len(text)]
    return [
        text[starts[max(0, k - BLOCK_OVERLAP)] : end]
        for k, end in zip(range(0, len(parts), BLOCK_SENTENCES), ends, strict=True)
    ]


def split(segment: Segment) -> list[Segment]:
    """A client's text of more than `BLOCK_SENTENCES` sentences (a passage, or a long window) as its blocks
    (`blocks`), segments of its place and role; any other text as it is."""
    if segment.block or segment.role in NOT_CLIENT:
        return [segment]
    parts = sentences(segment.text)
    if len(parts) <= BLOCK_SENTENCES:  # a passage or not, it is read whole
        return [segment]
    cut = blocks(segment.text, parts)
    return [
        Segment(segment.where, text, segment.role, block=LAST_BLOCK if i == len(cut) - 1 else IN_BLOCK)
        for i, text in enumerate(cut)
    ]


def says_little(answer: str, question: str) -> bool:
    """Does the answer say little without the question it answers? "The answer is Grumman.", "As for who wanted
    more tests of the LM, it was Grumman.": a value or two the question lacks. A longer answer states its facts
    itself and is read as it is (a TOFU biography answer adds 11 content words to its question, half the time)."""
    asked = set(tokens(question))
    return len({t for t in tokens(answer) if t not in asked and t not in STOPWORDS}) <= SAYS_LITTLE


SPELLING_VIEWS = ("folded", "joined", "deleet", "split")  # respellings: a passage's are read for names only
NAMES_ONLY_VIEWS = ("initials",)  # an acrostic's letters: read for names and values, never embedded
_QUESTION_ENDS = ("?", "？", "؟", "՞")  # question marks of the scripts that have their own
_WORD = re.compile(r"[^\W\d_]{2,}")
_AFTERWORD = re.compile(r"\s*\([^()]*\)\s*$")  # a parenthesis after a question's mark
ASKED_WORDS = 3  # a question after a colon this many words long is what is asked (`asked_part`)
FRAGMENT_LETTERS = 4  # in scripts written without spaces between words, a fragment has fewer letters than this


def fragment(text: str) -> bool:
    """Too short to say anything alone: fewer than two words of letters (in Chinese or Japanese, which do not
    space their words, fewer than `FRAGMENT_LETTERS` letters)."""
    if other_script(text):
        return sum(c.isalpha() for c in text) < FRAGMENT_LETTERS
    return len(_WORD.findall(text)) < 2


@dataclass(frozen=True)
class Conversation:
    turns: tuple[Segment, ...]  # every text of every message, in order
    window_turns: int

    @classmethod
    def of(cls, turns: Sequence[tuple[str, str]], window_turns: int, role: str = "user") -> Conversation:
        """From (where, text) pairs of one role."""
        return cls(tuple(Segment(where, text, role) for where, text in turns), window_turns)

    def texts(self) -> list[str]:
        return [t.text for t in self.turns]

    def window(self) -> Segment | None:
        """The last `window_turns` texts the client wrote, joined. The assistant's own turns are left out: they
        passed the output check when they were generated, and are read for names and, under watch, together
        with the new answer. Passages too: each is read whole on its own, so a document re-sent with every
        request is read once (its results are remembered) rather than again inside each new window."""
        client = [
            t.text for t in self.turns if t.role != "assistant" and t.text.strip() and not passage(t.text, t.role)
        ]
        recent = client[-self.window_turns :]
        return Segment("window", "\n".join(recent), "window") if len(recent) > 1 else None

    def segments(self) -> list[Segment]:
        """What the checks read: the turns and the window."""
        window = self.window()
        return [*self.turns, window] if window else list(self.turns)

    def said_by(self, role: str) -> str:
        return "\n".join(t.text for t in self.turns if t.role == role)

    def question(self) -> str:
        """What the client asks now: its last turn, or the last sentence of it when it is a passage (where the
        request usually is); "" when the last client text is not the user's. Without the instructions before a
        colon (`asked_part`)."""
        client = [t for t in self.turns if t.role not in NOT_CLIENT and t.text.strip()]
        if not client or client[-1].role != "user":
            return ""
        text = client[-1].text
        return asked_part(sentences(text)[-1] if passage(text) else text)


def asked_part(text: str) -> str:
    """A question without the instructions before its colon: "For a school quiz, answer briefly: Who built the
    LM?" asks "Who built the LM?" (the instructions are as far from the entry as from any other subject, and
    pull the question's meaning towards every other quiz). Only when what follows the last colon of the last
    line is a question of `ASKED_WORDS` words or more; otherwise the text as it is."""
    line = text.strip().rsplit("\n", 1)[-1]
    after = line.rsplit(":", 1)[-1].strip() if ":" in line else ""
    question = _AFTERWORD.sub("", after)  # "Who built the LM? (be brief)"
    if question.endswith(_QUESTION_ENDS) and len(_WORD.findall(question)) >= ASKED_WORDS:
        return after
    return text


def lexical(segments: Sequence[Segment]) -> list[Segment]:
    """The segments names, values and runs of words are read in: not an answer joined to its question (`QA`,
    `ANSWERED`)."""
    return [s for s in segments if s.role not in (QA, ANSWERED)]


def expand(segments: Sequence[Segment]) -> list[Segment]:
    """The segments and their normalised views (each view once)."""
    out: list[Segment] = []
    seen: set[str] = set()
    for segment in segments:
        if segment.text not in seen:
            seen.add(segment.text)
            out.append(segment)
        if segment.role in (QA, ANSWERED):
            continue  # read by meaning only, as written: its question's views were read at input
        for name, view in views(segment.text):
            if view not in seen:
                seen.add(view)
                out.append(Segment(f"{segment.where}{VIEW}{name}", view, segment.role, block=segment.block))
    return out


def input_pieces(segments: Sequence[Segment]) -> list[Segment]:
    """The pieces the input's semantic check embeds: each text the client wrote, each sentence of a longer one,
    the window — and their decoded views (a question asked in base64 is compared as the question). A passage
    gives its sentences only (the whole is longer than the model reads), statements as `PASSAGE` pieces."""
    out: dict[str, Segment] = {}
    for segment in segments:
        if not segment.text.strip() or segment.role in NOT_CLIENT or is_view(segment, NAMES_ONLY_VIEWS):
            continue
        parts = sentences(segment.text)
        if (
            not segment.block
            and len(parts) <= PASSAGE_SENTENCES
            and not (segment.role in CONTEXT_ROLES and len(parts) > 1)
        ):
            out.setdefault(segment.text, segment)
            if segment.role == "user" and asked_part(segment.text) != segment.text:
                out.setdefault(asked_part(segment.text), Segment(segment.where, asked_part(segment.text), segment.role))
            if len(parts) > 1:
                for part in parts:
                    if not fragment(part):
                        out.setdefault(part, Segment(segment.where, part, segment.role))
        elif not is_view(segment, SPELLING_VIEWS):
            said = [part for part in parts if not fragment(part)]
            for i, part in enumerate(said):
                last = segment.role == "user" and i == len(said) - 1 and segment.block != IN_BLOCK
                asked = last or part.rstrip("\"')]*»”’ ").endswith(_QUESTION_ENDS)
                out.setdefault(part, Segment(segment.where, part, segment.role if asked else PASSAGE))
    # keep the most recent pieces when the conversation is very long
    return list(out.values())[-MAX_SEGMENTS:]


def passage(text: str, role: str = "user") -> bool:
    """Is the text read as statements? More than `PASSAGE_SENTENCES` sentences, or, in a context message (a system
    prompt, a retrieved document, a tool's result), more than one: context states, it does not ask. So a RAG
    paragraph is read the same in a system message as in the user turn, where the question makes it longer."""
    count = len(sentences(text))
    return count > PASSAGE_SENTENCES or (role in CONTEXT_ROLES and count > 1)


def is_view(segment: Segment, names: tuple[str, ...]) -> bool:
    """Is the segment one of the named normalised views of a text?"""
    return VIEW in segment.where and segment.where.rsplit(VIEW, 1)[1].startswith(names)


def spans(text: str, width: int, block: bool = False) -> list[str]:
    """The text, or for a passage (or a block of one) its runs of `width` consecutive sentences (what one stretch
    of it says)."""
    parts = sentences(text)
    if len(parts) <= (width if block else PASSAGE_SENTENCES):
        return [text]
    return [" ".join(parts[i : i + width]) for i in range(max(1, len(parts) - width + 1))]


def output_pieces(segments: Sequence[Segment]) -> list[Segment]:
    """The pieces the output's semantic check embeds: each generated sentence, in the text and its views (not
    those without a letter: list numbers, bare figures, rules; values are the fact check's), and the answer read
    with its question (`QA`), whole."""
    pieces = [
        Segment(s.where, part, s.role)
        for s in segments
        if s.role not in ("history", ANSWERED) and not is_view(s, NAMES_ONLY_VIEWS)
        for part in ([s.text] if s.role == QA else sentences(s.text))
        if any(c.isalpha() for c in part)
    ]
    return list({p.text: p for p in pieces}.values())[:MAX_SEGMENTS]
