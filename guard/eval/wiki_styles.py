"""How the wiki oracle words an answer it knows, in four styles (picked per request by the model name):

- `short`: the value alone, "The answer is Grumman.";
- `echo`: the value echoing the question, "As for who initially wanted more unmanned testing done regarding the
  LM, it was Grumman.";
- `recite`: the article's sentence that holds the answer span, verbatim;
- `reword`: the same fact in the question's words, not the article's: the question turned into a statement with
  the value in place of the wh-phrase, "Grumman initially wanted more unmanned testing done regarding the LM."
  (`reword` below lists the rules; what no rule fits is stated as "<clause>: <value>.").
"""

from __future__ import annotations

import re
from typing import Literal

Style = Literal["short", "echo", "recite", "reword"]
STYLES: tuple[Style, ...] = ("short", "echo", "recite", "reword")
MODEL_PREFIX = "wiki-"

AUX = "is|was|are|were|did|does|do|has|have|had|can|could|would|will|should|may|might|must"
_BE = {"is", "was", "are", "were"}
_WH_SUBJECT = re.compile(rf"^(?:who|what)\s+(?!(?:{AUX})\b)(\w+\b.*)$", re.I)  # Who wanted X / What caused X
_WH_BE = re.compile(r"^(?:who|what|which)\s+(is|was|are|were)\s+(.+)$", re.I)  # What was the first spacecraft
_WH_NOUN = re.compile(rf"^(?:what|which)\s+((?:\S+\s+){{0,3}}?\S+)\s+({AUX})\s+(.+)$", re.I)  # What city did X
_HOW_MANY = re.compile(rf"^how\s+(many|much)\s+(.+?)\s+({AUX})\s+(.+)$", re.I)  # How many people were killed
_WHEN_WHERE = re.compile(rf"^(when|where|in what year|in which year)\s+({AUX})\s+(.+)$", re.I)
_OPENERS = {"who", "what", "which", "when", "where", "why", "how", "in", "on", "at", "during", "after", "before"}


def style_of(model: str) -> Style:
    """The style a request's model name asks for ("wiki-recite"); `short` for any other name."""
    name = model.removeprefix(MODEL_PREFIX)
    for style in STYLES:
        if name == style:
            return style
    return "short"


def render(style: Style, question: str, value: str, sentence: str) -> str:
    """The oracle's answer: `value` (the gold answer) to `question`, `sentence` the article's sentence holding it."""
    if style == "recite":
        return sentence
    if style == "echo":
        return f"As for {_clause(question)}, it was {value}."
    if style == "reword":
        return reword(question, value)
    return f"The answer is {value}."


def reword(question: str, value: str) -> str:
    """The question as a statement, the value in place of its wh-phrase. Rules, the first that fits:
    "Who/What/Which was X?" -> "X was <value>."; "What/Which <noun> did X?" (a noun of up to four words) ->
    "The <noun> that X: <value>." ("What <noun> was X?" -> "<value> was X."); "Who/What <verb> X?" -> "<value>
    <verb> X."; "How many <noun> were X?" -> "<value> <noun> were X." (did: "The number of <noun> that X:
    <value>."); "When/Where did X?" -> "X, when: <value>."; any other question -> "<question as a clause>:
    <value>." (about a third of wiki-qa's questions)."""
    q = _strip(question)
    if m := _WH_BE.match(q):
        return _sentence(f"{m.group(2)} {m.group(1).lower()} {value}")
    if m := _WH_NOUN.match(q):
        noun, aux, rest = m.groups()
        if aux.lower() in _BE:
            return _sentence(f"{value} {aux.lower()} {rest}")
        return _sentence(f"the {noun} that {rest}: {value}")
    if m := _WH_SUBJECT.match(q):
        return _sentence(f"{value} {m.group(1)}")
    if m := _HOW_MANY.match(q):
        many, noun, aux, rest = m.groups()
        if aux.lower() in _BE:
            return _sentence(f"{value} {noun} {aux.lower()} {rest}")
        return _sentence(f"the {'number' if many.lower() == 'many' else 'amount'} of {noun} that {rest}: {value}")
    if m := _WHEN_WHERE.match(q):
        wh, _, rest = m.groups()
        return _sentence(f"{rest}, {'where' if wh.lower() == 'where' else 'when'}: {value}")
    return _sentence(f"{_clause(question)}: {value}")


def _strip(question: str) -> str:
    return re.sub(r"\s+", " ", question).strip().rstrip("?.!").strip()


def _clause(question: str) -> str:
    """The question as a clause: no question mark, its opening wh-word in lower case."""
    q = _strip(question)
    first = q.split(" ", 1)[0]
    return q[:1].lower() + q[1:] if first.lower() in _OPENERS else q


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + "."
