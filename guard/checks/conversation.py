"""What the checks read: a request's conversation and a response's text, cut into located segments.

The input side reads every user turn (chat) or every prompt (completions), each located by its place in the
request, plus the last `window_turns` turns joined (a question spread over turns is seen whole). The output side
reads the generated text of one choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from guard.checks.evidence import Segment
from guard.text import sentences

MAX_SEGMENTS = 256  # bound the embedding work of one request


@dataclass(frozen=True)
class Conversation:
    turns: tuple[Segment, ...]  # the texts read for names and meaning, in order
    window_turns: int

    @classmethod
    def of(cls, turns: Sequence[tuple[str, str]], window_turns: int) -> Conversation:
        """From (where, text) pairs."""
        return cls(tuple(Segment(where, text) for where, text in turns), window_turns)

    def texts(self) -> list[str]:
        return [t.text for t in self.turns]

    def window(self) -> Segment | None:
        recent = [t.text for t in self.turns[-self.window_turns :] if t.text.strip()]
        return Segment("window", "\n".join(recent)) if len(recent) > 1 else None

    def segments(self) -> list[Segment]:
        """What the checks read: the turns and the window."""
        window = self.window()
        return [*self.turns, window] if window else list(self.turns)


def input_pieces(segments: Sequence[Segment]) -> list[Segment]:
    """The pieces the input's semantic check embeds: each turn, each sentence of a longer turn, the window."""
    out: dict[str, Segment] = {}
    for segment in segments:
        if not segment.text.strip():
            continue
        out.setdefault(segment.text, segment)
        parts = sentences(segment.text)
        if len(parts) > 1:
            for part in parts:
                out.setdefault(part, Segment(segment.where, part))
    # keep the most recent pieces when the conversation is very long
    return list(out.values())[-MAX_SEGMENTS:]


def output_pieces(segments: Sequence[Segment]) -> list[Segment]:
    """The pieces the output's semantic check embeds: each generated sentence."""
    return [Segment(s.where, part) for s in segments for part in sentences(s.text)]
