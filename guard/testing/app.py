"""The guard as tests build it: one place that knows how settings and the app are put together, so that a change
to either touches this module, not every test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from guard.app import create_app
from guard.settings import REPO_ROOT, Settings
from guard.testing.server import ADMIN_TOKEN
from guard.testing.upstream import FakeUpstream


def settings_for(index_dir: Path, **overrides: Any) -> Settings:
    """Settings for a guard under test: its own index, the test admin token, the default policies, an upstream
    that is not vLLM (no GET /version probe in the recorded upstream traffic)."""
    base: dict[str, Any] = {
        "index_dir": index_dir,
        "admin_token": ADMIN_TOKEN,
        "upstream": "http://upstream.test",
        "upstream_vllm": False,
        "policy_file": REPO_ROOT / "policies" / "default.yaml",
    }
    return Settings.load(**{**base, **overrides})


def guard_app(settings: Settings, *, upstream: FakeUpstream | None = None, **seams: Any) -> FastAPI:
    """The guard's app on `settings`, as every test builds it. `upstream`: the fake served in process (else
    `settings.upstreams.urls` are called over the network); `seams`: the app's other test seams (embedder, meaning,
    fast, transport, judge_transport)."""
    if upstream is not None:
        seams["transport"] = upstream.transport
    return create_app(settings, **seams)


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and give an in-process client (buffers responses: not for SSE timing)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://guard.test") as client:
            yield client
