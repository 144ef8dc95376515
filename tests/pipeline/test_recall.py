"""What the hook keeps between a call's request check and its answer's: bounded in count and age, and slim."""

from __future__ import annotations

from guard.checks.evidence import Watch
from guard.context import RequestContext
from guard.openai.protocol import ChatCompletionRequest
from guard.pipeline.recall import Recall
from guard.policy import PolicySet
from guard.settings import REPO_ROOT


def ctx(text: str) -> RequestContext:
    body = {"model": "m", "messages": [{"role": "user", "content": text}]}
    policies = PolicySet.load(REPO_ROOT / "policies" / "default.yaml")
    return RequestContext.build("chat", body, ChatCompletionRequest.model_validate(body), policies, request_id="r")


def test_kept_calls_are_bounded_slim_and_expire() -> None:
    recall = Recall(max_calls=2)
    watch = Watch(frozenset({"e1"}), question="Who is it?")
    for call in ("a", "b", "c"):
        recall.keep(call, ctx(f"question {call}"), watch)
    assert len(recall) == 2 and recall.get("a") is None  # the oldest went first
    kept = recall.get("c")
    assert kept is not None and kept.watch == watch and kept.ctx.model == "m"
    assert kept.ctx.body == {} and kept.ctx.conversation.turns == ()  # the request's text is not kept
    stale = Recall(max_age_s=-1.0)
    stale.keep("a", ctx("q"), watch)
    assert stale.get("a") is None and len(stale) == 0
