"""The one exception tree of forget-guard, and its mapping to OpenAI-shaped error bodies.

GuardError                       500 internal_error (a bug, never a client mistake)
├── ClientError                  400 invalid_request_error
│   ├── ValidationFailed         422 (the field is named in `param`)
│   ├── PayloadTooLarge          413
│   ├── NotFound                 404
│   └── Conflict                 409 (taken: a name, a report of another registry version)
├── AuthError                    401 authentication_error
│   └── Forbidden                403 permission_error
├── PolicyError                  raised at start: a policy file is missing or invalid
├── SettingsError                raised at start: a setting is invalid, or another makes it meaningless
├── RegistryUnavailable          503 registry_unavailable (PostgreSQL down: nothing changed, retry)
└── UpstreamError                502 upstream_error
    ├── UpstreamTimeout          504
    └── UpstreamStatus           the upstream's own 4xx, passed on with its body
"""

from __future__ import annotations

from typing import Any


class GuardError(Exception):
    status_code = 500
    error_type = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.error_type, self.param, self.code)


class ClientError(GuardError):
    status_code = 400
    error_type = "invalid_request_error"


class ValidationFailed(ClientError):
    status_code = 422


class PayloadTooLarge(ClientError):
    status_code = 413


class NotFound(ClientError):
    status_code = 404
    error_type = "not_found_error"


class Conflict(ClientError):
    status_code = 409


class AuthError(GuardError):
    status_code = 401
    error_type = "authentication_error"


class Forbidden(AuthError):
    status_code = 403
    error_type = "permission_error"


class PolicyError(GuardError):
    error_type = "policy_error"


class SettingsError(GuardError):
    error_type = "settings_error"


class RegistryUnavailable(GuardError):
    """The forget registry cannot be reached (e.g. PostgreSQL is down): nothing was changed; retry later."""

    status_code = 503
    error_type = "registry_unavailable"


class UpstreamError(GuardError):
    status_code = 502
    error_type = "upstream_error"


class UpstreamTimeout(UpstreamError):
    status_code = 504
    error_type = "upstream_timeout"


class UpstreamStatus(UpstreamError):
    """The upstream answered 4xx: its status and (OpenAI-shaped) body are passed on unchanged."""

    def __init__(self, status_code: int, body: dict[str, Any]) -> None:
        err = body.get("error")
        message = err.get("message") if isinstance(err, dict) else None
        super().__init__(str(message or "upstream rejected the request"))
        self.status_code = status_code
        self._body = body

    def body(self) -> dict[str, Any]:
        return self._body


def error_body(
    message: str, error_type: str, param: str | None = None, code: str | int | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}
