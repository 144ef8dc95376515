"""The frozen per-request context: built once by the route, read by every stage of the pipeline."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from guard.checks.conversation import Conversation
from guard.checks.evidence import Segment
from guard.openai.protocol import ChatCompletionRequest, CompletionRequest, Endpoint
from guard.policy import Policy, PolicySet


@dataclass(frozen=True)
class RequestContext:
    endpoint: Endpoint
    model: str
    n: int
    stream: bool
    request_id: str
    client: str | None  # a fingerprint of the caller's API key for the audit trail, never the key
    route: str | None  # the A/B route the caller asked for (header), if any
    policy: Policy  # the request's policy until an entry matches (then the matched entry's policy rules)
    policies: PolicySet  # the set this request reads throughout: its default is `policy` (`PolicySet.for_request`)
    body: Mapping[str, Any]  # the body as received: forwarded as is unless a rewrite changes a copy
    conversation: Conversation  # what the input checks read
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def build(
        cls,
        endpoint: Endpoint,
        body: dict[str, Any],
        request: ChatCompletionRequest | CompletionRequest,
        policies: PolicySet,
        *,
        request_id: str,
        client: str | None = None,
        key_id: str | None = None,
        route: str | None = None,
        started: float | None = None,
    ) -> RequestContext:
        """`key_id`: the id of the caller's checked API key (`guard.policy.key_id`), for policies bound to it."""
        policies = policies.for_request(request.model, key_id)
        window = policies.settings.window_turns
        if isinstance(request, ChatCompletionRequest):
            turns = [
                Segment(f"messages[{i}].{field}", text, m.role)
                for i, m in enumerate(request.messages)
                for field, text in m.texts()
            ]
            conversation = Conversation(tuple(turns), window)
        else:
            conversation = Conversation.of([(f"prompt[{i}]", p) for i, p in enumerate(request.prompts())], window)
        return cls(
            endpoint=endpoint,
            model=request.model,
            n=request.n or 1,
            stream=request.stream,
            request_id=request_id,
            client=client,
            route=route,
            policy=policies.default,
            policies=policies,
            body=body,
            conversation=conversation,
            started=time.perf_counter() if started is None else started,
        )
