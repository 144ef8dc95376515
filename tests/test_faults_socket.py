"""Upstream faults on real sockets: a raw TCP upstream that misbehaves, the guard on uvicorn, real clients.

Each fault must end in an OpenAI-shaped 502/504, or — once the stream started — an in-stream error event followed
by `data: [DONE]`; never a hang, and the guard lets go of the broken upstream connection.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from guard.app import create_app
from guard.forget.embedder import Embedder
from guard.settings import Settings
from guard.testing.server import BackgroundServer, free_port

pytestmark = pytest.mark.socket  # real servers, processes or sockets

READ_TIMEOUT_S = 1.0
CHUNK = {"id": "up", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def event(content: str) -> bytes:
    choice = {"index": 0, "delta": {"content": content}, "finish_reason": None}
    return b"data: " + json.dumps({**CHUNK, "choices": [choice]}).encode() + b"\n\n"


SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"  # body ends at close


def http(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


# What the upstream does once it has read a request: a list of steps, bytes to send or seconds to wait.
FAULTS: dict[str, list[bytes | float]] = {
    "stall_before_headers": [60.0],
    "http_500": [http("500 Internal Server Error", b'{"detail": "engine died"}')],
    "http_503_html": [http("503 Service Unavailable", b"<html>down</html>", "text/html")],
    "malformed_json": [http("200 OK", b'{"choices": [', "application/json")],
    "sse_cut_midway": [SSE_HEAD, event("Once upon"), event(" a time"), b'data: {"id": "up", "cho'],
    "sse_stall_after_first_token": [SSE_HEAD, event("Once"), 60.0],
    "garbage_status_line": [b"NOT HTTP AT ALL\r\n\r\n"],
}


class FaultyUpstream:
    """A TCP server on 127.0.0.1 that answers every request with the steps of one fault, then closes."""

    def __init__(self, steps: list[bytes | float]) -> None:
        self.steps = steps
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests = 0
        self.released = threading.Event()  # the guard closed the connection while the upstream still held it
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FaultyUpstream:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.run_until_complete(server.wait_closed())
            self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
        )
        await reader.readexactly(length)
        self.requests += 1
        try:
            for step in self.steps:
                if isinstance(step, float):
                    # wait, but notice when the guard hangs up on us
                    try:
                        gone = await asyncio.wait_for(reader.read(1), timeout=step)
                    except TimeoutError:
                        gone = b"x"
                    if gone == b"":
                        self.released.set()
                        return
                else:
                    writer.write(step)
                    await writer.drain()
        finally:
            writer.close()


@pytest.fixture
def guard_for(
    settings: Settings, hash_embedder: Embedder, serve: Callable[[Any], BackgroundServer]
) -> Iterator[Callable[[str], str]]:
    def start(upstream_url: str) -> str:
        app = create_app(
            settings.model_copy(update={"upstream": upstream_url, "read_timeout_s": READ_TIMEOUT_S}),
            embedder=hash_embedder,
        )
        return serve(app).url

    yield start


def body(stream: bool) -> dict[str, Any]:
    return {"model": "m", "stream": stream, "messages": [{"role": "user", "content": "Tell me a story."}]}


BEFORE_FIRST_BYTE = [
    ("stall_before_headers", 504, "upstream_timeout"),
    ("http_500", 502, "upstream_error"),
    ("http_503_html", 502, "upstream_error"),
    ("malformed_json", 502, "upstream_error"),  # to a streaming request: JSON where an event stream was due
    ("garbage_status_line", 502, "upstream_error"),
]


@pytest.mark.parametrize(("fault", "status", "kind"), BEFORE_FIRST_BYTE)
@pytest.mark.parametrize("stream", [False, True])
def test_faults_before_the_first_byte_are_openai_errors(
    guard_for: Callable[[str], str], fault: str, status: int, kind: str, stream: bool
) -> None:
    with FaultyUpstream(FAULTS[fault]) as upstream:
        url = guard_for(upstream.url)
        started = time.monotonic()
        r = httpx.post(url + "/v1/chat/completions", json=body(stream), timeout=30)
        elapsed = time.monotonic() - started
    assert r.status_code == status and r.headers["content-type"] == "application/json"
    err = r.json()["error"]
    assert err["type"] == kind and err["message"] and "engine died" not in err["message"]
    assert elapsed < READ_TIMEOUT_S + 5 and upstream.requests == 1


def test_connection_refused_is_a_502(guard_for: Callable[[str], str]) -> None:
    url = guard_for(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    for stream in (False, True):
        r = httpx.post(url + "/v1/chat/completions", json=body(stream), timeout=30)
        assert r.status_code == 502 and r.json()["error"]["type"] == "upstream_error"
        assert "unreachable" in r.json()["error"]["message"]


@pytest.mark.parametrize("fault", ["sse_cut_midway", "sse_stall_after_first_token"])
def test_faults_mid_stream_end_with_an_error_event_and_done(guard_for: Callable[[str], str], fault: str) -> None:
    with FaultyUpstream(FAULTS[fault]) as upstream:
        url = guard_for(upstream.url)
        started = time.monotonic()
        with httpx.stream("POST", url + "/v1/chat/completions", json=body(True), timeout=30) as r:
            assert r.status_code == 200
            payloads = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
        elapsed = time.monotonic() - started
        if fault == "sse_stall_after_first_token":
            assert upstream.released.wait(5), "the guard kept the stalled upstream connection open"
    assert payloads[-1] == "[DONE]"
    last = json.loads(payloads[-2])
    expected = "upstream_timeout" if "stall" in fault else "upstream_error"
    assert last["error"]["type"] == expected
    assert elapsed < READ_TIMEOUT_S + 5


@pytest.mark.parametrize("fault", ["http_500", "sse_cut_midway", "sse_stall_after_first_token"])
def test_the_stock_openai_client_gets_an_error_not_a_hang(
    guard_for: Callable[[str], str], openai_at: Callable[..., openai.OpenAI], fault: str
) -> None:
    with FaultyUpstream(FAULTS[fault]) as upstream:
        client = openai_at(guard_for(upstream.url), timeout=30)
        messages: Any = body(False)["messages"]
        with pytest.raises(openai.APIError) as caught:
            if fault == "http_500":
                client.chat.completions.create(model="m", messages=messages)
            else:
                for _ in client.chat.completions.create(model="m", messages=messages, stream=True):
                    pass
    if fault == "http_500":
        assert isinstance(caught.value, openai.APIStatusError) and caught.value.status_code == 502
    assert "upstream" in str(caught.value.message)
