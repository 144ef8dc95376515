"""The hold-back filter in isolation: a fake check that blocks any text containing SECRET."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from guard.checks.evidence import ALLOW, Action, Evidence, Verdict
from guard.pipeline.holdback import HoldBack, StreamOutcome, filter_stream
from guard.policy import Policy

BLOCK = Verdict(Action.filter, (Evidence("e1", "verbatim", 1.0),), policy=Policy(name="p", refusal_text="REFUSED"))


def chunk(
    text: str | None = None, finish: str | None = None, index: int = 0, logprobs: Any = None, **delta: Any
) -> dict[str, Any]:
    d = dict(delta)
    if text is not None:
        d["content"] = text
    choice = {"index": index, "delta": d, "finish_reason": finish, "logprobs": logprobs}
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [choice]}


async def events(items: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for item in items:
        yield item


class Checker:
    def __init__(self) -> None:
        self.seen: list[str] = []

    async def __call__(self, fields: list[tuple[str, str]]) -> Verdict:
        text = "".join(t for _, t in fields)
        self.seen.append(text)
        return BLOCK if "SECRET" in text.replace(" ", "") else ALLOW


async def run(
    items: list[dict[str, Any]], hold: int = 400, choices: int = 1, hold_all: bool = False
) -> tuple[list[dict[str, Any]], Checker]:
    check = Checker()
    out = [
        c
        async for c in filter_stream(
            events(items), HoldBack("chat", check, hold, choices, hold_all=hold_all), StreamOutcome()
        )
    ]
    return out, check


async def released_before(items: list[dict[str, Any]], marker: str, **kw: Any) -> str:
    """The text the client had received when the chunk carrying `marker` was read from the upstream."""
    received: list[str] = []
    seen_marker = False

    async def upstream() -> AsyncIterator[dict[str, Any]]:
        nonlocal seen_marker
        for item in items:
            if marker in str(item):
                seen_marker = True
                snapshot.append("".join(received))
            yield item

    snapshot: list[str] = []
    hold = HoldBack("chat", Checker(), kw.get("hold", 400), 1, hold_all=kw.get("hold_all", False))
    async for c in filter_stream(upstream(), hold, StreamOutcome()):
        received.append(c["choices"][0]["delta"].get("content") or "" if c.get("choices") else "")
    assert seen_marker
    return snapshot[0]


def text_of(out: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content", "") for c in out if c.get("choices"))


async def test_clean_text_passes_verbatim_chunks_in_order() -> None:
    items = [chunk("", role="assistant"), chunk("Hello"), chunk(" there."), chunk(" Bye"), chunk(None, "stop")]
    out, check = await run(items)
    assert out == items  # upstream chunks are released untouched
    # checked at the sentence end (before " Bye" is held), then the rest with the released text as context
    assert check.seen == ["Hello there.", "Hello there. Bye"]


async def test_text_is_checked_before_release_and_blocked_span_never_leaves() -> None:
    items = [chunk("Fine first sentence. "), chunk("The SE"), chunk("CR"), chunk("ET is out"), chunk(None, "stop")]
    out, _ = await run(items, hold=10)
    assert "SE" not in text_of(out).replace("REFUSED", "")
    assert text_of(out) == "Fine first sentence. \n\nREFUSED"
    assert out[-1]["choices"][0]["finish_reason"] == "content_filter"


async def test_secret_split_across_a_release_is_caught_with_context() -> None:
    # hold=1 releases every chunk; the check sees released context + new text, so SEC|RET is still found
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


async def test_nothing_of_a_sentence_leaves_before_the_sentence_ends() -> None:
    # many small chunks: no chunk count releases text; only the sentence end does, and only whole sentences
    words = ["Her", " father", " was", " a", " civil", " engineer", ".", " She", " was", " born", " in", " Taipei", "."]
    items = [chunk(w) for w in words] + [chunk(None, "stop")]
    assert await released_before(items, "' She'") == ""
    assert await released_before(items, "' Taipei'") == "Her father was a civil engineer."


async def test_short_lines_are_not_sentence_ends() -> None:
    items = [chunk(w + "\n") for w in ["Hsiao", "Yun", "Hwa", "engineer", "Taipei"]] + [chunk(None, "stop")]
    assert await released_before(items, "Taipei") == ""  # one word a line: held until the end
    prose = "A line of ordinary prose that is long enough to count as a finished line of text.\n"
    assert await released_before([chunk(prose), chunk("Next"), chunk(None, "stop")], "Next") == ""
    assert await released_before([chunk(prose), chunk("Next"), chunk("x"), chunk(None, "stop")], "'x'") == prose


async def test_a_name_split_across_deltas_is_caught_before_release() -> None:
    items = [chunk("Fine. "), chunk("The SE"), chunk("CR"), chunk("ET"), chunk(" is out."), chunk(None, "stop")]
    out, check = await run(items)
    assert text_of(out) == "Fine. \n\nREFUSED" and "The SECRET is out." in check.seen[-1]


async def test_under_watch_the_answer_is_held_to_its_end_and_logprobs_dropped() -> None:
    logprobs = {"content": [{"token": "Fine", "logprob": -0.1, "top_logprobs": [{"token": "x", "logprob": -2}]}]}
    items = [chunk("Fine. ", logprobs=logprobs), chunk("All good. "), chunk("Done."), chunk(None, "stop")]
    assert await released_before(items, "Done.", hold_all=True) == ""
    out, _ = await run(items, hold_all=True)
    assert text_of(out) == "Fine. All good. Done." and all(c["choices"][0].get("logprobs") is None for c in out)


async def test_a_blocked_reasoning_stream_ends_the_answer() -> None:
    items = [
        chunk(None, reasoning="The SEC"),
        chunk(None, reasoning="RET."),
        chunk("Fine answer."),
        chunk(None, "stop"),
    ]
    out, _ = await run(items)
    assert text_of(out) == "REFUSED" and "reasoning" not in str(out) and "Fine answer" not in str(out)


async def test_logprob_alternatives_are_checked() -> None:
    alternatives = [{"token": t, "logprob": -2} for t in ("SEC", "RET")]
    logprobs = {"content": [{"token": "Hi", "logprob": -0.1, "top_logprobs": alternatives}]}
    out, _ = await run([chunk("Hi.", logprobs=logprobs), chunk(None, "stop")])
    assert text_of(out) == "REFUSED" and "RET" not in str(out)
