"""The warmer (`guard.pipeline.warm`): one call at a time, the latest waiting, a growing answer warmed once."""

from __future__ import annotations

import asyncio

from guard.openai.shapes import Fields
from guard.pipeline.warm import Warmer


class Slow:
    def __init__(self, fail: bool = False) -> None:
        self.seen: list[Fields] = []
        self.release = asyncio.Event()
        self.fail = fail

    async def __call__(self, fields: Fields) -> None:
        self.seen.append(fields)
        await self.release.wait()
        if self.fail:
            raise RuntimeError("embedder down")


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_one_call_at_a_time_and_the_latest_waits() -> None:
    warm = Slow()
    warmer = Warmer(warm)
    for text in ("A.", "A. B.", "A. B. C."):
        warmer([("content", text)])
        await settle()
    assert warm.seen == [[("content", "A.")]]  # the second was replaced by the third while the first ran
    warm.release.set()
    await settle()
    assert warm.seen == [[("content", "A.")], [("content", "A. B. C.")]] and warmer.calls == 2


async def test_a_growing_answer_is_warmed_by_what_is_new() -> None:
    warm = Slow()
    warm.release.set()
    warmer = Warmer(warm, growing=True)
    for fields in ([("content", "One.")], [("content", "One. Two.")], [("content", "One. Two."), ("reasoning", "R.")]):
        warmer(fields)
        await settle()
    assert warm.seen == [[("content", "One.")], [("content", " Two.")], [("reasoning", "R.")]]


async def test_a_failure_is_left_to_the_check_and_cancel_drops_what_waits() -> None:
    warm = Slow(fail=True)
    warmer = Warmer(warm)
    warmer([("content", "A.")])
    await settle()
    warmer([("content", "A. B.")])
    warmer.cancel()
    warm.release.set()
    await settle()
    assert warm.seen == [[("content", "A.")]]  # no error escaped; the waiting call was dropped
    warmer([("content", "C.")])  # usable again
    await settle()
    assert warm.seen[-1] == [("content", "C.")]
