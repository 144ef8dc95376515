"""Streaming on real sockets: a slow SSE upstream, the guard on uvicorn, a client reading as bytes arrive.

httpx.ASGITransport buffers whole responses, so incremental delivery and early upstream close are only
observable like this.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from guard.forget.embedder import Embedder, HashEmbedder
from guard.settings import Settings
from guard.testing import ADMIN, guard_app, wait_until
from guard.testing.server import BackgroundServer
from guard.testing.upstream import FakeUpstream, fixed

pytestmark = pytest.mark.socket  # real servers, processes or sockets

SECRET = "Hsiao Yun-Hwa's secret manuscript is hidden in the Taipei lighthouse."
PIECES = [
    "Here is a harmless opening sentence.",
    " It talks about the weather.",
    *(" " + word for word in SECRET.split()),
    *[" Then the story goes on."] * 30,  # seconds of generation left after the secret: a loaded machine's
    " The end.",  # slower check still finds the upstream running, to cancel it
]
DELAY_S = 0.15
SECRET_DONE = 3 + len(SECRET.split())  # events the upstream has sent once the whole secret sentence is out


def test_blocked_span_never_reaches_the_client(
    settings: Settings, minilm: Embedder, serve: Callable[[Any], BackgroundServer]
) -> None:
    fake = FakeUpstream(fixed("".join(PIECES)), token_ms=DELAY_S * 1000)
    fake.pieces = lambda text: PIECES
    upstream = serve(fake.app())
    guard = serve(guard_app(settings.with_values(upstream=upstream.url), embedder=minilm))
    with httpx.Client(base_url=guard.url, timeout=30) as client:
        r = client.post("/admin/forget", headers=ADMIN, json={"subject": "Hsiao Yun-Hwa", "documents": [SECRET]})
        assert r.status_code == 201
        received: list[tuple[int, str]] = []  # (events the upstream had sent by then, the line)
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "Tell me a story."}]}
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200 and response.headers["x-guard-action"] == "allow"
            for line in response.iter_lines():
                if line:
                    received.append((fake.streams[0]["sent"], line))
    text = "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for _, line in received
        if line.startswith("data: {")
    )
    # the clean sentences arrived, and arrived while the upstream was still generating (incremental release)
    assert text.startswith("Here is a harmless opening sentence. It talks about the weather.")
    sent_by_then = next(sent for sent, line in received if "harmless" in line)
    assert sent_by_then < SECRET_DONE
    # nothing of the forgotten sentence was released; the stream ended cleanly
    for word in ("secret", "manuscript", "lighthouse", "Hsiao"):
        assert word not in text
    assert text.endswith("I'm sorry, but I can't share information about that.")
    assert json.loads(received[-2][1][6:])["choices"][0]["finish_reason"] == "content_filter"
    assert received[-1][1] == "data: [DONE]"
    # the guard stopped reading: the upstream never got to finish its generation
    wait_until(lambda: fake.streams[0]["cancelled"], what="the upstream stream cancelled")
    assert not fake.streams[0]["completed"]


SLOW = ["A first", " sentence that", " takes its", " time to end.", " Then another", " one."]


def _first_content(url: str, fake: FakeUpstream) -> tuple[int, str]:
    """How many events the upstream had sent when the first chunk with content reached the client, and the whole
    answer: an order of events, not a time, so a busy machine cannot turn it around."""
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "Say something."}]}
    first, text = None, ""
    with (
        httpx.Client(base_url=url, timeout=30) as client,
        client.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: {"):
                piece = json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                if piece and first is None:
                    first = int(fake.streams[-1]["sent"])
                text += piece
    assert first is not None
    return first, text


def test_with_nothing_to_forget_the_stream_is_not_held_to_sentence_ends(
    settings: Settings, serve: Callable[[Any], BackgroundServer]
) -> None:
    """No entry, or the checks off: no check could hold a sentence back, so chunks leave as they come (a real
    model's first sentence takes a second or so to write). Once an entry exists, the next request is held to
    sentence ends again."""
    fake = FakeUpstream(fixed("".join(SLOW)), token_ms=250)
    fake.pieces = lambda text: SLOW
    upstream = serve(fake.app())
    on = settings.with_values(upstream=upstream.url)
    guard = serve(guard_app(on, embedder=HashEmbedder()))
    bare = serve(guard_app(on, embedder=HashEmbedder(), checks=False))
    sentence_end = 1 + 4  # the role chunk, then the fourth chunk ends the first sentence
    for url in (guard.url, bare.url):
        first, text = _first_content(url, fake)
        assert first < sentence_end, (url, first)  # it left before the sentence was complete
        assert text == "".join(SLOW)
    r = httpx.post(f"{guard.url}/admin/forget", headers=ADMIN, json={"subject": "Hsiao Yun-Hwa", "documents": [SECRET]})
    assert r.status_code == 201
    first, text = _first_content(guard.url, fake)
    assert first >= sentence_end and text == "".join(SLOW)  # held until its sentence had ended
