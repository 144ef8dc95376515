"""What a gateway's request-phase check leaves for the same call's response-phase check.

A gateway (LiteLLM's generic guardrail) asks about a call twice: the request's texts before the model, the answer's
texts after, with the same call id and no conversation the second time. The output check reads an answer with the
question it answers and is strict for the entries the input check watched, so the first ask leaves its context and
watch here, for a while, in memory only (never logged, never written), bounded in count and age.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, replace

from guard.checks.conversation import Conversation
from guard.checks.evidence import Watch
from guard.context import RequestContext

MAX_CALLS = 10_000  # calls between a request's check and its answer's, at most, in one replica
MAX_AGE_S = 900.0  # a model that answers later than this is read without its question


@dataclass(frozen=True)
class Asked:
    ctx: RequestContext
    watch: Watch
    at: float


class Recall:
    def __init__(self, max_calls: int = MAX_CALLS, max_age_s: float = MAX_AGE_S) -> None:
        self.max_calls, self.max_age_s = max_calls, max_age_s
        self._calls: OrderedDict[str, Asked] = OrderedDict()

    def keep(self, call_id: str, ctx: RequestContext, watch: Watch) -> None:
        # the output check reads the watch and the request's policies, not its body or conversation: not kept
        slim = replace(ctx, body={}, conversation=Conversation((), ctx.conversation.window_turns))
        self._calls[call_id] = Asked(slim, watch, time.monotonic())
        self._calls.move_to_end(call_id)
        while len(self._calls) > self.max_calls:
            self._calls.popitem(last=False)

    def get(self, call_id: str) -> Asked | None:
        """The call's request-phase context (kept: a streamed answer is asked about many times)."""
        asked = self._calls.get(call_id)
        if asked is not None and time.monotonic() - asked.at > self.max_age_s:
            del self._calls[call_id]
            return None
        return asked

    def __len__(self) -> int:
        return len(self._calls)
