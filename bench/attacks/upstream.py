"""An obedient memorizing model for the attack suite: it knows every case's answer, finds the case by the
nonce "(#n)" in the last user turn, and answers as the case says — in the field (content, reasoning, tool call,
refusal, top logprobs, a second choice) and the encoding the attack asked for, as JSON or as an SSE stream. It is
the test kit's fake upstream (`guard.testing`), scripted with the cases.

A request with no known nonce (e.g. one the guard rewrote) gets a plain "I don't know."
"""

from __future__ import annotations

import json
import re
from typing import Any

from guard.eval.attacks.cases import REFUSING, Case
from guard.testing import FakeUpstream, Reply, chunk, completion_body
from guard.testing.shapes import Endpoint, words

_NONCE = re.compile(r"\(#(\d+)\)")
OTHER = "The weather was mild and the markets were quiet."


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


def reply_text(case: Case, asked: str) -> str:
    if case.channel == "halves":
        words = case.answer.split(" ")
        half = len(words) // 2
        return " ".join(words[half:] if "second half" in asked else words[:half])
    return case.answer


def message_of(case: Case, text: str) -> dict[str, Any]:
    """The non-streaming message: the text in the case's field, a refusing content elsewhere."""
    channel = case.channel
    if channel in ("content", "halves", "n2"):
        return {"role": "assistant", "content": text}
    if channel in ("reasoning", "reasoning_content"):
        return {"role": "assistant", "content": REFUSING, channel: text}
    if channel == "tool_call":
        call = {"id": "call_a", "type": "function", "function": {"name": "answer", "arguments": _args(text)}}
        return {"role": "assistant", "content": None, "tool_calls": [call]}
    if channel == "function_call":
        return {"role": "assistant", "content": None, "function_call": {"name": "answer", "arguments": _args(text)}}
    if channel == "refusal":
        return {"role": "assistant", "content": None, "refusal": text}
    return {"role": "assistant", "content": REFUSING}  # top_logprobs: the text hides in the alternatives


def logprobs_of(case: Case, text: str) -> dict[str, Any] | None:
    if case.channel != "top_logprobs":
        return None
    tokens = [" " + w if i else w for i, w in enumerate(REFUSING.split(" "))]
    hidden = text.split(" ")
    per = -(-len(hidden) // len(tokens))
    entries = []
    for i, token in enumerate(tokens):
        alternatives = [{"token": " " + w, "logprob": -1.5} for w in hidden[i * per : (i + 1) * per]]
        entries.append(
            {"token": token, "logprob": -0.1, "top_logprobs": [{"token": token, "logprob": -0.1}, *alternatives]}
        )
    return {"content": entries}


def _args(text: str) -> str:
    return json.dumps({"text": text})


def obedient(cases: list[Case]) -> FakeUpstream:
    """The kit's fake upstream, answering each case's request as the case says."""
    known = {c.number: c for c in cases}

    def answer(endpoint: Endpoint, body: dict[str, Any]) -> Reply:
        asked = last_user_text(body.get("messages") or [])
        found = _NONCE.search(asked)
        case = known.get(int(found.group(1))) if found else None
        if case is None:
            return Reply("I don't know.")
        return reply_of(case, reply_text(case, asked))

    return FakeUpstream(answer, model="obedient")


def reply_of(case: Case, text: str) -> Reply:
    """The case's answer: the kit renders the plain fields; the rarer ones are written out here, JSON and stream."""
    channel = case.channel
    if channel in ("content", "halves"):
        return Reply(text)
    if channel == "tool_call":
        return Reply(tool=("answer", _args(text)))
    body = completion_body("chat", "obedient", "", rid="obedient")
    body["choices"] = [{"index": 0, "message": message_of(case, text), "logprobs": logprobs_of(case, text)}]
    body["choices"][0]["finish_reason"] = "stop"
    if channel == "n2":
        other = {"index": 0, "message": {"role": "assistant", "content": OTHER}, "logprobs": None}
        body["choices"] = [{**other, "finish_reason": "stop"}, {**body["choices"][0], "index": 1}]
    return Reply(body=body, events=events_of(case, text))


def _delta(field: str, text: str) -> dict[str, Any]:
    event = chunk("obedient", "obedient")
    event["choices"][0]["delta"][field] = text
    return event


def events_of(case: Case, text: str) -> list[dict[str, Any]]:
    """The stream of a function call, a refusal, top logprobs or two choices."""
    channel, said = case.channel, words(text)
    events = [chunk("obedient", "obedient", role="assistant", content="")]
    if channel in ("reasoning", "reasoning_content"):
        # the reasoning, then the refusing content, each word after a space (the first too): read back as the
        # client reads it, the reasoning's last word and the content's first stay two words
        events += [_delta(channel, w) for w in said]
        events += [chunk("obedient", "obedient", content=" " + w) for w in REFUSING.split(" ")]
    elif channel == "function_call":
        args = _args(text)
        events.append(chunk("obedient", "obedient", function_call={"name": "answer", "arguments": ""}))
        pieces = [args[i : i + 8] for i in range(0, len(args), 8)]
        events += [chunk("obedient", "obedient", function_call={"arguments": p}) for p in pieces]
    elif channel == "refusal":
        events += [chunk("obedient", "obedient", refusal=w) for w in said]
    elif channel == "top_logprobs":
        for entry in (logprobs_of(case, text) or {"content": []})["content"]:
            event = chunk("obedient", "obedient", content=entry["token"])
            event["choices"][0]["logprobs"] = {"content": [entry]}
            events.append(event)
    elif channel == "n2":
        events.append(chunk("obedient", "obedient", 1, role="assistant", content=""))
        other = words(OTHER)
        for i in range(max(len(said), len(other))):
            if i < len(other):
                events.append(chunk("obedient", "obedient", content=other[i]))
            if i < len(said):
                events.append(chunk("obedient", "obedient", 1, content=said[i]))
        events.append(chunk("obedient", "obedient", 1, "stop"))
    return [*events, chunk("obedient", "obedient", 0, "stop")]
