"""create_app(settings): everything is built here (in the lifespan) into one `Services` — no globals."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from guard import __version__
from guard.admin.coverage import router as coverage_router
from guard.admin.operators import router as operators_router
from guard.admin.routes import router as admin_router
from guard.console.routes import router as console_router
from guard.errors import AuthError, Forbidden, GuardError, error_body
from guard.forget.backends import open_registry
from guard.forget.embedder import CachedEmbedder, Embedder, make_embedder
from guard.forget.index import ForgetIndex
from guard.forget.meaning import MeaningIndex, VectorCache
from guard.forget.remote import RemoteEmbedder
from guard.judge import Judge
from guard.limits import BodyLimit, RequestId
from guard.observe.audit import AuditLog, Hasher, load_salt
from guard.observe.decisions import Decisions
from guard.observe.metrics import CONTENT_TYPE, Metrics
from guard.openai.routes import document
from guard.openai.routes import router as openai_router
from guard.pipeline.cascade import SPACE
from guard.pipeline.guard import Guard
from guard.policy import PolicySet
from guard.policy_watch import PolicyWatcher
from guard.routing import Router
from guard.services import Services, services
from guard.settings import Settings
from guard.upstream import Upstream, make_client

log = logging.getLogger("guard")


def _meaning(settings: Settings, embedder: Embedder | None, meaning: Embedder | None) -> MeaningIndex | None:
    if meaning is None and (embedder is not None or settings.embedding.multilingual == "off"):
        return None
    model = meaning or make_embedder(settings.embedding.multilingual)
    if settings.embedding.cache:  # a chat re-sends its earlier turns: ~40 ms each on e5, paid once
        model = CachedEmbedder(model, settings.embedding.cache)
    index_dir = settings.registry.index_dir
    index_dir.mkdir(parents=True, exist_ok=True)
    return MeaningIndex(model, VectorCache(index_dir / "meaning-vectors.sqlite", model.name))


def _embedder(settings: Settings) -> Embedder:
    server = settings.embedding_server
    if server.url is None:
        return make_embedder(settings.embedding.kind, settings.embedding.model_cache)
    key = server.api_key.get_secret_value() if server.api_key else None
    return RemoteEmbedder(server.url, server.model, api_key=key, timeout_s=server.timeout_s, truncate=server.truncate)


def first_stage(settings: Settings, space: str) -> Embedder | None:
    """The int8 first stage of the request path's embeddings (`guard.pipeline.cascade`), for the float MiniLM."""
    embedding = settings.embedding
    if embedding.first_stage == "off" or space != SPACE or settings.embedding_server.url is not None:
        return None
    fast = make_embedder(embedding.first_stage, embedding.model_cache)
    return CachedEmbedder(fast, embedding.cache) if embedding.cache else fast


def create_app(
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    meaning: Embedder | None = None,
    fast: Embedder | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    judge_transport: httpx.AsyncBaseTransport | None = None,
    checks: bool = True,
) -> FastAPI:
    """Build an app. `embedder`, `meaning`, `fast`, `transport` and `judge_transport` are seams for tests (a fake
    embedder, MockTransports).
    With an `embedder` given and no `meaning`, multilingual meaning is off (tests of other things stay fast); with
    no `fast` either, there is no first stage. `checks=False` is the benchmarks' bare pass-through proxy
    (`python -m bench.bare`): every check off, nothing enforced; no setting turns it on."""
    policies = PolicySet.load(settings.policy.file)  # a bad policy fails here, before anything starts
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        emb = embedder or _embedder(settings)
        if settings.embedding.cache:
            emb = CachedEmbedder(emb, settings.embedding.cache)
        dsn = settings.registry.dsn.get_secret_value() if settings.registry.dsn else None
        index = await ForgetIndex.open(
            open_registry(dsn, settings.registry.index_dir, emb.dim),
            emb,
            ngram_words=policies.settings.ngram_words,
            typo_min_chars=policies.settings.typo_min_chars,
            meaning=_meaning(settings, embedder, meaning),
        )
        follower = asyncio.create_task(
            index.follow(settings.registry.poll_s, settings.registry.change_log_keep), name="registry-follower"
        )
        metrics.watch_index(
            lambda: len(index),
            lambda: index.chunk_count,
            lambda: index.version,
            lambda: float(index.reachable),
            lambda: index.synced_at,
        )
        audit = AuditLog(
            settings.audit_path(), rotate_bytes=settings.audit.rotate_bytes, fsync_all=settings.audit.fsync == "all"
        )
        # one salt for the fleet, kept in the registry: the first replica's local salt becomes everyone's
        salt = await index.registry.claim_salt(load_salt(settings.registry.index_dir / "salt").hex())
        hasher = Hasher(bytes.fromhex(salt))
        if settings.server.log_content:
            log.warning("log_content is on: prompts and completions will be written to the logs (debug only)")
        upstreams = settings.upstreams
        api_key = upstreams.api_key.get_secret_value() if upstreams.api_key else None
        client = make_client(
            api_key=api_key,
            connect_timeout_s=upstreams.connect_timeout_s,
            read_timeout_s=upstreams.read_timeout_s,
            transport=transport,
        )
        router = Router(
            a=Upstream(client, upstreams.urls, upstreams.models, vllm=upstreams.vllm),
            b=Upstream(client, settings.ab.url) if settings.ab.url else None,
            share=settings.ab.share,
            shadow=settings.ab.shadow,
        )
        decisions = Decisions(metrics, hasher, audit, settings.server.log_content)
        judge = None
        if settings.judge.url:
            judge_key = settings.judge.api_key.get_secret_value() if settings.judge.api_key else None
            judge = Judge(
                settings.judge.url, settings.judge.model, settings.judge.timeout_s, judge_key, judge_transport
            )
            log.info("judge on", extra={"timeout_s": settings.judge.timeout_s})
        local = fast is None and embedder is None and checks  # a bare proxy embeds nothing
        stage = first_stage(settings, emb.space) if local else fast
        guard = Guard(
            index,
            policies,
            router,
            decisions,
            checks=checks,
            judge=judge,
            fast=stage,
            audit_every=settings.embedding.first_stage_audit,
        )
        guard.drain.bind()  # a signal handler starts the drain on this loop (guard/cli.py)
        if not checks:
            log.warning("checks are off: a bare pass-through proxy that enforces nothing (benchmarks only)")

        async def entry_policies() -> list[str | None]:
            return [e.policy for e in await index.run(index.entries)]

        def reloaded(outcome: str) -> None:
            metrics.policy_reloads.labels(outcome).inc()
            audit.write("policy.reload", {"outcome": outcome, "policies": policies.names()})

        watcher = PolicyWatcher(
            policies, settings.policy.file, entry_policies, interval_s=settings.policy.reload_s, on_reload=reloaded
        )
        watcher.start()
        app.state.services = Services(settings, policies, metrics, index, guard, audit, hasher, watcher, decisions)
        log.info(
            "ready",
            extra={
                "entries": len(index),
                "chunks": index.chunk_count,
                "version": index.version,
                "registry": index.registry.backend,
            },
        )
        try:
            yield
        finally:
            await watcher.stop()
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
            await guard.drain_shadows()
            await client.aclose()
            if judge is not None:
                await judge.aclose()
            guard.close()
            await index.aclose()
            emb.close()
            if local and stage is not None:  # made here (a test's or an eval's stage is its owner's to close)
                stage.close()
            audit.close()

    app = FastAPI(title="forget-guard", version=__version__, lifespan=lifespan)
    app.include_router(openai_router)
    app.include_router(admin_router)
    app.include_router(coverage_router)
    app.include_router(operators_router)
    if settings.server.console:
        app.include_router(console_router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/healthz")
    async def healthz(request: Request) -> dict[str, object]:
        return services(request).health()

    @app.get("/metrics", include_in_schema=False)
    async def prometheus(request: Request) -> Response:
        expected = settings.access.metrics_token
        if expected is not None:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise AuthError("missing bearer token: send 'Authorization: Bearer <metrics token>'")
            if not hmac.compare_digest(token.encode(), expected.get_secret_value().encode()):
                raise Forbidden("invalid metrics token")
        return Response(metrics.render(), media_type=CONTENT_TYPE)

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
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        param = ".".join(loc) or None
        message = f"{param}: {first['msg']}" if param else str(first["msg"])
        if first.get("type") == "json_invalid":  # loc holds the byte offset here, not a field
            ctx = first.get("ctx")
            reason = ctx.get("error", "") if isinstance(ctx, dict) else ""
            message, param = f"request body is not valid JSON ({reason}) at position {loc[-1] if loc else 0}", None
        metrics.errors.labels("422", "invalid_request_error").inc()
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

    app.add_middleware(RequestId)
    app.add_middleware(BodyLimit, max_bytes=settings.server.max_body_bytes)
    return app


def _rid(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)
