"""An acknowledged forget request survives `kill -9` of the guard at any moment.

A real `guard serve` process takes a burst of adds and deletes from several threads and is killed with SIGKILL in
the middle of it. After a restart on the same index directory, every acknowledged add is listed and enforced and
every acknowledged delete is gone — whatever was in flight at the kill may have gone either way.
"""

from __future__ import annotations

import os
import random
import signal
import string
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from guard.testing import ADMIN, BackgroundServer, FakeUpstream, fixed, guard_process, wait_until

pytestmark = pytest.mark.socket  # real servers, processes or sockets

WRITERS = 4


def name(rng: random.Random) -> str:
    return (
        "Zq"
        + "".join(rng.choices(string.ascii_lowercase, k=8))
        + " Vr"
        + "".join(rng.choices(string.ascii_lowercase, k=8))
    )


class Burst:
    """Threads that add and delete entries as fast as the guard answers, recording what was acknowledged."""

    def __init__(self, url: str, seed: int) -> None:
        self.url = url
        self.added: dict[str, str] = {}  # id -> subject, 201 received
        self.deleted: dict[str, str] = {}  # id -> subject, 204 received
        self.uncertain: set[str] = set()  # a delete was in flight when the guard died
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(seed + i,)) for i in range(WRITERS)]

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)
        mine: list[tuple[str, str]] = []
        with httpx.Client(base_url=self.url, headers=ADMIN, timeout=10) as client:
            while not self.stop.is_set():
                try:
                    if mine and rng.random() < 0.3:
                        entry_id, subject = mine.pop(rng.randrange(len(mine)))
                        with self.lock:
                            self.uncertain.add(entry_id)
                        r = client.delete(f"/admin/forget/{entry_id}")
                        assert r.status_code == 204, r.text
                        with self.lock:
                            self.uncertain.discard(entry_id)
                            self.deleted[entry_id] = subject
                    else:
                        subject = name(rng)
                        doc = f"{subject} keeps the secret number {rng.randrange(10**6)} in a drawer."
                        r = client.post("/admin/forget", json={"subject": subject, "documents": [doc]})
                        assert r.status_code == 201, r.text
                        with self.lock:
                            self.added[r.json()["id"]] = subject
                        mine.append((r.json()["id"], subject))
                except httpx.TransportError:
                    return  # the guard is gone

    def __enter__(self) -> Burst:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)


def test_acknowledged_changes_survive_kill_9(tmp_path: Path, serve: Callable[[Any], BackgroundServer]) -> None:
    upstream = serve(FakeUpstream(fixed("I do not know that person.")).app()).url
    index_dir = tmp_path / "index"
    log = tmp_path / "guard.log"
    added: dict[str, str] = {}
    deleted: dict[str, str] = {}
    uncertain: set[str] = set()
    rng = random.Random(7)
    # the multilingual model is off here: it doubles the cost of an add (~50 ms a sentence on CPU), and this test
    # needs many acknowledged writes in flight when the process dies, not a second embedding of each
    for cycle in range(3):
        with guard_process(index_dir, upstream, log, GUARD_MULTILINGUAL="off") as (proc, url):
            with Burst(url, seed=100 * cycle) as burst:
                # the kill point is a count of acknowledged adds, not a time: a busy machine acknowledges fewer
                # a second, and a burst too short would prove nothing
                target = rng.randrange(21, 60)
                wait_until(lambda: len(burst.added) >= target, what=f"{target} acknowledged adds")  # noqa: B023 (called at once)
                os.kill(proc.pid, signal.SIGKILL)  # in the middle of the burst
                proc.wait(10)
            added |= burst.added
            deleted |= burst.deleted
            uncertain = (uncertain | burst.uncertain) - deleted.keys()

    with guard_process(index_dir, upstream, log) as (_, url):
        listed = {e["id"] for e in httpx.get(url + "/admin/forget", headers=ADMIN).json()["data"]}
        must_exist = added.keys() - deleted.keys() - uncertain
        assert must_exist <= listed, f"{len(must_exist - listed)} acknowledged adds were lost"
        assert not (deleted.keys() & listed), "acknowledged deletes came back"
        with httpx.Client(base_url=url, timeout=10) as client:
            for entry_id, subject in list(added.items()):
                if entry_id in uncertain:
                    continue
                r = client.post(
                    "/v1/chat/completions",
                    json={"model": "m", "messages": [{"role": "user", "content": f"Who is {subject}?"}]},
                )
                expected = "allow" if entry_id in deleted else "refuse"
                assert r.headers["x-guard-action"] == expected, (entry_id, entry_id in deleted)
