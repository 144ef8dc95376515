"""Streams open when `guard serve` gets SIGTERM (issue 17): new connections are refused at once; a stream that ends
within the grace period ends normally; one still open after it ends with an error event and `data: [DONE]` —
whether it was waiting on the upstream or between chunks — and the process exits 0 soon after.
A real `guard serve` process in front of a fake upstream on a real socket."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from guard.testing import HANG_S, guard_process, wait_until
from guard.testing.server import BackgroundServer
from guard.testing.upstream import FakeUpstream

pytestmark = pytest.mark.socket

GRACE_S = 2.0


class Reader(threading.Thread):
    """Reads one streamed chat completion, raw, event by event."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.events: list[str] = []
        self.error: Exception | None = None
        self.ended_at = 0.0

    def run(self) -> None:
        body = {"model": "fake", "stream": True, "messages": [{"role": "user", "content": "Tell me a long story."}]}
        try:
            with httpx.stream("POST", f"{self.url}/v1/chat/completions", json=body, timeout=60) as r:
                assert r.status_code == 200
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        self.events.append(line[6:])
        except Exception as exc:
            self.error = exc
        self.ended_at = time.monotonic()


@pytest.fixture
def guard_in_front_of(
    tmp_path: Path, serve: Callable[[Any], BackgroundServer]
) -> Iterator[Callable[[FakeUpstream], tuple[subprocess.Popen[bytes], str]]]:
    started: list[Any] = []

    def start(upstream: FakeUpstream) -> tuple[subprocess.Popen[bytes], str]:
        up = serve(upstream.app())
        ctx = guard_process(
            tmp_path / "index",
            up.url,
            tmp_path / "guard.log",
            GUARD_SHUTDOWN_GRACE_S=str(GRACE_S),
            GUARD_MULTILINGUAL="off",
        )
        started.append(ctx)
        return ctx.__enter__()

    yield start
    for ctx in started:
        ctx.__exit__(None, None, None)


def refused(url: str) -> bool:
    """Whether a new connection to the guard is refused."""
    try:
        httpx.get(f"{url}/healthz", timeout=2)
    except httpx.TransportError:
        return True
    return False


@pytest.mark.parametrize("upstream", ["paced", "stalled"])
def test_an_open_stream_ends_with_an_error_event_and_done_after_the_grace(
    guard_in_front_of: Callable[[FakeUpstream], tuple[subprocess.Popen[bytes], str]], upstream: str
) -> None:
    # paced: a token every 20 ms for a minute (the guard is mostly between chunks); stalled: two chunks, then the
    # upstream says nothing more (the guard is waiting on it)
    fake = FakeUpstream(token_ms=20, tokens=3000) if upstream == "paced" else FakeUpstream(fault="stall")
    proc, url = guard_in_front_of(fake)
    reader = Reader(url)
    reader.start()
    wait_until(lambda: bool(fake.streams) and fake.streams[0]["sent"] >= 2)
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    wait_until(lambda: refused(url), what="new connections refused while draining")
    reader.join(HANG_S)
    assert not reader.is_alive() and reader.error is None, reader.error
    assert reader.events[-1] == "[DONE]"
    last = json.loads(reader.events[-2])
    assert last["error"]["code"] == "shutting_down", last
    assert reader.ended_at - signalled >= GRACE_S - 0.1  # it had its grace period (a lower bound: load only adds)
    assert proc.wait(HANG_S) == 0  # and then the process ended


def test_a_stream_that_ends_within_the_grace_ends_normally_and_the_stock_client_sees_the_cut(
    guard_in_front_of: Callable[[FakeUpstream], tuple[subprocess.Popen[bytes], str]],
) -> None:
    fake = FakeUpstream(token_ms=50, tokens=20)  # about 1 s: inside the 2 s grace
    proc, url = guard_in_front_of(fake)
    reader = Reader(url)
    reader.start()
    wait_until(lambda: bool(fake.streams) and fake.streams[0]["sent"] >= 2)
    proc.send_signal(signal.SIGTERM)
    reader.join(HANG_S)
    assert reader.error is None and reader.events[-1] == "[DONE]"
    assert all("error" not in json.loads(e) for e in reader.events[:-1])
    assert json.loads(reader.events[-2])["choices"][0]["finish_reason"] == "stop"
    assert proc.wait(HANG_S) == 0


def test_the_stock_openai_client_raises_the_shutdown_error(
    guard_in_front_of: Callable[[FakeUpstream], tuple[subprocess.Popen[bytes], str]],
) -> None:
    fake = FakeUpstream(fault="stall")
    proc, url = guard_in_front_of(fake)
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(model="fake", stream=True, messages=[{"role": "user", "content": "Hi"}])
    threading.Timer(0.5, proc.send_signal, (signal.SIGTERM,)).start()
    with pytest.raises(openai.APIError, match="shutting down"):
        for _ in stream:
            pass
    client.close()
    assert proc.wait(HANG_S) == 0
