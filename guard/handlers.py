"""The app's exception handlers: every error leaves as an OpenAI-shaped body, counted in the metrics."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from guard.errors import GuardError, error_body
from guard.observe.metrics import Metrics

log = logging.getLogger("guard")


def install_handlers(app: FastAPI, metrics: Metrics) -> None:
    @app.exception_handler(GuardError)
    async def guard_error(request: Request, exc: GuardError) -> JSONResponse:
        metrics.errors.labels(str(exc.status_code), exc.error_type).inc()
        if exc.status_code >= 500:
            log.warning(
                "request failed",
                extra={"error": type(exc).__name__, "status": exc.status_code, "request_id": _rid(request)},
            )
        return JSONResponse(exc.body(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        metrics.errors.labels("422", "invalid_request_error").inc()
        message, param = _first_problem(exc)
        return JSONResponse(error_body(message, "invalid_request_error", param), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        metrics.errors.labels(str(exc.status_code), kind).inc()
        return JSONResponse(error_body(str(exc.detail), kind), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error", extra={"error": type(exc).__name__, "request_id": _rid(request)})
        metrics.errors.labels("500", "internal_error").inc()
        return JSONResponse(error_body("internal error in forget-guard", "internal_error"), status_code=500)


def _first_problem(exc: RequestValidationError) -> tuple[str, str | None]:
    """The message and the field (`param`) of a request body's first problem."""
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    message = f"{param}: {first['msg']}" if param else str(first["msg"])
    if first.get("type") == "json_invalid":  # loc holds the byte offset here, not a field
        ctx = first.get("ctx")
        reason = ctx.get("error", "") if isinstance(ctx, dict) else ""
        message, param = f"request body is not valid JSON ({reason}) at position {loc[-1] if loc else 0}", None
    return message, param


def _rid(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)
