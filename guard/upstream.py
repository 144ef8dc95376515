"""The upstream: one pooled httpx.AsyncClient, timeouts, and faults mapped to the error tree."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import httpx

from guard.errors import UpstreamError, UpstreamStatus, UpstreamTimeout, error_body

# The upstream path of each proxied endpoint.
PATHS: dict[str, str] = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}


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


class Backend:
    """One upstream server and what we know of its health: after a connect failure it is skipped for a
    cool-down (1 s, doubling up to 30 s while it keeps failing), then tried again."""

    COOL_DOWN_S = 1.0
    MAX_COOL_DOWN_S = 30.0

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.failures = 0
        self.down_until = 0.0

    def healthy(self, now: float) -> bool:
        return now >= self.down_until

    def failed(self) -> None:
        self.failures += 1
        self.down_until = time.monotonic() + min(self.MAX_COOL_DOWN_S, self.COOL_DOWN_S * 2 ** (self.failures - 1))

    def succeeded(self) -> None:
        self.failures, self.down_until = 0, 0.0


class Upstream:
    """The upstream servers of one route (A or B), reached through the app's shared pooled client.

    `base_url` may list several servers (a sequence, or comma-separated); `models` maps a model name to its own
    servers (a vLLM fleet per model). A request goes to the next healthy server of its model, round-robin; a connect
    error (nothing was sent) marks that server down and the request is retried on the next one. Nothing is
    retried once the request reached a server — a partial stream is never replayed.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str | Sequence[str],
        models: Mapping[str, Sequence[str]] | None = None,
        vllm: bool | None = None,
    ) -> None:
        self.client = client
        self._vllm = vllm  # is the upstream vLLM (it takes `bad_words`)? None: ask it (GET /version) once
        self._probe_after = 0.0
        urls = base_url.split(",") if isinstance(base_url, str) else base_url
        self.default = [Backend(u) for u in urls if u.strip()]
        if not self.default:
            raise ValueError("an upstream needs at least one URL")
        self.models = {name: [Backend(u) for u in urls] for name, urls in (models or {}).items() if urls}
        self._next: dict[int, int] = {}

    @property
    def base_url(self) -> str:
        return self.default[0].url

    def backends(self) -> list[Backend]:
        seen: dict[str, Backend] = {}
        for group in (self.default, *self.models.values()):
            for b in group:
                seen.setdefault(b.url, b)
        return list(seen.values())

    def _order(self, model: object) -> list[Backend]:
        """This model's servers to try in turn: the healthy ones round-robin, then the others (soonest back first)."""
        group = self.models.get(model, self.default) if isinstance(model, str) else self.default
        now = time.monotonic()
        healthy = [b for b in group if b.healthy(now)]
        turn = self._next.get(id(group), 0)
        self._next[id(group)] = turn + 1
        if healthy:
            start = turn % len(healthy)
            healthy = healthy[start:] + healthy[:start]
        return healthy + sorted((b for b in group if not b.healthy(now)), key=lambda b: b.down_until)

    async def _send(self, model: object, send: Callable[[str], Awaitable[httpx.Response]]) -> httpx.Response:
        """`send(base_url)` on the model's servers in turn until one accepts the connection."""
        last: httpx.TransportError | None = None
        for backend in self._order(model):
            try:
                response = await send(backend.url)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                backend.failed()
                last = exc
                continue
            backend.succeeded()
            return response
        assert last is not None
        raise last

    async def speaks_vllm(self) -> bool:
        """Is this upstream vLLM? As configured, or detected once: vLLM answers GET /version with its version."""
        if self._vllm is None:
            if time.monotonic() < self._probe_after:
                return False
            try:
                response = await self.client.get(self.base_url + "/version", timeout=2.0)
                self._vllm = response.status_code == 200 and "version" in response.json()
            except (httpx.HTTPError, ValueError):
                self._probe_after = time.monotonic() + 60.0  # unknown for now: not asked again for a minute
                return False
        return self._vllm

    async def get_json(self, path: str) -> dict[str, Any]:
        with _faults():
            response = await self._send(None, lambda url: self.client.get(url + path))
        return _json_or_raise(response)

    async def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        with _faults():
            response = await self._send(body.get("model"), lambda url: self.client.post(url + path, json=body))
        return _json_or_raise(response)

    async def open_stream(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """Send a streaming request; returns the open response once the upstream answered 200.

        Errors before the first byte raise (and close the response); the caller closes it otherwise.
        """

        def send(url: str) -> Awaitable[httpx.Response]:
            return self.client.send(self.client.build_request("POST", url + path, json=body), stream=True)

        with _faults():
            response = await self._send(body.get("model"), send)
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
