"""LiteLLM's Generic Guardrail API (`POST /beta/litellm_basic_guardrail_api`): the guard as a LiteLLM guardrail.

LiteLLM (`guardrail: generic_guardrail_api`, modes `pre_call` / `post_call`) sends the texts it took from a request
(`input_type: request`, with the messages and their roles as `structured_messages`) or from an answer (`response`,
the answer's texts only) and expects `{action: NONE | BLOCKED | GUARDRAIL_INTERVENED, blocked_reason, texts}`.

- request → the input check on the rebuilt conversation: refuse → BLOCKED with the policy's refusal text as the
  reason; rewrite → GUARDRAIL_INTERVENED with the texts redacted as the policy says and its instruction ahead of the
  first. Its context and watch are kept under the call id (`guard.pipeline.recall`) for the answer.
- response → the output check on the answer's texts, with that call's question and watch when its request was
  checked here (pre_call); a leak → BLOCKED with the refusal text.
- policies: LiteLLM's `user_api_key_hash` is the SHA-256 of the caller's LiteLLM key, so its first 16 characters are
  that key's id as the guard's policy files name clients (`applies_to.clients`); without one (LiteLLM's master key
  arrives as "litellm_proxy_master_key"), the key LiteLLM itself called the guard with binds, as on the proxy.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from guard.api.auth import require_gateway_key
from guard.api.scan import Scanned, context, scan_input, scan_output
from guard.checks.evidence import NO_WATCH, Action
from guard.context import RequestContext
from guard.openai.protocol import MAX_MESSAGES, MAX_PARTS
from guard.policy import KEY_ID_CHARS
from guard.services import Services, services

HEX = frozenset("0123456789abcdef")


class LiteLLMRequestData(BaseModel):
    model_config = ConfigDict(extra="allow")

    user_api_key_hash: str | None = None
    user_api_key_team_id: str | None = None
    user_api_key_end_user_id: str | None = None


class GuardrailRequest(BaseModel):
    """What LiteLLM's `GenericGuardrailAPIRequest` (litellm/types/proxy/guardrails/...) sends; unknown fields pass."""

    model_config = ConfigDict(extra="allow")

    input_type: Literal["request", "response"]
    texts: list[str] | None = Field(None, max_length=MAX_MESSAGES * 4)
    images: list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    structured_messages: list[dict[str, Any]] | None = Field(None, max_length=MAX_MESSAGES)
    request_data: LiteLLMRequestData = Field(default_factory=LiteLLMRequestData)
    litellm_call_id: str | None = None
    litellm_trace_id: str | None = None
    additional_provider_specific_params: dict[str, Any] | None = None
    model: str | None = None


class GuardrailResponse(BaseModel):
    action: Literal["NONE", "BLOCKED", "GUARDRAIL_INTERVENED"]
    blocked_reason: str | None = None
    texts: list[str] | None = None


router = APIRouter(dependencies=[Depends(require_gateway_key)], tags=["gateways"])


@router.post("/beta/litellm_basic_guardrail_api", response_model=GuardrailResponse, response_model_exclude_none=True)
async def litellm_guardrail(request: Request, ask: GuardrailRequest) -> GuardrailResponse:
    """LiteLLM's generic guardrail hook: the input check for `request`, the output check for `response`."""
    _bind(request, ask.request_data)
    texts = ask.texts or []
    if ask.input_type == "response":
        return await _response(request, ask, texts)
    messages = _messages(ask, texts)
    if not messages:
        return GuardrailResponse(action="NONE")
    app = services(request)
    ctx = context(request, ask.model or "-", messages)
    scanned = await scan_input(app, ctx)
    if ask.litellm_call_id:
        app.recall.keep(ask.litellm_call_id, ctx, scanned.watch)
    if scanned.verdict.action is Action.rewrite and texts:
        return _answer(scanned, await _rewritten_texts(app, ctx, scanned, texts))
    return _answer(scanned)


async def _response(request: Request, ask: GuardrailRequest, texts: list[str]) -> GuardrailResponse:
    answer = "\n".join(t for t in texts if t.strip())
    if not answer:
        return GuardrailResponse(action="NONE")
    app = services(request)
    asked = app.recall.get(ask.litellm_call_id) if ask.litellm_call_id else None
    if asked is not None:
        ctx, watch = asked.ctx, asked.watch
    else:  # post_call only: the answer is read alone
        ctx, watch = context(request, ask.model or "-", [{"role": "assistant", "content": answer}]), NO_WATCH
    return _answer(await scan_output(app, ctx, watch, answer))


def _bind(request: Request, data: LiteLLMRequestData) -> None:
    """LiteLLM's caller key, by its hash, binds the policies set for it (see the module's docstring)."""
    hashed = (data.user_api_key_hash or "").lower()
    if len(hashed) >= KEY_ID_CHARS and set(hashed) <= HEX:
        request.state.key_id = hashed[:KEY_ID_CHARS]


def _messages(ask: GuardrailRequest, texts: list[str]) -> list[dict[str, Any]]:
    """The conversation as LiteLLM saw it: its structured messages (roles), else the texts as the user's."""
    rows = [
        {k: v for k, v in m.items() if k in ("role", "content", "name", "tool_calls")}
        for m in ask.structured_messages or []
        if isinstance(m.get("role"), str) and m.get("role")
    ]
    rows = [r for r in rows if isinstance(r.get("content"), str | list | None)]
    for row in rows:
        if isinstance(row.get("content"), list):
            row["content"] = row["content"][:MAX_PARTS]
    return rows or [{"role": "user", "content": t} for t in texts if t.strip()]


def _answer(scanned: Scanned, texts: list[str] | None = None) -> GuardrailResponse:
    verdict = scanned.verdict
    if verdict.blocked:
        return GuardrailResponse(action="BLOCKED", blocked_reason=verdict.refusal_text)
    if texts is not None:
        return GuardrailResponse(action="GUARDRAIL_INTERVENED", texts=texts)
    return GuardrailResponse(action="NONE")


async def _rewritten_texts(app: Services, ctx: RequestContext, scanned: Scanned, texts: list[str]) -> list[str]:
    """LiteLLM writes texts back one for one: each as the policy redacts it, the instruction ahead of the first
    (where the proxy puts it in a system message of its own)."""
    body = {"model": ctx.model, "messages": [{"role": "user", "content": t} for t in texts]}
    rewritten = await app.guard.rewritten(replace(ctx, body=body), scanned.verdict)
    messages: list[dict[str, Any]] = list(rewritten["messages"])  # type: ignore[call-overload]
    out = [str(m["content"]) for m in messages[1:]]
    return [f"{messages[0]['content']}\n\n{out[0]}", *out[1:]]
