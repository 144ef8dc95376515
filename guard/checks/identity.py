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

import numpy as np

from guard.checks.conversation import lexical
from guard.checks.evidence import Evidence, Segment
from guard.checks.lexical import keeps_case
from guard.forget.chunkwords import Hashes, details, hashes
from guard.forget.embedder import Vectors
from guard.forget.view import IndexView
from guard.text import tokens

KNOWN_DETAILS = 5  # an entry whose documents give fewer proper nouns and numbers has no namesakes


class Details(NamedTuple):
    """Per text (its place): the entries it names and the hashes of the details it gives (no text is held)."""

    said: tuple[tuple[str, frozenset[str], Hashes], ...]  # (where, entries named, hashes of its details)


class IdentityCheck:
    space = None  # embeds nothing

    def embed(self, segments: Sequence[Segment]) -> list[str]:
        return []

    def passages(self, segments: Sequence[Segment]) -> set[str]:
        return set()

    def read(self, segments: Sequence[Segment], view: IndexView, vectors: Mapping[str, Vectors]) -> Details:
        said = []
        for segment in lexical(segments):
            if not keeps_case(segment):
                continue  # the respellings say nothing new, and lose the capitals proper nouns are found by
            named = frozenset(view.find_names(segment.text))
            found = details(segment.text)
            if named or found:
                said.append((segment.where, named, hashes(found)))
        return Details(tuple(said))

    def evidence(self, readings: Sequence[Details], view: IndexView) -> list[Evidence]:
        """Per entry, the details it lacks and those it has, summed over the texts that name it. The blocks of one
        passage (`guard.checks.conversation.blocks`) are one text: a name in one block and details in another."""
        texts: dict[str, tuple[set[str], list[Hashes]]] = {}
        for reading in readings:
            for where, named, found in reading.said:
                text = texts.setdefault(where, (set(), []))
                text[0].update(named)
                text[1].append(found)
        total: dict[str, tuple[int, int]] = {}
        for entries, parts in texts.values():
            given = np.unique(np.concatenate(parts))
            for entry_id in entries:
                if view.details_known(entry_id) < KNOWN_DETAILS:
                    continue  # too little is known of the entry to tell anyone apart from it
                entry = view.get(entry_id)
                own_name = hashes(
                    t for name in ((entry.subject, *entry.aliases) if entry else ()) for t in tokens(name)
                )
                mine = np.setdiff1d(given, own_name, assume_unique=True)
                lacks = view.hashes_lacking(entry_id, mine)
                was = total.get(entry_id, (0, 0))
                total[entry_id] = (was[0] + lacks, was[1] + len(mine) - lacks)
        return [Evidence(e, "identity", float(lacks), "", second=float(has)) for e, (lacks, has) in total.items()]
