"""Reading a bearer token: one place for the client keys, the admin API, the console's sign-in and /metrics.

`require_api_key` guards every client route (the OpenAI proxy, the scan API, the gateway hooks): with
`GUARD_API_KEYS` set, a request needs one of them, and its key's id binds the policies set for that client.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request

from guard.errors import AuthError
from guard.policy import key_id
from guard.services import services


def bearer(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), or None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def require_api_key(request: Request) -> None:
    """When API keys are configured, /v1/* needs one of them (the admin token is not one unless listed)."""
    check_client_key(request, bearer(request))


async def require_gateway_key(request: Request) -> None:
    """The same keys for a gateway's hook, which may send its key as `x-api-key` (LiteLLM's `api_key`)."""
    check_client_key(request, bearer(request) or request.headers.get("x-api-key") or None)


def check_client_key(request: Request, token: str | None) -> None:
    """Every key is compared, in constant time, so the time taken says nothing about which key nearly matched.
    Sets `request.state.client` (a fingerprint for the audit trail) and `request.state.key_id` (policy binding)."""
    keys: list[bytes] = services(request).settings.client_keys()
    request.state.client = request.state.key_id = None
    if not keys:
        return
    given = (token or "").encode()
    matched = None
    for i, key in enumerate(keys):
        if hmac.compare_digest(given, key) and matched is None:
            matched = i
    if not given or matched is None:
        raise AuthError("invalid or missing API key: send 'Authorization: Bearer <key>'", code="invalid_api_key")
    request.state.client = f"key-{services(request).hasher(given.decode())[:8]}"
    request.state.key_id = key_id(given.decode())  # the policies bound to this key (unsalted: set in files)
