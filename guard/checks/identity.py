"""Namesakes: a text that names an entry but describes someone (or something) else.

"What position did Basil Mahfouz Al-Kuwaiti, the goalkeeper who joined Feyenoord in 2013, play?" names a forgotten
author and is about a footballer. An entry identifies its subject by its documents: the *details* a conversation
gives about whoever it names — proper nouns and numbers of three or more digits ("Feyenoord", "2013") — are looked
up in the entry's own words. Details the entry never uses, and none that it does, say the conversation is about a
namesake: the name alone does not refuse it (`guard.checks.decide.namesakes`); the conversation is watched for the
entry instead (not strongly: the name makes any sentence near), and an answer that states the entry's fact values
or answers from its sentences is still filtered. One detail of the entry's own ("born in Kuwait City") is enough to
keep the refusal: a middle initial, a nickname or a changed spelling with the entry's own facts is the entry. An
entry whose documents say too little (fewer than `KNOWN_DETAILS` proper nouns and numbers: a name and "a painter")
cannot be told apart from anyone: every mention of its name is refused, as before.

The evidence (kind "identity") counts details, holds none: its score is the details the entry lacks, its `second`
those it has, summed over the conversation's texts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from guard.checks.conversation import lexical
from guard.checks.evidence import Evidence, Segment
from guard.checks.lexical import keeps_case
from guard.forget.chunkwords import details
from guard.forget.embedder import Vectors
from guard.forget.view import IndexView
from guard.text import tokens

KNOWN_DETAILS = 5  # an entry whose documents give fewer proper nouns and numbers has no namesakes


class Details(NamedTuple):
    counts: dict[str, tuple[int, int]]  # entry id -> (details it lacks, details it has)


class IdentityCheck:
    space = None  # embeds nothing

    def embed(self, segments: Sequence[Segment]) -> list[str]:
        return []

    def passages(self, segments: Sequence[Segment]) -> set[str]:
        return set()

    def read(self, segments: Sequence[Segment], view: IndexView, vectors: Mapping[str, Vectors]) -> Details:
        counts: dict[str, tuple[int, int]] = {}
        for segment in lexical(segments):
            if not keeps_case(segment):
                continue  # the respellings say nothing new, and lose the capitals proper nouns are found by
            named = view.find_names(segment.text)
            if not named:
                continue
            said = details(segment.text)
            for entry_id in named:
                if view.details_known(entry_id) < KNOWN_DETAILS:
                    continue  # too little is known of the entry to tell anyone apart from it
                entry = view.get(entry_id)
                own_name = {t for name in ((entry.subject, *entry.aliases) if entry else ()) for t in tokens(name)}
                mine = sorted(said - own_name)
                lacking = view.words_lacking(entry_id, mine)
                lacks, has = counts.get(entry_id, (0, 0))
                counts[entry_id] = (lacks + len(lacking), has + len(mine) - len(lacking))
        return Details(counts)

    def evidence(self, readings: Sequence[Details]) -> list[Evidence]:
        total: dict[str, tuple[int, int]] = {}
        for reading in readings:
            for entry_id, (lacks, has) in reading.counts.items():
                was = total.get(entry_id, (0, 0))
                total[entry_id] = (was[0] + lacks, was[1] + has)
        return [Evidence(e, "identity", float(lacks), "", second=float(has)) for e, (lacks, has) in total.items()]
