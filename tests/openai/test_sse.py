from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from guard.errors import UpstreamError
from guard.openai import sse


async def feed(text: str) -> AsyncIterator[str]:
    for line in text.split("\n"):
        yield line


async def collect(text: str) -> list[dict[str, object]]:
    return [e async for e in sse.parse(feed(text))]


async def test_parses_events_and_stops_at_done() -> None:
    text = ': keep-alive\n\ndata: {"a": 1}\n\nevent: x\ndata: {"b":\ndata: 2}\n\ndata: [DONE]\n\ndata: {"c": 3}\n\n'
    assert await collect(text) == [{"a": 1}, {"b": 2}]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('data: {"a": 1}\n\n', "before \\[DONE\\]"),
        ("data: {not json}\n\n", "malformed"),
        ('data: {"error": {"message": "boom"}}\n\n', "boom"),
        ("data: [1, 2]\n\n", "malformed"),
    ],
)
async def test_faults_raise(text: str, message: str) -> None:
    with pytest.raises(UpstreamError, match=message):
        await collect(text)


def test_encode_roundtrip() -> None:
    assert sse.encode({"x": "é"}) == 'data: {"x":"é"}\n\n'.encode()
