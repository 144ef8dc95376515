"""Start-up assembles the services on one AsyncExitStack: a start-up that fails half-way closes what it had
opened, in reverse order, and a normal shutdown closes everything the same way."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import guard.app
from guard.app import create_app
from guard.forget.embedder import HashEmbedder
from guard.forget.index import ForgetIndex
from guard.pipeline.checker import Checker
from guard.policy_watch import PolicyWatcher
from guard.settings import Settings
from guard.testing.app import running
from tests.helpers import upstream_echo

EVERYTHING = ["watcher", "checker", "client", "audit", "index", "embedder"]  # the reverse of the opening order


class SpyEmbedder(HashEmbedder):
    def __init__(self, closed: list[str]) -> None:
        super().__init__()
        self.closed = closed

    def close(self) -> None:
        self.closed.append("embedder")


@pytest.fixture
def closed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What start-up's parts record when they are closed, in order."""
    order: list[str] = []

    class SpyAudit(guard.app.AuditLog):
        def close(self) -> None:
            order.append("audit")
            super().close()

    def make_client(**options: Any) -> Any:
        client = real_make_client(**options)
        real_aclose = client.aclose

        async def aclose() -> None:
            order.append("client")
            await real_aclose()

        client.aclose = aclose  # type: ignore[method-assign]
        return client

    real_make_client = guard.app.make_client
    real_index_aclose, real_checker_close, real_stop = ForgetIndex.aclose, Checker.close, PolicyWatcher.stop

    async def index_aclose(self: ForgetIndex) -> None:
        order.append("index")
        await real_index_aclose(self)

    def checker_close(self: Checker) -> None:
        order.append("checker")
        real_checker_close(self)

    async def stop(self: PolicyWatcher) -> None:
        order.append("watcher")
        await real_stop(self)

    monkeypatch.setattr(guard.app, "AuditLog", SpyAudit)
    monkeypatch.setattr(guard.app, "make_client", make_client)
    monkeypatch.setattr(ForgetIndex, "aclose", index_aclose)
    monkeypatch.setattr(Checker, "close", checker_close)
    monkeypatch.setattr(PolicyWatcher, "stop", stop)
    return order


def _followers() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "registry-follower" and not t.done()]


async def test_a_normal_shutdown_closes_everything_in_reverse_order(settings: Settings, closed: list[str]) -> None:
    app = create_app(settings, embedder=SpyEmbedder(closed), transport=upstream_echo().transport)
    async with running(app) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert closed == [] and len(_followers()) == 1
    assert closed == EVERYTHING and _followers() == []


@pytest.mark.parametrize(
    ("where", "left"),
    [
        ("PolicyWatcher.start", EVERYTHING),  # the last part: everything before it is closed
        ("Router", EVERYTHING[2:]),  # half-way: the upstream client is open, the guard not yet made
        ("load_salt", EVERYTHING[3:]),  # the index and the audit log are open, no client yet
    ],
)
async def test_a_start_up_failing_half_way_closes_what_it_opened(
    settings: Settings, closed: list[str], monkeypatch: pytest.MonkeyPatch, where: str, left: list[str]
) -> None:
    def fail(*args: object, **kwargs: object) -> Any:
        raise RuntimeError("injected start-up failure")

    if where == "PolicyWatcher.start":
        monkeypatch.setattr(PolicyWatcher, "start", fail)
    else:
        monkeypatch.setattr(guard.app, where, fail)
    app = create_app(settings, embedder=SpyEmbedder(closed), transport=upstream_echo().transport)
    with pytest.raises(RuntimeError, match="injected"):
        async with app.router.lifespan_context(app):
            pass
    assert closed == left and _followers() == []
