"""The hold-back filter in isolation: a fake check that blocks any text containing SECRET."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from guard.checks.evidence import ALLOW, Action, Evidence, Verdict
from guard.pipeline.holdback import StreamOutcome, filter_stream

BLOCK = Verdict(Action.filter, (Evidence("e1", "verbatim", 1.0),))


def chunk(text: str | None = None, finish: str | None = None, index: int = 0, **delta: Any) -> dict[str, Any]:
    d = dict(delta)
    if text is not None:
        d["content"] = text
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": index, "delta": d, "finish_reason": finish}]}  # fmt: skip


async def events(items: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for item in items:
        yield item


class Checker:
    def __init__(self) -> None:
        self.seen: list[str] = []

    async def __call__(self, text: str) -> Verdict:
        self.seen.append(text)
        return BLOCK if "SECRET" in text.replace(" ", "") else ALLOW


async def run(items: list[dict[str, Any]], hold: int = 4, choices: int = 1) -> tuple[list[dict[str, Any]], Checker]:
    check = Checker()
    out = [
        c
        async for c in filter_stream(
            events(items), endpoint="chat", check=check, hold_back_tokens=hold,
            refusal=lambda verdict: "REFUSED", choices=choices, outcome=StreamOutcome(),
        )
    ]  # fmt: skip
    return out, check


def text_of(out: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content", "") for c in out if c.get("choices"))


async def test_clean_text_passes_verbatim_chunks_in_order() -> None:
    items = [chunk("", role="assistant"), chunk("Hello"), chunk(" there."), chunk(" Bye"), chunk(None, "stop")]
    out, check = await run(items)
    assert out == items  # upstream chunks are released untouched
    assert check.seen == ["Hello there. Bye"]  # checked once, at the boundary; the text-less finish is not re-checked


async def test_text_is_checked_before_release_and_blocked_span_never_leaves() -> None:
    items = [chunk("Fine first sentence. "), chunk("The SE"), chunk("CR"), chunk("ET is out"), chunk(None, "stop")]
    out, _ = await run(items, hold=10)
    assert "SE" not in text_of(out).replace("REFUSED", "")
    assert text_of(out) == "Fine first sentence. \n\nREFUSED"
    assert out[-1]["choices"][0]["finish_reason"] == "content_filter"


async def test_secret_split_across_a_release_is_caught_with_context() -> None:
    # hold=1 releases every token; the check sees released context + new text, so SEC|RET is still found
    items = [chunk("SEC"), chunk("RET"), chunk(" more"), chunk(None, "stop")]
    out, _ = await run(items, hold=1)
    assert text_of(out) == "SEC\n\nREFUSED"


async def test_stops_reading_after_a_block_but_passes_usage_otherwise() -> None:
    usage = {"id": "c", "object": "chat.completion.chunk", "choices": [], "usage": {"total_tokens": 3}}
    out, _ = await run([chunk("ok."), chunk(None, "stop"), usage])
    assert out[-1] == usage
    blocked, _ = await run([chunk("SECRET."), chunk(None, "stop"), usage, chunk("late")])
    assert blocked[-1]["choices"][0]["finish_reason"] == "content_filter" and usage not in blocked


async def test_choices_are_filtered_independently() -> None:
    items = [
        chunk("good.", index=0),
        chunk("SECRET.", index=1),
        chunk(None, "stop", index=0),
        chunk(None, "stop", index=1),
    ]
    out, _ = await run(items, choices=2)
    by_index: dict[int, str] = {}
    for c in out:
        ch = c["choices"][0]
        by_index[ch["index"]] = by_index.get(ch["index"], "") + (ch["delta"].get("content") or "")
    assert by_index == {0: "good.", 1: "REFUSED"}


async def test_tool_call_arguments_are_checked() -> None:
    call = {"index": 0, "function": {"name": "lookup", "arguments": '{"q": "SECRET"}'}}
    out, _ = await run([chunk(None, tool_calls=[call]), chunk(None, "tool_calls")])
    assert "tool_calls" not in str(out) and text_of(out) == "REFUSED"


async def test_choice_left_open_by_upstream_is_still_checked() -> None:
    out, check = await run([chunk("SECRET")], hold=50)
    assert text_of(out) == "REFUSED" and check.seen == ["SECRET"]
