"""create_app(settings): everything is built here (in the lifespan) into one `Services` — no globals.

Start-up assembles the services on one `AsyncExitStack`: each part registers its closing as soon as it is open,
so a failure at any point of start-up closes what was already opened, in reverse order, and a normal shutdown
closes everything the same way."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response

from guard import __version__
from guard.admin.coverage import router as coverage_router
from guard.admin.operators import router as operators_router
from guard.admin.routes import router as admin_router
from guard.api.auth import bearer
from guard.api.litellm import router as litellm_router
from guard.api.openai import document
from guard.api.openai import router as openai_router
from guard.api.scan import router as scan_router
from guard.console.routes import router as console_router
from guard.errors import AuthError, Forbidden
from guard.forget.backends import open_registry
from guard.forget.devices import local_embedder, resolve_device
from guard.forget.embedder import CachedEmbedder, Embedder, make_embedder
from guard.forget.index import ForgetIndex
from guard.forget.meaning import MeaningIndex, VectorCache
from guard.forget.remote import RemoteEmbedder
from guard.handlers import install_handlers
from guard.judge import Judge
from guard.limits import BodyLimit, RequestId
from guard.observe.audit import AuditLog, Hasher, load_salt
from guard.observe.decisions import Decisions
from guard.observe.metrics import CONTENT_TYPE, Metrics
from guard.pipeline.cascade import SPACE
from guard.pipeline.checker import Checker
from guard.pipeline.guard import Guard
from guard.pipeline.regressions import CoverageWatch
from guard.policy import PolicySet
from guard.policy_watch import PolicyWatcher
from guard.routing import Router
from guard.services import Services, services
from guard.settings import Settings
from guard.upstream import Upstream, make_client

log = logging.getLogger("guard")


@dataclass(frozen=True)
class Seams:
    """What a test, an evaluation or a benchmark hands `create_app` instead of what the settings would build."""

    embedder: Embedder | None = None
    meaning: Embedder | None = None
    fast: Embedder | None = None
    transport: httpx.AsyncBaseTransport | None = None
    judge_transport: httpx.AsyncBaseTransport | None = None
    checks: bool = True


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
        embedding = settings.embedding
        return local_embedder(embedding.kind, embedding.model_cache, resolve_device(embedding.device))
    key = server.api_key.get_secret_value() if server.api_key else None
    return RemoteEmbedder(server.url, server.model, api_key=key, timeout_s=server.timeout_s, truncate=server.truncate)


def first_stage(settings: Settings, space: str, device: str = "cpu") -> Embedder | None:
    """The int8 first stage of the request path's embeddings (`guard.pipeline.cascade`), for the float MiniLM; off
    by default when that runs on a GPU (`device`), which embeds a short text faster than the int8 model on the CPU."""
    embedding = settings.embedding
    if embedding.first_stage == "off" or space != SPACE or settings.embedding_server.url is not None:
        return None
    if device != "cpu" and "first_stage" not in settings.given():
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
    if embedder is None and settings.embedding_server.url is None:
        resolve_device(settings.embedding.device)  # so does GUARD_EMBEDDER_DEVICE=cuda without a CUDA device
    metrics = Metrics()
    seams = Seams(embedder, meaning, fast, transport, judge_transport, checks)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.services = await start(stack, settings, policies, metrics, seams)
            yield

    app = FastAPI(title="forget-guard", version=__version__, lifespan=lifespan)
    _routes(app, settings, metrics)
    install_handlers(app, metrics)
    app.add_middleware(RequestId)
    app.add_middleware(BodyLimit, max_bytes=settings.server.max_body_bytes)
    return app


def _routes(app: FastAPI, settings: Settings, metrics: Metrics) -> None:
    app.include_router(openai_router)
    app.include_router(scan_router)
    app.include_router(litellm_router)
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
            token = bearer(request)
            if token is None:
                raise AuthError("missing bearer token: send 'Authorization: Bearer <metrics token>'")
            if not hmac.compare_digest(token.encode(), expected.get_secret_value().encode()):
                raise Forbidden("invalid metrics token")
        return Response(metrics.render(), media_type=CONTENT_TYPE)


async def start(
    stack: AsyncExitStack, settings: Settings, policies: PolicySet, metrics: Metrics, seams: Seams
) -> Services:
    """Open every service, each one's closing pushed on `stack` as soon as it is open."""
    index, emb = await _open_index(stack, settings, policies, metrics, seams)
    audit = AuditLog(
        settings.audit_path(), rotate_bytes=settings.audit.rotate_bytes, fsync_all=settings.audit.fsync == "all"
    )
    stack.callback(audit.close)
    # one salt for the fleet, kept in the registry: the first replica's local salt becomes everyone's
    salt = await index.registry.claim_salt(load_salt(settings.registry.index_dir / "salt").hex())
    hasher = Hasher(bytes.fromhex(salt))
    if settings.server.log_content:
        log.warning("log_content is on: prompts and completions will be written to the logs (debug only)")
    decisions = Decisions(metrics, hasher, audit, settings.server.log_content)
    guard = _guard(stack, settings, index, emb, policies, decisions, seams)
    watcher = _watcher(stack, settings, index, policies, metrics, audit)
    log.info(
        "ready",
        extra={
            "entries": len(index),
            "chunks": index.chunk_count,
            "version": index.version,
            "registry": index.registry.backend,
        },
    )
    return Services(settings, policies, metrics, index, guard, audit, hasher, watcher, decisions)


async def _open_index(
    stack: AsyncExitStack, settings: Settings, policies: PolicySet, metrics: Metrics, seams: Seams
) -> tuple[ForgetIndex, Embedder]:
    """The forget index on its registry, and the registry follower that keeps it up with other replicas."""
    emb = seams.embedder or _embedder(settings)
    if settings.embedding.cache:
        emb = CachedEmbedder(emb, settings.embedding.cache)
    stack.callback(emb.close)
    meaning = _meaning(settings, seams.embedder, seams.meaning)
    if meaning is not None:  # the index closes it too; here for a registry that fails to open
        stack.callback(meaning.cache.close)
    dsn = settings.registry.dsn.get_secret_value() if settings.registry.dsn else None
    index = await ForgetIndex.open(
        open_registry(dsn, settings.registry.index_dir, emb.dim),
        emb,
        ngram_words=policies.settings.ngram_words,
        typo_min_chars=policies.settings.typo_min_chars,
        meaning=meaning,
    )
    stack.push_async_callback(index.aclose)
    follower = asyncio.create_task(
        index.follow(settings.registry.poll_s, settings.registry.change_log_keep), name="registry-follower"
    )
    stack.push_async_callback(_cancel, follower)
    metrics.watch_index(
        lambda: len(index),
        lambda: index.chunk_count,
        lambda: index.version,
        lambda: float(index.reachable),
        lambda: index.synced_at,
        lambda: float(index.upkeep_errors),
    )
    return index, emb


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _router(stack: AsyncExitStack, settings: Settings, seams: Seams) -> Router:
    """The upstreams (A, and B for a live A/B), on one pooled client."""
    upstreams = settings.upstreams
    client = make_client(
        api_key=upstreams.api_key.get_secret_value() if upstreams.api_key else None,
        connect_timeout_s=upstreams.connect_timeout_s,
        read_timeout_s=upstreams.read_timeout_s,
        transport=seams.transport,
    )
    stack.push_async_callback(client.aclose)
    ab = settings.ab
    return Router(
        a=Upstream(client, upstreams.urls, upstreams.models, vllm=upstreams.vllm),
        b=Upstream(client, ab.url) if ab.url else None,
        share=ab.share,
        shadow=ab.shadow,
    )


def _judge(stack: AsyncExitStack, settings: Settings, seams: Seams) -> Judge | None:
    config = settings.judge
    if config.url is None:
        return None
    key = config.api_key.get_secret_value() if config.api_key else None
    judge = Judge(config.url, config.model, config.timeout_s, key, seams.judge_transport)
    stack.push_async_callback(judge.aclose)
    log.info("judge on", extra={"timeout_s": config.timeout_s})
    return judge


def _guard(
    stack: AsyncExitStack,
    settings: Settings,
    index: ForgetIndex,
    emb: Embedder,
    policies: PolicySet,
    decisions: Decisions,
    seams: Seams,
) -> Guard:
    router = _router(stack, settings, seams)
    judge = _judge(stack, settings, seams)
    local = seams.fast is None and seams.embedder is None and seams.checks  # a bare proxy embeds nothing
    stage = first_stage(settings, emb.space, emb.device) if local else seams.fast
    if local and stage is not None:  # made here (a test's or an eval's stage is its owner's to close)
        stack.callback(stage.close)
    checker = Checker(
        index,
        policies,
        decisions,
        enabled=seams.checks,
        judge=judge,
        fast=stage,
        audit_every=settings.embedding.first_stage_audit,
        coverage=CoverageWatch(index, decisions),
    )
    stack.callback(checker.close)
    guard = Guard(index, checker, router)
    stack.push_async_callback(guard.drain_shadows)
    guard.drain.bind()  # a signal handler starts the drain on this loop (guard/cli.py)
    if not seams.checks:
        log.warning("checks are off: a bare pass-through proxy that enforces nothing (benchmarks only)")
    return guard


def _watcher(
    stack: AsyncExitStack,
    settings: Settings,
    index: ForgetIndex,
    policies: PolicySet,
    metrics: Metrics,
    audit: AuditLog,
) -> PolicyWatcher:
    """Policy hot reload: on change (polled) and on SIGHUP."""

    async def entry_policies() -> list[str | None]:
        return [e.policy for e in await index.run(index.entries)]

    def reloaded(outcome: str) -> None:
        metrics.policy_reloads.labels(outcome).inc()
        audit.write("policy.reload", {"outcome": outcome, "policies": policies.names()})

    watcher = PolicyWatcher(
        policies, settings.policy.file, entry_policies, interval_s=settings.policy.reload_s, on_reload=reloaded
    )
    stack.push_async_callback(watcher.stop)  # before start: a start that fails half-way is undone too
    watcher.start()
    return watcher
