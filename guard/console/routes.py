"""The operators' console under /console: a server-rendered page (no JavaScript, no build step) over the admin API.

- Sign-in takes an operator token (or the legacy admin token) and keeps it in an HttpOnly, SameSite=Strict
  cookie scoped to /console, so every page re-checks it against the registry: a revoked operator is out on its
  next click, on whichever replica it lands.
- Every change goes through the admin API's own handlers (`guard.admin.routes`), with the same roles, validation
  and audit records; the forms carry a token derived from the session (CSRF) on top of SameSite.
- It shows metadata and counts only: the documents behind an entry and the prompts behind a decision never
  appear. The decision counts and the recent decisions are this replica's, since it started.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from starlette.templating import Jinja2Templates

from guard import __version__
from guard.admin.operators import Caller, Role, identify
from guard.admin.protocol import EntryUpdate, ForgetRequest
from guard.admin.routes import add_entry, remove_entry, update_entry
from guard.console.view import ACTIONS, AuditChecker, coverage_rows, entry_rows, recent_decisions
from guard.errors import AuthError, GuardError
from guard.services import services

HERE = Path(__file__).parent
COOKIE = "guard_console"
SESSION_S = 8 * 3600  # a sign-in lasts a working day
CSS = (HERE / "static" / "console.css").read_bytes()
HEADERS = {
    "cache-control": "no-store",
    "content-security-policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
DONE = {  # what the page says after a change (a fixed text: nothing from the request is echoed)
    "added": "Entry added: it is enforced from the next request.",
    "removed": "Entry removed.",
    "enforce": "Entry switched to enforce: matches are now blocked.",
    "monitor": "Entry switched to monitor: matches are recorded, not blocked.",
}

templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(prefix="/console", include_in_schema=False)


def _csrf(token: str) -> str:
    return hmac.new(token.encode(), b"forget-guard console form", hashlib.sha256).hexdigest()[:32]


def _page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    response = templates.TemplateResponse(request, name, {"version": __version__, **context}, status_code=status)
    response.headers.update(HEADERS)
    return response


def _login(request: Request, error: str | None = None, status: int = 200) -> Response:
    return _page(request, "login.html", status, error=error)


async def _session(request: Request) -> tuple[Caller, str] | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    try:
        return await identify(request, token), token
    except AuthError:  # revoked (Forbidden), or no longer a token: signed out
        return None


async def _dashboard(request: Request, caller: Caller, token: str, *, status: int = 200, **extra: Any) -> Response:
    svc = services(request)
    entries = await svc.index.run(entry_rows, svc)
    audit = await _audit(request).status()
    return _page(
        request,
        "index.html",
        status,
        caller=caller,
        can_edit=caller.role >= Role.editor,
        csrf=_csrf(token),
        health=svc.health(),
        audit=audit,
        entries=entries,
        actions=ACTIONS,
        coverage=coverage_rows(svc),
        decisions=recent_decisions(svc),
        policies=svc.policies.names(),
        started=time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(svc.decisions.started_at)),
        **extra,
    )


def _audit(request: Request) -> AuditChecker:
    """One checker per app (its cache outlives a page load)."""
    checker: AuditChecker | None = getattr(request.app.state, "console_audit", None)
    if checker is None:
        checker = request.app.state.console_audit = AuditChecker(services(request).settings.audit_path())
    return checker


@router.get("/console.css")
async def stylesheet() -> Response:
    return Response(CSS, media_type="text/css", headers={"cache-control": "max-age=3600"})


@router.get("/login")
async def login_page(request: Request) -> Response:
    return _login(request)


@router.post("/login")
async def login(request: Request, token: Annotated[str, Form(max_length=512)] = "") -> Response:
    token = token.strip()
    if not token:
        return _login(request, "Enter an operator token.", 401)
    try:
        caller = await identify(request, token)
    except GuardError as exc:
        return _login(request, exc.message, exc.status_code)
    services(request).audit.write(
        "console.login", {"actor": caller.actor, "auth": caller.auth, "request_id": request.state.request_id}
    )
    response = RedirectResponse("/console", status_code=303)
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    response.set_cookie(
        COOKIE, token, max_age=SESSION_S, path="/console", httponly=True, samesite="strict", secure=secure
    )
    return response


@router.post("/logout")
async def logout() -> Response:
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/console")
    return response


@router.get("")
async def dashboard(request: Request, done: str | None = None) -> Response:
    session = await _session(request)
    if session is None:
        return RedirectResponse("/console/login", status_code=303)
    return await _dashboard(request, *session, done=DONE.get(done or ""))


async def _change(request: Request, csrf: str, role: Role) -> tuple[Caller, str] | Response:
    """The session behind a form, or the page that says why the change was refused (nothing changed)."""
    session = await _session(request)
    if session is None:
        return _login(request, "Your session ended: sign in again.", 401)
    caller, token = session
    if caller.role < role:
        error = f"Operator '{caller.actor}' is a {caller.role.name}: this needs the {role.name} role."
        return await _dashboard(request, caller, token, status=403, error=error)
    if not hmac.compare_digest(csrf.encode(), _csrf(token).encode()):
        return await _dashboard(request, caller, token, status=403, error="The form was stale: reload and retry.")
    return session


@router.post("/entries")
async def add(
    request: Request,
    csrf: Annotated[str, Form(max_length=64)] = "",
    subject: Annotated[str, Form(max_length=512)] = "",
    aliases: Annotated[str, Form(max_length=64_000)] = "",
    documents: Annotated[str, Form(max_length=1_000_000)] = "",
    mode: Annotated[str, Form(max_length=16)] = "enforce",
    policy: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    """Aliases one per line; documents separated by a blank line."""
    session = await _change(request, csrf, Role.editor)
    if isinstance(session, Response):
        return session
    fields = {
        "subject": subject,
        "aliases": [a for a in aliases.splitlines() if a.strip()],
        "documents": [d.strip() for d in documents.replace("\r\n", "\n").split("\n\n") if d.strip()],
        "mode": mode,
        "policy": policy or None,
    }

    async def change() -> None:
        await add_entry(ForgetRequest.model_validate(fields), request)

    return await _apply(request, session, change, "added")


@router.post("/entries/{entry_id}/mode")
async def switch(
    entry_id: str,
    request: Request,
    csrf: Annotated[str, Form(max_length=64)] = "",
    mode: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    session = await _change(request, csrf, Role.editor)
    if isinstance(session, Response):
        return session

    async def change() -> None:
        await update_entry(entry_id, EntryUpdate.model_validate({"mode": mode}), request)

    return await _apply(request, session, change, mode)


@router.post("/entries/{entry_id}/remove")
async def remove(entry_id: str, request: Request, csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    session = await _change(request, csrf, Role.editor)
    if isinstance(session, Response):
        return session

    async def change() -> None:
        await remove_entry(entry_id, request)

    return await _apply(request, session, change, "removed")


async def _apply(
    request: Request, session: tuple[Caller, str], change: Callable[[], Awaitable[None]], done: str
) -> Response:
    """Make the change through the admin API's handler: back to the page saying so, or the page with why not."""
    try:
        await change()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return await _dashboard(request, *session, status=422, error=f"{where}: {first['msg']}")
    except GuardError as exc:
        return await _dashboard(request, *session, status=exc.status_code, error=exc.message)
    return RedirectResponse(f"/console?done={done}", status_code=303)
