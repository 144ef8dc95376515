"""Who may use the admin API: named operators with roles, and the legacy admin token.

- Roles, each including the one before: `viewer` (entry metadata, coverage), `editor` (add, remove, switch entries),
  `admin` (export, hand-off and coverage, operators).
- An operator's token is shown once, when it is created; the registry stores its SHA-256 only (tokens are 32
  random bytes, so an unsalted hash is enough), shared by every replica. A revoked operator keeps its row.
- `GUARD_ADMIN_TOKEN` keeps working as an admin. Its actor in the audit log is the `x-guard-actor` header (or
  "admin"), as before; an operator's actor is its name, whatever the header says.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from guard.api.auth import bearer
from guard.errors import AuthError, Conflict, Forbidden, NotFound
from guard.forget.registry import ACTOR, Operator
from guard.services import services

ACTOR_HEADER = "x-guard-actor"  # who asked, with the legacy admin token (an operator's actor is its name)


class Role(IntEnum):
    viewer = 1
    editor = 2
    admin = 3


@dataclass(frozen=True)
class Caller:
    actor: str
    role: Role
    auth: str  # "operator" | "admin-token"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def authenticate(request: Request) -> None:
    """Every admin route: who is calling (request.state.caller), or 401 (no bearer token) / 403 (not a token)."""
    token = bearer(request)
    if token is None:
        raise AuthError("missing bearer token: send 'Authorization: Bearer <operator or admin token>'")
    await identify(request, token, request.headers.get(ACTOR_HEADER, "admin"))


async def identify(request: Request, token: str, legacy_actor: str = "admin") -> Caller:
    """The caller a token stands for, set on the request and in the change log's actor (403 when it is none)."""
    settings = services(request).settings
    legacy = settings.access.admin_token.get_secret_value() if settings.access.admin_token else None
    if legacy is not None and hmac.compare_digest(token.encode(), legacy.encode()):
        caller = Caller(legacy_actor[:128], Role.admin, "admin-token")
    else:
        found = await services(request).index.registry.operators(token_sha256=token_hash(token))
        if not found or found[0].revoked_at is not None:
            if legacy is None and not found:
                raise Forbidden("not an operator token (no GUARD_ADMIN_TOKEN is set: only operators can sign in)")
            raise Forbidden("invalid admin token" if not found else f"operator '{found[0].name}' was revoked")
        caller = Caller(found[0].name, Role[found[0].role], "operator")
    request.state.caller = caller
    ACTOR.set(caller.actor)  # the registry's change log records it too
    return caller


def require(role: Role) -> Callable[[Request], Awaitable[None]]:
    """A route dependency: the caller's role must be at least `role` (403 otherwise, nothing done)."""

    async def check(request: Request) -> None:
        caller: Caller = request.state.caller
        if caller.role < role:
            raise Forbidden(f"operator '{caller.actor}' is a {caller.role.name}: this needs the {role.name} role")

    return check


class NewOperator(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    role: Literal["viewer", "editor", "admin"]


class OperatorOut(BaseModel):
    name: str
    role: str
    created_at: float
    revoked_at: float | None = None

    @classmethod
    def of(cls, op: Operator) -> OperatorOut:
        return cls(name=op.name, role=op.role, created_at=op.created_at, revoked_at=op.revoked_at)


class CreatedOperator(OperatorOut):
    token: str  # shown this once


class OperatorList(BaseModel):
    object: Literal["list"] = "list"
    data: list[OperatorOut]


router = APIRouter(prefix="/admin/operators", dependencies=[Depends(authenticate), Depends(require(Role.admin))])


def _audit(request: Request, event: str, **fields: object) -> None:
    caller: Caller = request.state.caller
    record = {"actor": caller.actor, "auth": caller.auth, "request_id": request.state.request_id, **fields}
    services(request).audit.write(event, record, sync=True)


@router.post("", status_code=201, response_model=CreatedOperator)
async def add_operator(body: NewOperator, request: Request) -> CreatedOperator:
    token = "fgo_" + secrets.token_urlsafe(32)
    operator = Operator(body.name, body.role, token_hash(token), round(time.time(), 3))
    if not await services(request).index.registry.add_operator(operator):
        raise Conflict(
            f"an operator named '{body.name}' exists (names are not reused, also once revoked)", param="name"
        )
    _audit(request, "operator.add", operator=body.name, role=body.role)
    return CreatedOperator(**OperatorOut.of(operator).model_dump(), token=token)


@router.get("", response_model=OperatorList)
async def list_operators(request: Request) -> OperatorList:
    return OperatorList(data=[OperatorOut.of(o) for o in await services(request).index.registry.operators()])


@router.delete("/{name}", status_code=204)
async def revoke_operator(name: str, request: Request) -> Response:
    if await services(request).index.registry.revoke_operator(name, round(time.time(), 3)) is None:
        raise NotFound(f"no active operator named '{name}'", param="name")
    _audit(request, "operator.revoke", operator=name)
    return Response(status_code=204)
