"""The OpenAI-compatible endpoints: parse, hand to the pipeline, map its result to HTTP. Nothing else."""

from __future__ import annotations

import hmac
import time
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from starlette.background import BackgroundTask

from guard.api.auth import bearer
from guard.context import RequestContext
from guard.errors import AuthError
from guard.openai.protocol import ChatCompletionRequest, CompletionRequest, Endpoint, parse_body
from guard.pipeline.guard import Guard
from guard.pipeline.json import JsonResult
from guard.pipeline.stream import StreamResult
from guard.policy import key_id
from guard.routing import ROUTE_HEADER
from guard.services import services


async def require_api_key(request: Request) -> None:
    """When API keys are configured, /v1/* needs one of them (the admin token is not one unless listed).

    Every key is compared, in constant time, so the time taken says nothing about which key nearly matched.
    """
    keys: list[bytes] = services(request).settings.client_keys()
    request.state.client = request.state.key_id = None
    if not keys:
        return
    given = (bearer(request) or "").encode()
    matched = None
    for i, key in enumerate(keys):
        if hmac.compare_digest(given, key) and matched is None:
            matched = i
    if not given or matched is None:
        raise AuthError("invalid or missing API key: send 'Authorization: Bearer <key>'", code="invalid_api_key")
    request.state.client = f"key-{services(request).hasher(given.decode())[:8]}"
    request.state.key_id = key_id(given.decode())  # the policies bound to this key (unsalted: set in files)


router = APIRouter(dependencies=[Depends(require_api_key)])


def _body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """The route reads its body itself (to forward unknown fields untouched); the schema is documented here."""
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the request models to an OpenAPI document (clients, docs and schemathesis read them)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (ChatCompletionRequest, CompletionRequest):
        js = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(js.pop("$defs", {}))
        components[model.__name__] = js
    return schema


def _headers(action: str, overhead_ms: float, request_id: str, route: str) -> dict[str, str]:
    return {
        "x-guard-action": action,
        "x-guard-overhead-ms": f"{overhead_ms:.2f}",
        "x-guard-upstream": route,
        "x-request-id": request_id,
    }


async def _proxy(request: Request, endpoint: Endpoint) -> Response:
    app = services(request)
    guard: Guard = app.guard
    started = time.perf_counter()
    raw = await request.body()
    body, parsed = parse_body(raw, ChatCompletionRequest) if endpoint == "chat" else parse_body(raw, CompletionRequest)
    ctx = RequestContext.build(
        endpoint,
        body,
        parsed,
        app.policies,
        request_id=request.state.request_id,
        client=request.state.client,
        key_id=request.state.key_id,
        route=request.headers.get(ROUTE_HEADER),
        started=started,
    )
    app.metrics.stage_seconds.labels("parse").observe(time.perf_counter() - started)
    result = await guard.handle(ctx)
    headers = _headers(result.action.value, result.overhead_ms, ctx.request_id, result.route)
    if isinstance(result, StreamResult):
        return StreamingResponse(
            result.chunks,
            media_type="text/event-stream",
            headers={**headers, "cache-control": "no-cache", "x-accel-buffering": "no"},
            background=BackgroundTask(result.close) if result.close else None,
        )
    assert isinstance(result, JsonResult)
    return JSONResponse(result.body, headers=headers)


@router.post("/v1/chat/completions", openapi_extra=_body_doc(ChatCompletionRequest))
async def chat_completions(request: Request) -> Response:
    return await _proxy(request, "chat")


@router.post("/v1/completions", openapi_extra=_body_doc(CompletionRequest))
async def completions(request: Request) -> Response:
    return await _proxy(request, "completions")


@router.get("/v1/models")
async def models(request: Request) -> Response:
    guard = services(request).guard
    body = await guard.router.a.get_json("/v1/models")  # passed through: nothing to check, no overhead to speak of
    return JSONResponse(body, headers=_headers("allow", 0.0, request.state.request_id, "a"))
