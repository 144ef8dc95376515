"""Upstream faults on real sockets: the kit's fake upstream misbehaving (down to bytes that are not HTTP), the guard
on uvicorn, real clients.

Each fault must end in an OpenAI-shaped 502/504, or — once the stream started — an in-stream error event followed
by `data: [DONE]`; never a hang, and the guard lets go of the broken upstream connection.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from guard.forget.embedder import Embedder
from guard.settings import Settings
from guard.testing import HANG_S, BackgroundServer, FakeUpstream, Reply, fixed, free_port, guard_app

pytestmark = pytest.mark.socket  # real servers, processes or sockets

READ_TIMEOUT_S = 1.0

# What the upstream answers to every request: the kit's fake upstream, scripted with one fault.
FAULTS: dict[str, Reply] = {
    "stall_before_headers": Reply(fault="hang"),
    "http_500": Reply(raw='{"detail": "engine died"}', status=500),
    "http_503_html": Reply(fault="html"),
    "malformed_json": Reply(fault="malformed"),
    "sse_cut_midway": Reply("Once upon a time", fault="abort"),  # half an event, then the connection drops
    "sse_stall_after_first_token": Reply("Once upon a time", fault="stall"),
    "garbage_status_line": Reply(fault="garbage"),
}


@pytest.fixture
def faulty(serve: Callable[[Any], BackgroundServer]) -> Callable[[str], tuple[FakeUpstream, str]]:
    """The fake upstream answering with one fault, on a socket: (the fake, its URL)."""

    def start(fault: str) -> tuple[FakeUpstream, str]:
        fake = FakeUpstream(fixed(FAULTS[fault]))
        return fake, serve(fake.app()).url

    return start


@pytest.fixture
def guard_for(
    settings: Settings, hash_embedder: Embedder, serve: Callable[[Any], BackgroundServer]
) -> Iterator[Callable[[str], str]]:
    def start(upstream_url: str) -> str:
        app = guard_app(
            settings.with_values(upstream=upstream_url, read_timeout_s=READ_TIMEOUT_S),
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
    guard_for: Callable[[str], str],
    faulty: Callable[[str], tuple[FakeUpstream, str]],
    fault: str,
    status: int,
    kind: str,
    stream: bool,
) -> None:
    upstream, upstream_url = faulty(fault)
    url = guard_for(upstream_url)
    r = httpx.post(url + "/v1/chat/completions", json=body(stream), timeout=HANG_S)  # a hang fails here
    assert r.status_code == status and r.headers["content-type"] == "application/json"
    err = r.json()["error"]
    assert err["type"] == kind and err["message"] and "engine died" not in err["message"]
    assert len(upstream.requests) == 1


def test_connection_refused_is_a_502(guard_for: Callable[[str], str]) -> None:
    url = guard_for(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    for stream in (False, True):
        r = httpx.post(url + "/v1/chat/completions", json=body(stream), timeout=30)
        assert r.status_code == 502 and r.json()["error"]["type"] == "upstream_error"
        assert "unreachable" in r.json()["error"]["message"]


@pytest.mark.parametrize("fault", ["sse_cut_midway", "sse_stall_after_first_token"])
def test_faults_mid_stream_end_with_an_error_event_and_done(
    guard_for: Callable[[str], str], faulty: Callable[[str], tuple[FakeUpstream, str]], fault: str
) -> None:
    upstream, upstream_url = faulty(fault)
    url = guard_for(upstream_url)
    with httpx.stream("POST", url + "/v1/chat/completions", json=body(True), timeout=HANG_S) as r:  # no hang
        assert r.status_code == 200
        payloads = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    if fault == "sse_stall_after_first_token":
        assert upstream.released.wait(HANG_S), "the guard kept the stalled upstream connection open"
    assert payloads[-1] == "[DONE]"
    last = json.loads(payloads[-2])
    expected = "upstream_timeout" if "stall" in fault else "upstream_error"
    assert last["error"]["type"] == expected


@pytest.mark.parametrize("fault", ["http_500", "sse_cut_midway", "sse_stall_after_first_token"])
def test_the_stock_openai_client_gets_an_error_not_a_hang(
    guard_for: Callable[[str], str],
    faulty: Callable[[str], tuple[FakeUpstream, str]],
    openai_at: Callable[..., openai.OpenAI],
    fault: str,
) -> None:
    client = openai_at(guard_for(faulty(fault)[1]), timeout=HANG_S)
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
