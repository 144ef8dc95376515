"""The test kit's fake upstream (guard.testing) does what tests rely on: scripted JSON and SSE, reasoning and tool
calls in both, requests recorded, faults down to bytes that are not HTTP. In process, then on real sockets."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from guard.testing import HANG_S, BackgroundServer, FakeUpstream, Reply, fixed
from guard.testing.shapes import Endpoint

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def deltas(text: str) -> dict[str, str]:
    """Every delta field of a chat stream, its pieces joined (tool call arguments as text)."""
    out: dict[str, str] = {}
    for line in text.split("\n\n"):
        if line.startswith("data: {"):
            for choice in json.loads(line[6:])["choices"]:
                for key, value in choice["delta"].items():
                    if key == "tool_calls":
                        key, value = "arguments", value[0]["function"]["arguments"]
                    out[key] = out.get(key, "") + str(value)
    return out


async def ask(fake: FakeUpstream, url: str = "http://upstream.test", **body: Any) -> httpx.Response:
    async with httpx.AsyncClient(transport=fake.transport, base_url=url) as client:
        return await client.post("/v1/chat/completions", json={**CHAT, **body})


async def test_a_script_answers_in_json_and_in_a_stream_and_every_request_is_recorded() -> None:
    def answer(endpoint: Endpoint, body: dict[str, Any]) -> str:
        return f"Seen {len(fake.requests)} on {fake.hosts[-1]}."

    fake = FakeUpstream(answer)
    plain = await ask(fake, "http://a.test")
    streamed = await ask(fake, "http://b.test", stream=True)
    assert plain.json()["choices"][0]["message"]["content"] == "Seen 1 on a.test."
    assert deltas(streamed.text)["content"] == "Seen 2 on b.test." and streamed.text.endswith("data: [DONE]\n\n")
    assert [r.get("stream") for r in fake.requests] == [None, True] and fake.hosts == ["a.test", "b.test"]


async def test_reasoning_and_a_tool_call_travel_in_their_own_fields() -> None:
    fake = FakeUpstream(fixed(Reply(reasoning="Think first.", tool=("lookup", '{"q": "x"}'))))
    message = (await ask(fake)).json()["choices"][0]["message"]
    assert message["reasoning"] == "Think first." and message["content"] is None
    assert message["tool_calls"][0]["function"] == {"name": "lookup", "arguments": '{"q": "x"}'}
    fields = deltas((await ask(fake, stream=True)).text)
    assert fields["reasoning"] == "Think first." and fields["arguments"] == '{"q": "x"}'


async def test_faults_and_other_models_are_answered_as_a_broken_server_would() -> None:
    fake = FakeUpstream(model="m")
    assert (await ask(fake, model="other")).status_code == 404
    for fault, status in (("status", 500), ("html", 503), ("malformed", 200)):
        fake.fault = fault
        r = await ask(fake)
        assert r.status_code == status and "choices" not in r.text  # no completion in any of them
    fake.fault = "cut"
    assert "[DONE]" not in (await ask(fake, stream=True)).text


@pytest.mark.socket
def test_on_a_socket_garbage_is_not_http_and_a_hang_ends_when_the_client_leaves(
    serve: Callable[[Any], BackgroundServer],
) -> None:
    garbage = serve(FakeUpstream(fixed(Reply(fault="garbage"))).app())
    with socket.create_connection(("127.0.0.1", garbage.port), timeout=HANG_S) as conn:
        conn.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
        received = b""
        while piece := conn.recv(4096):
            received += piece
    assert received == b"NOT HTTP AT ALL\r\n\r\n"

    hanging = FakeUpstream(fault="hang")
    url = serve(hanging.app()).url
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url + "/v1/chat/completions", json=CHAT, timeout=0.5)
    assert hanging.released.wait(HANG_S)


@pytest.mark.socket
def test_on_a_socket_an_aborted_stream_drops_the_connection_midway(serve: Callable[[Any], BackgroundServer]) -> None:
    fake = FakeUpstream(fixed("Once upon a time"), fault="abort")
    url = serve(fake.app()).url
    lines: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("POST", url + "/v1/chat/completions", json={**CHAT, "stream": True}, timeout=HANG_S) as r,
    ):
        lines.extend(r.iter_lines())
    assert any("Once" in line for line in lines) and not any("[DONE]" in line for line in lines)
