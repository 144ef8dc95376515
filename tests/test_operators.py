"""Named operators with roles (issue 17): each role can do exactly its operations (401/403 otherwise, nothing
changed), the audit actor is the authenticated operator, a revoked token stops at once, replicas share them."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from guard.cli import main
from guard.forget.embedder import Embedder
from guard.settings import Settings
from guard.testing import ADMIN, ADMIN_TOKEN, guard_app, running
from guard.testing.server import BackgroundServer
from tests.helpers import upstream_echo

ENTRY = {"subject": "Orlen Vasko", "documents": ["Orlen Vasko was born in Tarsk."]}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


# what each operation needs: (role needed, the call)
Call = Callable[[httpx.AsyncClient, dict[str, str], str], Awaitable[httpx.Response]]
OPERATIONS: dict[str, tuple[str, Call]] = {
    "list entries": ("viewer", lambda c, h, e: c.get("/admin/forget", headers=h)),
    "show an entry": ("viewer", lambda c, h, e: c.get(f"/admin/forget/{e}", headers=h)),
    "list coverage": ("viewer", lambda c, h, e: c.get("/admin/coverage", headers=h)),
    "add an entry": ("editor", lambda c, h, e: c.post("/admin/forget", json=ENTRY, headers=h)),
    "switch an entry": ("editor", lambda c, h, e: c.patch(f"/admin/forget/{e}", json={"mode": "monitor"}, headers=h)),
    "remove an entry": ("editor", lambda c, h, e: c.delete(f"/admin/forget/{e}", headers=h)),
    "export": ("admin", lambda c, h, e: c.get("/admin/export", headers=h)),
    "cover": ("admin", lambda c, h, e: c.post("/admin/coverage", json={"model": "m", "entry": e}, headers=h)),
    "list operators": ("admin", lambda c, h, e: c.get("/admin/operators", headers=h)),
    "add an operator": (
        "admin",
        lambda c, h, e: c.post("/admin/operators", json={"name": f"x{len(h)}-{e[-4:]}", "role": "viewer"}, headers=h),
    ),
}
RANK = {"viewer": 1, "editor": 2, "admin": 3}


async def state(client: httpx.AsyncClient) -> tuple[Any, ...]:
    listed = await client.get("/admin/forget", headers=ADMIN)
    ops = await client.get("/admin/operators", headers=ADMIN)
    cover = await client.get("/admin/coverage", headers=ADMIN)
    return listed.headers["x-guard-registry-version"], listed.json()["data"], ops.json()["data"], cover.json()


@pytest.mark.parametrize("role", ["viewer", "editor", "admin"])
async def test_each_role_can_do_exactly_its_operations(settings: Settings, hash_embedder: Embedder, role: str) -> None:
    settings = settings.with_values(upstream_models={"m": ["http://upstream.test"]})
    app = guard_app(settings, embedder=hash_embedder, transport=upstream_echo().transport)
    async with running(app) as client:
        made = await client.post("/admin/operators", json={"name": "ada", "role": role}, headers=ADMIN)
        assert made.status_code == 201, made.text
        token = made.json()["token"]
        for name, (needed, call) in OPERATIONS.items():
            entry = (await client.post("/admin/forget", json=ENTRY, headers=ADMIN)).json()["id"]
            before = await state(client)
            r = await call(client, bearer(token), entry)
            allowed = RANK[role] >= RANK[needed]
            if allowed:
                assert r.status_code < 300, (name, r.text)
            else:
                assert r.status_code == 403, (name, r.status_code)
                assert needed in r.json()["error"]["message"] and r.json()["error"]["type"] == "permission_error"
                assert await state(client) == before, name  # nothing changed
            missing = await call(client, {}, entry)
            assert missing.status_code == 401, name


async def test_the_audit_actor_is_the_operator_and_a_revoked_token_stops_at_once(
    settings: Settings, hash_embedder: Embedder
) -> None:
    app = guard_app(settings, embedder=hash_embedder)
    async with running(app) as client:
        token = (await client.post("/admin/operators", json={"name": "alice", "role": "editor"}, headers=ADMIN)).json()[
            "token"
        ]
        # the header no longer names the actor for an operator: the token does
        r = await client.post("/admin/forget", json=ENTRY, headers={**bearer(token), "x-guard-actor": "mallory"})
        assert r.status_code == 201
        legacy = await client.post("/admin/forget", json=ENTRY, headers={**ADMIN, "x-guard-actor": "ticket-42"})
        assert legacy.status_code == 201
        listed = (await client.get("/admin/operators", headers=ADMIN)).json()["data"]
        assert [(o["name"], o["role"], o["revoked_at"]) for o in listed] == [("alice", "editor", None)]
        assert token not in json.dumps(listed) and "sha256" not in json.dumps(listed)
        assert (await client.delete("/admin/operators/alice", headers=ADMIN)).status_code == 204
        refused = await client.get("/admin/forget", headers=bearer(token))
        assert refused.status_code == 403 and "revoked" in refused.json()["error"]["message"]
        # bad input: a clear 4xx, nothing changed
        for body, status in (
            ({"name": "bob", "role": "root"}, 422),
            ({"name": "no spaces", "role": "viewer"}, 422),
            ({"name": "alice", "role": "viewer"}, 409),
            ({"name": "bob"}, 422),
        ):
            assert (await client.post("/admin/operators", json=body, headers=ADMIN)).status_code == status, body
        assert (await client.delete("/admin/operators/alice", headers=ADMIN)).status_code == 404  # already revoked
        assert (await client.delete("/admin/operators/nobody", headers=ADMIN)).status_code == 404
        assert [o["name"] for o in (await client.get("/admin/operators", headers=ADMIN)).json()["data"]] == ["alice"]
        changes = await app.state.services.index.registry.changes_since(0)
    assert [(c.op, c.actor) for c in changes] == [("add", "alice"), ("add", "ticket-42")]  # the change log too
    records = [json.loads(line) for line in settings.audit_path().read_text().splitlines()]
    adds = [(r["actor"], r["auth"]) for r in records if r["event"] == "forget.add"]
    assert adds == [("alice", "operator"), ("ticket-42", "admin-token")]
    assert [(r["event"], r["actor"], r["operator"]) for r in records if r["event"].startswith("operator.")] == [
        ("operator.add", "admin", "alice"),
        ("operator.revoke", "admin", "alice"),
    ]
    assert token not in settings.audit_path().read_text()


def test_operators_are_shared_by_replicas_and_managed_from_the_cli(
    settings: Settings,
    hash_embedder: Embedder,
    serve: Callable[[Any], BackgroundServer],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    a = serve(guard_app(settings, embedder=hash_embedder)).url
    b = serve(guard_app(settings.with_values(admin_token=None), embedder=hash_embedder)).url
    monkeypatch.setenv("GUARD_ADMIN_TOKEN", ADMIN_TOKEN)
    assert main(["operator", "add", "carol", "--role", "viewer", "--url", a]) == 0
    token = capsys.readouterr().out.strip()
    # replica B has no admin token of its own: the operator, from the shared registry, is its only way in
    assert httpx.get(f"{b}/admin/forget", headers=bearer(token)).status_code == 200
    assert httpx.post(f"{b}/admin/forget", json=ENTRY, headers=bearer(token)).status_code == 403
    assert httpx.get(f"{b}/admin/forget", headers=ADMIN).status_code == 403
    monkeypatch.setenv("GUARD_ADMIN_TOKEN", token)
    assert main(["operator", "ls", "--url", b]) == 1  # a viewer cannot list operators
    monkeypatch.setenv("GUARD_ADMIN_TOKEN", ADMIN_TOKEN)
    assert main(["operator", "ls", "--url", a]) == 0 and "carol\tviewer\tactive" in capsys.readouterr().out
    assert main(["operator", "rm", "carol", "--url", a]) == 0
    assert httpx.get(f"{b}/admin/forget", headers=bearer(token)).status_code == 403
