"""What the checks read: a request's conversation and a response's text, cut into located segments.

The input side reads every message of every role (system, developer, user, assistant, tool), every text field
of it (content and its parts, `name`, tool calls, reasoning) or every prompt (completions). Names are looked for
in all of it; meaning is compared for the user turns and the recent window (the last `window_turns` texts the
client wrote, joined, so a question spread over turns is seen whole). Every segment is also read in its normalised views
(`guard.normalize`): other spellings, scripts and encodings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from guard.checks.evidence import Segment
from guard.normalize import views
from guard.text import sentences

MAX_SEGMENTS = 256  # bound the embedding work of one request
VIEW = "~"  # separates a segment's place from the name of a normalised view of it
MEANING_ROLES = ("user", "window", "")  # whose text is compared by meaning on the input side


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
        with the new answer."""
        client = [t.text for t in self.turns if t.role != "assistant" and t.text.strip()]
        recent = client[-self.window_turns :]
        return Segment("window", "\n".join(recent), "window") if len(recent) > 1 else None

    def segments(self) -> list[Segment]:
        """What the checks read: the turns and the window."""
        window = self.window()
        return [*self.turns, window] if window else list(self.turns)

    def said_by(self, role: str) -> str:
        return "\n".join(t.text for t in self.turns if t.role == role)


def expand(segments: Sequence[Segment]) -> list[Segment]:
    """The segments and their normalised views (each view once)."""
    out: list[Segment] = []
    seen: set[str] = set()
    for segment in segments:
        if segment.text not in seen:
            seen.add(segment.text)
            out.append(segment)
        for name, view in views(segment.text):
            if view not in seen:
                seen.add(view)
                out.append(Segment(f"{segment.where}{VIEW}{name}", view, segment.role))
    return out


def input_pieces(segments: Sequence[Segment]) -> list[Segment]:
    """The pieces the input's semantic check embeds: each user turn, each sentence of a longer one, the
    window — and their decoded views (a question asked in base64 is compared as the question)."""
    out: dict[str, Segment] = {}
    for segment in segments:
        if not segment.text.strip() or segment.role not in MEANING_ROLES:
            continue
        out.setdefault(segment.text, segment)
        parts = sentences(segment.text)
        if len(parts) > 1:
            for part in parts:
                out.setdefault(part, Segment(segment.where, part, segment.role))
    # keep the most recent pieces when the conversation is very long
    return list(out.values())[-MAX_SEGMENTS:]


def output_pieces(segments: Sequence[Segment]) -> list[Segment]:
    """The pieces the output's semantic check embeds: each generated sentence, in the text and its views."""
    pieces = [Segment(s.where, part, s.role) for s in segments if s.role != "history" for part in sentences(s.text)]
    return list({p.text: p for p in pieces}.values())[:MAX_SEGMENTS]
