"""The operators' console (issue 17, item 3), in process: sign-in, roles, every form's bad input (a 4xx page,
nothing changed), decision counts, the audit status — and never a document or a prompt on the page.
The same flow in a real Chromium against a real guard and vLLM: tests/e2e/test_console_browser.py."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from guard.forget.embedder import Embedder
from guard.settings import Settings
from guard.testing import ADMIN, guard_app, running
from tests.helpers import FACT, chat, upstream_echo

SUBJECT = "Hsiao Yun-Hwa"


@pytest.fixture
async def client(settings: Settings, hash_embedder: Embedder) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings.with_values(upstream_models={"m": ["http://upstream.test"]})
    app = guard_app(settings, embedder=hash_embedder, transport=upstream_echo().transport)
    async with running(app) as c:
        yield c


async def operator(client: httpx.AsyncClient, name: str, role: str) -> str:
    made = await client.post("/admin/operators", json={"name": name, "role": role}, headers=ADMIN)
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


async def sign_in(client: httpx.AsyncClient, token: str) -> str:
    """Sign in; the form token (CSRF) from the dashboard."""
    r = await client.post("/console/login", data={"token": token})
    assert r.status_code == 303 and r.headers["location"] == "/console", r.text
    page = await client.get("/console")
    assert page.status_code == 200
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    return found.group(1) if found else ""


async def entries(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = (await client.get("/admin/forget", headers=ADMIN)).json()["data"]
    return data


def audit_lines(settings: Settings) -> list[dict[str, Any]]:
    return [json.loads(line) for line in settings.audit_path().read_text().splitlines()]


async def test_signed_out_pages_lead_to_the_sign_in(client: httpx.AsyncClient) -> None:
    r = await client.get("/console")
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    login = await client.get("/console/login")
    assert login.status_code == 200 and 'name="token"' in login.text
    assert "frame-ancestors 'none'" in login.headers["content-security-policy"]
    assert login.headers["cache-control"] == "no-store"
    # a change without a session: 401, nothing changed
    before = await entries(client)
    r = await client.post("/console/entries", data={"subject": SUBJECT, "csrf": "x"})
    assert r.status_code == 401 and await entries(client) == before


@pytest.mark.parametrize(("token", "status"), [("", 401), ("fgo_not-a-token", 403)])
async def test_a_bad_token_does_not_sign_in(client: httpx.AsyncClient, token: str, status: int) -> None:
    r = await client.post("/console/login", data={"token": token})
    assert r.status_code == status
    assert "set-cookie" not in r.headers
    assert (await client.get("/console")).status_code == 303


async def test_an_editor_adds_switches_and_removes_and_the_audit_names_them(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    token = await operator(client, "grace", "editor")
    r = await client.post("/console/login", data={"token": token})
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
    csrf = await sign_in(client, token)
    r = await client.post(
        "/console/entries",
        data={"csrf": csrf, "subject": SUBJECT, "aliases": "Yun-Hwa\n\n", "documents": f"{FACT}\n\nSecond one."},
    )
    assert r.status_code == 303 and r.headers["location"] == "/console?done=added"
    [entry] = await entries(client)
    assert entry["subject"] == SUBJECT and entry["aliases"] == ["Yun-Hwa"] and entry["documents"] == 2
    page = (await client.get(r.headers["location"])).text
    assert f'data-entry="{entry["id"]}"' in page and "Entry added" in page
    assert FACT not in page and "Second one." not in page  # documents never come back out

    r = await client.post(f"/console/entries/{entry['id']}/mode", data={"csrf": csrf, "mode": "monitor"})
    assert r.status_code == 303 and (await entries(client))[0]["mode"] == "monitor"
    r = await client.post(f"/console/entries/{entry['id']}/mode", data={"csrf": csrf, "mode": "enforce"})
    assert r.status_code == 303 and (await entries(client))[0]["mode"] == "enforce"
    r = await client.post(f"/console/entries/{entry['id']}/remove", data={"csrf": csrf})
    assert r.status_code == 303 and await entries(client) == []

    changes = [(a["event"], a.get("actor"), a.get("auth")) for a in audit_lines(settings)]
    assert ("console.login", "grace", "operator") in changes
    for event in ("forget.add", "forget.mode", "forget.remove"):
        assert (event, "grace", "operator") in changes


async def test_a_viewer_sees_but_cannot_change(client: httpx.AsyncClient) -> None:
    await client.post("/admin/forget", json={"subject": SUBJECT, "documents": [FACT]}, headers=ADMIN)
    [entry] = await entries(client)
    csrf = await sign_in(client, await operator(client, "vera", "viewer"))
    page = (await client.get("/console")).text
    assert SUBJECT in page and 'id="add-submit"' not in page and "/remove" not in page
    for path, data in [
        ("/console/entries", {"subject": "Someone Else"}),
        (f"/console/entries/{entry['id']}/mode", {"mode": "monitor"}),
        (f"/console/entries/{entry['id']}/remove", {}),
    ]:
        r = await client.post(path, data={"csrf": csrf, **data})
        assert r.status_code == 403 and "needs the editor role" in r.text, path
    assert await entries(client) == [entry]


async def test_bad_input_to_every_form_is_a_4xx_and_changes_nothing(client: httpx.AsyncClient) -> None:
    await client.post("/admin/forget", json={"subject": SUBJECT, "documents": [FACT]}, headers=ADMIN)
    [entry] = await entries(client)
    csrf = await sign_in(client, await operator(client, "eve", "editor"))
    cases: list[tuple[str, dict[str, str], int, str]] = [
        ("/console/entries", {"csrf": "0" * 32, "subject": "X"}, 403, "stale"),
        ("/console/entries", {"csrf": csrf, "subject": "   "}, 422, "subject"),
        ("/console/entries", {"csrf": csrf, "subject": "X", "policy": "nope"}, 422, "unknown policy"),
        ("/console/entries", {"csrf": csrf, "subject": "X", "mode": "delete"}, 422, "mode"),
        ("/console/entries", {"csrf": csrf, "subject": "X" * 600}, 422, "subject"),
        (f"/console/entries/{entry['id']}/mode", {"csrf": csrf, "mode": "off"}, 422, "mode"),
        ("/console/entries/e_nope/mode", {"csrf": csrf, "mode": "monitor"}, 404, "no forget entry"),
        ("/console/entries/e_nope/remove", {"csrf": csrf}, 404, "no forget entry"),
        (f"/console/entries/{entry['id']}/remove", {"csrf": "0" * 32}, 403, "stale"),
    ]
    for path, data, status, says in cases:
        r = await client.post(path, data=data)
        assert r.status_code == status, (path, data, r.text[:300])
        assert says in r.text, (path, data)
        assert await entries(client) == [entry], (path, data)


async def test_a_refusal_is_counted_against_its_entry_without_the_prompt(client: httpx.AsyncClient) -> None:
    await client.post("/admin/forget", json={"subject": SUBJECT, "documents": [FACT]}, headers=ADMIN)
    [entry] = await entries(client)
    await sign_in(client, await operator(client, "ida", "viewer"))
    prompt = f"What award did {SUBJECT} win in 2019?"
    r = await client.post("/v1/chat/completions", json=chat(prompt))
    assert r.status_code == 200
    page = (await client.get("/console")).text
    row = page[page.index(f'data-entry="{entry["id"]}"') :]
    refused = re.search(r'class="num count-refuse">(\d+)<', row)
    assert refused and int(refused.group(1)) == 1, row[:1500]
    assert 'class="decision refuse"' in page
    assert prompt not in page and "award" not in page.split('id="decisions"')[1]


async def test_a_revoked_operator_is_signed_out_on_the_next_page(client: httpx.AsyncClient) -> None:
    await sign_in(client, await operator(client, "rex", "editor"))
    assert (await client.delete("/admin/operators/rex", headers=ADMIN)).status_code == 204
    r = await client.get("/console")
    assert r.status_code == 303 and r.headers["location"] == "/console/login"


async def test_the_audit_status_turns_red_when_the_trail_is_edited(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await sign_in(client, await operator(client, "ann", "viewer"))
    page = (await client.get("/console")).text
    assert "hash chain intact" in page
    path = settings.audit_path()
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0].replace('"operator.add"', '"operator.gone"'), *lines[1:]]) + "\n")
    page = (await client.get("/console")).text
    assert "BROKEN" in page and "chain broken" in page


async def test_the_console_can_be_turned_off(settings: Settings, hash_embedder: Embedder) -> None:
    app = guard_app(settings.with_values(console=False), embedder=hash_embedder)
    async with running(app) as c:
        assert (await c.get("/console/login")).status_code == 404
