"""The optional judge: a language model asked about the uncertain band only (off by default).

The checks leave some conversations uncertain: evidence too weak to act on, strong enough to watch (a surname
alone, two fact values, meaning near an entry). With a judge configured (`GUARD_JUDGE_URL`, any OpenAI-compatible
endpoint: the upstream model itself or another), the guard asks it, for those requests only and within
`judge_timeout_s`, whether the conversation is about one of the watched entries (input) or whether the answer
reveals facts about one of them (output). A named candidate refuses the request / filters the answer; "none", a
reply it cannot read, an error or the time limit leave the checks' verdict as it was (the watch still holds).
Each ruling's outcome and latency are counted (`guard_judge_rulings`, `guard_judge_seconds`) and logged without
text.

What the judge is shown: the conversation (or answer) and the watched entries' subjects — the same text the
upstream sees, sent to an endpoint the operator chose. Its quality is that of the model behind it, and it has not
been measured here (tests use a scripted fake): a capable model is needed, a 135M one is unlikely to do.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import httpx

log = logging.getLogger("guard.judge")

Outcome = Literal["match", "none", "unreadable", "error", "timeout"]
MAX_CHARS = 4000  # the most recent text shown to the judge
MAX_CANDIDATES = 5
_NUMBER = re.compile(r"\d+")

QUESTIONS = {
    "input": "Is this conversation asking about one of these subjects, by name or by describing it?",
    "output": "Does this text reveal facts about one of these subjects?",
}


@dataclass(frozen=True)
class Ruling:
    outcome: Outcome
    seconds: float
    entry_id: str | None = None  # the candidate the judge named (outcome "match")


class Judge:
    def __init__(
        self,
        url: str,
        model: str,
        timeout_s: float = 2.0,
        api_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/") + "/v1/chat/completions"
        self.model = model
        self.timeout_s = timeout_s
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.AsyncClient(headers=headers, timeout=timeout_s, transport=transport)

    async def aclose(self) -> None:
        await self.client.aclose()

    def prompt(self, stage: str, text: str, subjects: Sequence[str]) -> list[dict[str, str]]:
        listed = "\n".join(f"{i}. {s}" for i, s in enumerate(subjects, 1))
        return [
            {
                "role": "system",
                "content": "You are a strict classifier. Reply with one number only: the number of the subject, "
                "or 0 if none.",
            },
            {
                "role": "user",
                "content": f"Subjects:\n{listed}\n\nText:\n{text[-MAX_CHARS:]}\n\n{QUESTIONS[stage]} Reply with "
                "its number, or 0.",
            },
        ]

    async def rule(self, stage: str, text: str, candidates: Sequence[tuple[str, str]]) -> Ruling:
        """`candidates`: (entry id, subject) pairs, at most `MAX_CANDIDATES` are shown. Never raises."""
        candidates = list(candidates)[:MAX_CANDIDATES]
        started = time.perf_counter()
        body = {
            "model": self.model,
            "messages": self.prompt(stage, text, [s for _, s in candidates]),
            "temperature": 0,
            "max_tokens": 4,
        }
        try:
            response = await asyncio.wait_for(self.client.post(self.url, json=body), self.timeout_s)
            response.raise_for_status()
            reply = response.json()["choices"][0]["message"]["content"] or ""
        except TimeoutError:
            return self._ruled(stage, Ruling("timeout", time.perf_counter() - started))
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError):
            return self._ruled(stage, Ruling("error", time.perf_counter() - started))
        seconds = time.perf_counter() - started
        found = _NUMBER.search(reply)
        if found is None or int(found.group()) > len(candidates):
            return self._ruled(stage, Ruling("unreadable", seconds))
        number = int(found.group())
        if number == 0:
            return self._ruled(stage, Ruling("none", seconds))
        return self._ruled(stage, Ruling("match", seconds, candidates[number - 1][0]))

    def _ruled(self, stage: str, ruling: Ruling) -> Ruling:
        log.info(
            "judge",
            extra={
                "stage": stage,
                "outcome": ruling.outcome,
                "ms": round(ruling.seconds * 1000, 1),
                "entry": ruling.entry_id,
            },
        )
        return ruling
