"""Reading a bearer token: one place for the client keys, the admin API, the console's sign-in and /metrics."""

from __future__ import annotations

from starlette.requests import Request


def bearer(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), or None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
