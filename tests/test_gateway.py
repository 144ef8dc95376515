"""The guard inside a real LiteLLM proxy (pinned, installed once into `.peers/litellm` from the package registry):
LiteLLM with forget-guard as its `generic_guardrail_api` guardrail (pre_call and post_call) in front of the kit's
fake upstream, called by the stock `openai` client; the guard on the real MiniLM.

What it pins about LiteLLM's streaming (1.106.2, `streaming_end_of_stream_only` unset): a streamed answer's chunks
are sent to the client as they come; the guardrail reads the text so far every 5th chunk, and a block ends the
stream with an error event. What came before the check that blocked has already reached the client — a stream can
leak through the gateway, which the in-line proxy (it holds back a watched stream) does not let happen.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from pydantic import SecretStr

from guard.forget.embedder import Embedder
from guard.policy import key_id
from guard.settings import REPO_ROOT
from guard.testing import ADMIN, BackgroundServer, FakeUpstream, Reply, fixed, guard_app, settings_for, words
from guard.testing.litellm import LITELLM_KEY, start_litellm
from tests.helpers import FACT

pytestmark = [pytest.mark.socket, pytest.mark.slow]

GUARD_KEY = "gk-gateway-test"
# LiteLLM's master key reaches the guard as user_api_key_hash "litellm_proxy_master_key" (not a hash: no key id), so
# the key LiteLLM calls the guard with binds the policy, as a client key binds it on the proxy
REFUSAL = "Not through this gateway."
FINE = "Paris is the capital of France."
QUESTION = "Which award did the author of Leading with Empathy win?"
LEAKS_SECOND = (
    "That is a good question. She won the Golden Compass award for her book Leading with Empathy in 2019. "
    "Anything else?"
)


@dataclass
class Gateway:
    upstream: FakeUpstream
    guard: str
    client: openai.OpenAI

    def ask(self, text: str) -> str:
        reply = self.client.chat.completions.create(model="m", messages=[{"role": "user", "content": text}])
        return reply.choices[0].message.content or ""

    def stream(self, text: str) -> tuple[list[str], Exception | None]:
        """The content pieces that reached the client, and the error the stream ended with (None: it ended)."""
        got: list[str] = []
        try:
            messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": text}]
            for chunk in self.client.chat.completions.create(model="m", messages=messages, stream=True):
                if chunk.choices and chunk.choices[0].delta.content:
                    got.append(chunk.choices[0].delta.content)
        except openai.APIError as exc:
            return got, exc
        return got, None


@contextmanager
def running_gateway(minilm: Embedder, tmp: Path, policy: str) -> Iterator[Gateway]:
    """LiteLLM with the guard as its guardrail; `policy`: a policy file bound to the key LiteLLM calls it with."""
    upstream = FakeUpstream(fixed(FINE))
    policies = tmp / "policies"
    policies.mkdir()
    shutil.copy(REPO_ROOT / "policies" / "default.yaml", policies / "default.yaml")
    (policies / "litellm-callers.yaml").write_text(f"{policy}\napplies_to:\n  clients: [{key_id(GUARD_KEY)}]\n")
    settings = settings_for(tmp / "index", policy_file=policies / "default.yaml", api_keys=SecretStr(GUARD_KEY))
    with BackgroundServer(upstream.app()) as up, BackgroundServer(guard_app(settings, embedder=minilm)) as guard:
        body = {"subject": "Hsiao Yun-Hwa", "documents": [FACT]}
        assert httpx.post(f"{guard.url}/admin/forget", json=body, headers=ADMIN).status_code == 201
        proc, url = start_litellm(up.url, tmp, guard=guard.url, guard_key=GUARD_KEY)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=LITELLM_KEY, max_retries=0)
        try:
            yield Gateway(upstream, guard.url, client)
        finally:
            client.close()
            proc.terminate()
            proc.wait(30)


@pytest.fixture(scope="module")
def gateway(minilm: Embedder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(minilm, tmp_path_factory.mktemp("gateway"), f"refusal_text: {REFUSAL}") as gw:
        yield gw


@pytest.fixture
def gw(gateway: Gateway) -> Gateway:
    gateway.upstream.say(FINE)
    gateway.upstream.pieces = words  # one word a chunk
    return gateway


def test_a_forgotten_subject_is_refused_before_the_model(gw: Gateway) -> None:
    before = len(gw.upstream.requests)
    with pytest.raises(openai.BadRequestError) as plain:
        gw.ask("Tell me about Hsiao Yun-Hwa")
    pieces, error = gw.stream("Tell me about hsiao yunhwa, briefly")
    assert REFUSAL in str(plain.value) and plain.value.status_code == 400
    assert isinstance(error, openai.BadRequestError) and REFUSAL in str(error) and pieces == []
    assert len(gw.upstream.requests) == before  # the model never saw either
    assert gw.ask("What is the capital of France?") == FINE
    assert "".join(gw.stream("What is the capital of France?")[0]) == FINE


def test_an_answer_leaking_in_its_second_sentence_is_blocked_post_call(gw: Gateway) -> None:
    gw.upstream.say(LEAKS_SECOND)
    with pytest.raises(openai.BadRequestError) as blocked:
        gw.ask(QUESTION)
    assert REFUSAL in str(blocked.value)
    assert "Golden Compass" not in str(blocked.value)


def test_a_streamed_leak_is_cut_but_what_came_before_the_check_has_reached_the_client(gw: Gateway) -> None:
    gw.upstream.say(LEAKS_SECOND)
    pieces, error = gw.stream(QUESTION)
    assert isinstance(error, openai.APIError) and REFUSAL in str(error)
    said = "".join(pieces)
    # LiteLLM sent what came before its guardrail's check (every 5th chunk) blocked: the answer's start, up to a
    # point that depends on which check first reads enough ("She won the" is already the author's, read with
    # the question; "Golden Compass" was out before the answer check was added)
    assert said.startswith("That is a good question. She") and LEAKS_SECOND.startswith(said)
    assert "2019" not in said  # the rest was cut
    gw.upstream.say(Reply(LEAKS_SECOND, pieces=[LEAKS_SECOND]))  # one chunk: all of it is out before any check
    pieces, error = gw.stream(QUESTION)
    assert isinstance(error, openai.APIError) and "".join(pieces) == LEAKS_SECOND


def test_a_rewriting_policy_rewrites_what_litellm_sends_the_model(minilm: Embedder, tmp_path: Path) -> None:
    with running_gateway(minilm, tmp_path, "input:\n  action: rewrite\n  redact_subject: true") as gw:
        answer = gw.ask("Tell me about Hsiao Yun-Hwa")
        sent = gw.upstream.requests[-1]["messages"]
    assert answer == FINE  # a rewrite goes on to the model
    text = sent[-1]["content"]  # LiteLLM wrote back the guard's text: the instruction, then the question redacted
    assert text.index("Hsiao Yun-Hwa") < text.index("\n\n") and "Tell me about" in text.split("\n\n", 1)[1]
    assert "Hsiao" not in text.split("\n\n", 1)[1]
