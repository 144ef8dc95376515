"""The OpenAI-compatible endpoints: parse, hand to the pipeline, map its result to HTTP. Nothing else."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from starlette.background import BackgroundTask

from guard.api.auth import require_api_key
from guard.context import RequestContext
from guard.openai.protocol import ChatCompletionRequest, CompletionRequest, Endpoint, parse_body
from guard.pipeline.guard import Guard
from guard.pipeline.json import JsonResult
from guard.pipeline.stream import StreamResult
from guard.routing import ROUTE_HEADER
from guard.services import services

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
