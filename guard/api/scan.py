"""The scan API (`POST /v1/guard/check`): the guard's checks without the proxy, for a gateway's webhook.

In: the messages (input scan), or the messages with the answer to them (output scan). Out: the verdict — action,
entry ids, the ruling policy's refusal text, the kinds of evidence — never forgotten text. The watch state the output
check needs is the conversation itself: an output scan runs the input check on the same messages first, so it
applies exactly the watch the in-line proxy would. Policies bind to the caller's key and the model as the proxy
binds them (`RequestContext.build`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from guard.api.auth import require_api_key
from guard.checks.evidence import Action, Verdict, Watch
from guard.context import RequestContext
from guard.errors import ValidationFailed
from guard.openai.protocol import MAX_MESSAGES, ChatCompletionRequest, ChatMessage
from guard.services import Services, services

MAX_ANSWER_CHARS = 1_000_000


class ScanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field("", description="the model the request is for: policies bound to models apply")
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    answer: str | None = Field(
        None, max_length=MAX_ANSWER_CHARS, description="the model's answer to `messages`: scans the output"
    )


class ScanResponse(BaseModel):
    stage: Literal["input", "output"]
    action: Literal["allow", "rewrite", "refuse", "filter"]
    blocked: bool = Field(description="refuse (input) or filter (output): replace the request or answer")
    entry_ids: list[str]
    evidence: list[str] = Field(description="the kinds of evidence that counted: name, semantic, fact, …")
    refusal_text: str | None = Field(None, description="what to answer instead, from the ruling policy")
    watched: list[str] = Field(default_factory=list, description="entries the output check will be strict for")
    messages: list[dict[str, Any]] | None = Field(
        None,
        description="the rewritten messages (action rewrite): the policy's instruction names the subjects, as the "
        "proxy sends it to the model; send them on to the model, never back to the client",
    )


@dataclass(frozen=True)
class Scanned:
    stage: Literal["input", "output"]
    verdict: Verdict
    watch: Watch
    rewritten: dict[str, Any] | None = None


def context(request: Request, model: str, messages: list[dict[str, Any]]) -> RequestContext:
    """The request context the proxy would build for these messages, with the caller's key-bound policies."""
    body = {"model": model, "messages": messages}
    try:
        parsed = ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:  # a gateway's rows the proxy would refuse too: the client's mistake, a 422
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"])
        raise ValidationFailed(f"{param}: {first['msg']}", param=param) from exc
    return RequestContext.build(
        "chat",
        body,
        parsed,
        services(request).policies,
        request_id=request.state.request_id,
        client=request.state.client,
        key_id=request.state.key_id,
    )


async def scan_input(app: Services, ctx: RequestContext) -> Scanned:
    """The input check as the proxy runs it, the rewrite it would send, and the watch its output check gets."""
    guard = app.guard
    verdict = await guard.checker.input(ctx)
    rewritten = await guard.rewritten(ctx, verdict) if verdict.action is Action.rewrite else None
    watch = guard.checker.watch(ctx, verdict)
    return Scanned("input", verdict, watch, rewritten)


async def scan_output(app: Services, ctx: RequestContext, watch: Watch, answer: str) -> Scanned:
    verdict = await app.guard.checker.output(ctx, watch)([("content", answer)])
    return Scanned("output", verdict, watch)


def response(scanned: Scanned) -> ScanResponse:
    verdict = scanned.verdict
    return ScanResponse(
        stage=scanned.stage,
        action=verdict.action.value,
        blocked=verdict.blocked,
        entry_ids=verdict.entry_ids,
        evidence=sorted({m.kind for m in verdict.matches}),
        refusal_text=verdict.refusal_text if verdict.blocked else None,
        watched=sorted(scanned.watch.entries),
        messages=list(scanned.rewritten["messages"]) if scanned.rewritten else None,
    )


router = APIRouter(dependencies=[Depends(require_api_key)], tags=["scan"])


@router.post("/v1/guard/check", response_model=ScanResponse)
async def check(request: Request, scan: ScanRequest) -> ScanResponse:
    """Scan a conversation (input), or an answer with the conversation it answers (output)."""
    app = services(request)
    messages = [m.model_dump(exclude_none=True) for m in scan.messages]
    ctx = context(request, scan.model or "-", messages)
    scanned = await scan_input(app, ctx)
    if scan.answer is not None and not scanned.verdict.blocked:
        scanned = await scan_output(app, ctx, scanned.watch, scan.answer)
    return response(scanned)
