"""The upstream: one pooled httpx.AsyncClient, timeouts, and faults mapped to the error tree."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from guard.errors import UpstreamError, UpstreamStatus, UpstreamTimeout, error_body


def make_client(
    *,
    api_key: str | None = None,
    connect_timeout_s: float = 5.0,
    read_timeout_s: float = 120.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.AsyncClient(
        headers=headers,
        timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        transport=transport,
    )


class Upstream:
    """One upstream server, reached through the app's shared pooled client."""

    def __init__(self, client: httpx.AsyncClient, base_url: str) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")

    async def get_json(self, path: str) -> dict[str, Any]:
        with _faults():
            response = await self.client.get(self.base_url + path)
        return _json_or_raise(response)

    async def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        with _faults():
            response = await self.client.post(self.base_url + path, json=body)
        return _json_or_raise(response)

    async def open_stream(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """Send a streaming request; returns the open response once the upstream answered 200.

        Errors before the first byte raise (and close the response); the caller closes it otherwise.
        """
        request = self.client.build_request("POST", self.base_url + path, json=body)
        with _faults():
            response = await self.client.send(request, stream=True)
        if response.status_code == 200 and response.headers.get("content-type", "").startswith("text/event-stream"):
            return response
        try:
            with _faults():
                await response.aread()
            _json_or_raise(response)
            raise UpstreamError("upstream answered a streaming request without an event stream")
        finally:
            await response.aclose()


async def lines(response: httpx.Response) -> AsyncIterator[str]:
    """The response's lines; transport failures mid-stream become UpstreamError/UpstreamTimeout."""
    with _faults():
        async for line in response.aiter_lines():
            yield line


class _faults:
    """Map httpx transport failures to UpstreamTimeout (504) / UpstreamError (502)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, httpx.TimeoutException):
            raise UpstreamTimeout(f"upstream timed out ({type(exc).__name__})") from exc
        if isinstance(exc, httpx.TransportError):
            raise UpstreamError(f"upstream unreachable or connection broken ({type(exc).__name__})") from exc


def _json_or_raise(response: httpx.Response) -> dict[str, Any]:
    status = response.status_code
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = None
    if 400 <= status < 500:
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            raise UpstreamStatus(status, data)
        raise UpstreamStatus(status, error_body(f"upstream rejected the request (HTTP {status})", "upstream_error"))
    if status != 200:
        raise UpstreamError(f"upstream failed (HTTP {status})")
    if not isinstance(data, dict):
        raise UpstreamError("upstream returned malformed JSON")
    return data
