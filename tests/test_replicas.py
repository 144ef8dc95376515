"""Two real `guard serve` replicas sharing one PostgreSQL registry (a throw-away cluster), driven by the openai client.

- a forget entry added through replica A comes to be enforced by replica B; a delete through B is honoured by A
  (how fast: `python -m bench.replicas`; here only that it happens, with a deadline only a hang would reach);
- PostgreSQL killed (immediate stop, like a crash) and restarted: writes meanwhile get a 503 and change nothing,
  both replicas keep enforcing what they had, nothing acknowledged is lost, both catch up once it is back;
- a replica killed with SIGKILL and restarted catches up with what was changed while it was down;
- coverage of an entry by a weight-edited model (`guard handoff`), made through one replica, holds on the other.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import openai
import pytest

from guard.testing import ADMIN, BackgroundServer, FakeUpstream, fixed, guard_process, wait_until
from guard.testing.pg import PgCluster

pytestmark = pytest.mark.socket  # real servers, processes or sockets

POLL_S = "0.5"


def action(url: str, subject: str, model: str = "m") -> str:
    with openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=30) as client:
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": f"Where was {subject} born?"}]
        )
    return str(raw.headers["x-guard-action"])


def add(url: str, subject: str) -> str:
    body = {"subject": subject, "documents": [f"{subject} was born in Tarsk in 1950 and wrote The Salt Ledger."]}
    r = httpx.post(url + "/admin/forget", json=body, headers=ADMIN, timeout=30)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def health(url: str) -> dict[str, object]:
    return dict(httpx.get(url + "/healthz", timeout=5).json())


@pytest.fixture
def upstream(serve: Callable[[object], BackgroundServer]) -> str:
    return serve(FakeUpstream(fixed("I do not know that person.")).app()).url


class Replicas:
    """Replica processes by name, each in its own index dir, all on one PostgreSQL registry."""

    def __init__(self, dsn: str, upstream: str, tmp: Path) -> None:
        self.dsn, self.upstream, self.tmp = dsn, upstream, tmp
        self._running: dict[str, ExitStack] = {}

    def start(self, label: str, **env: str) -> str:
        stack = ExitStack()
        _, url = stack.enter_context(
            guard_process(
                self.tmp / label,
                self.upstream,
                self.tmp / f"{label}.log",
                GUARD_REGISTRY_DSN=self.dsn,
                GUARD_REGISTRY_POLL_S=POLL_S,
                GUARD_EMBEDDER="minilm",
                **env,
            )
        )
        self._running[label] = stack
        return str(url)

    def kill(self, label: str) -> None:
        """SIGKILL (guard_process kills what is still running when it exits)."""
        self._running.pop(label).close()

    def close(self) -> None:
        for stack in self._running.values():
            stack.close()


@pytest.fixture
def replicas(pg_dsn: str, upstream: str, tmp_path: Path) -> Iterator[Replicas]:
    group = Replicas(pg_dsn, upstream, tmp_path)
    try:
        yield group
    finally:
        group.close()


def test_replicas_share_adds_and_deletes(replicas: Replicas) -> None:
    a, b = replicas.start("a"), replicas.start("b")
    assert action(b, "Orlen Vasko") == "allow"
    entry = add(a, "Orlen Vasko")
    assert action(a, "Orlen Vasko") == "refuse"  # enforced on A when acknowledged
    wait_until(lambda: action(b, "Orlen Vasko") == "refuse", what="A's add enforced on B")
    assert httpx.delete(f"{b}/admin/forget/{entry}", headers=ADMIN).status_code == 204
    wait_until(lambda: action(a, "Orlen Vasko") == "allow", what="B's delete honoured on A")
    assert health(a)["registry_version"] == health(b)["registry_version"] == 2


def test_replicas_hash_the_same_subject_alike_in_their_audit_trails(replicas: Replicas) -> None:
    """One salt for the fleet (kept in the registry): each replica's own salt file differs, their hashes do not."""
    a, b = replicas.start("a"), replicas.start("b")
    add(a, "Orlen Vasko")
    add(b, "Orlen Vasko")
    add(b, "Mira Tolst")
    hashes = {}
    for label in ("a", "b"):
        audit = (replicas.tmp / label / "audit.jsonl").read_text().splitlines()
        hashes[label] = [json.loads(line)["subject_hash"] for line in audit if '"forget.add"' in line]
    assert hashes["a"][0] == hashes["b"][0] != hashes["b"][1]
    salts = {(replicas.tmp / label / "salt").read_text() for label in ("a", "b")}
    assert len(salts) == 2  # the local salt files differ: the registry's salt is the one used


def test_postgres_crash_loses_nothing_and_replicas_catch_up(replicas: Replicas, pg_cluster: PgCluster) -> None:
    a, b = replicas.start("a"), replicas.start("b")
    kept = add(a, "Mira Tolst")
    wait_until(lambda: action(b, "Mira Tolst") == "refuse")

    pg_cluster.kill()
    try:
        body = {"subject": "Lost Cause", "documents": ["x y z"]}
        r = httpx.post(f"{a}/admin/forget", json=body, headers=ADMIN, timeout=30)  # 503 after the pool timeout
        assert r.status_code == 503 and r.json()["error"]["type"] == "registry_unavailable", r.text
        # both keep enforcing what they had, and say they cannot reach the registry
        assert action(a, "Mira Tolst") == action(b, "Mira Tolst") == "refuse"
        wait_until(lambda: health(b)["status"] == "degraded")
        assert health(b)["registry"]["reachable"] is False  # type: ignore[index]
    finally:
        pg_cluster.start()

    wait_until(lambda: health(a)["status"] == health(b)["status"] == "ok")
    log = (replicas.tmp / "b.log").read_text()
    assert log.count("registry unreachable") == 1  # one warning per outage, not one per poll or reconnect
    assert "error connecting" not in log
    listed = httpx.get(f"{b}/admin/forget", headers=ADMIN).json()["data"]
    assert [e["id"] for e in listed] == [kept]  # the acknowledged add survived; the refused one never happened
    later = add(b, "Pell Danner")
    wait_until(lambda: action(a, "Pell Danner") == "refuse")
    assert health(a)["registry_version"] == health(b)["registry_version"] == 2
    assert later


def test_a_restarted_replica_catches_up(replicas: Replicas) -> None:
    a, b = replicas.start("a"), replicas.start("b")
    first = add(a, "Ives Morrow")
    wait_until(lambda: action(b, "Ives Morrow") == "refuse")
    replicas.kill("a")
    # while A is down, B changes the registry
    assert httpx.delete(f"{b}/admin/forget/{first}", headers=ADMIN).status_code == 204
    second = add(b, "Tova Rask")
    a = replicas.start("a")  # the same index dir: it loads from the registry, which is ahead now
    assert action(a, "Tova Rask") == "refuse"
    assert action(a, "Ives Morrow") == "allow"
    assert health(a)["registry_version"] == health(b)["registry_version"] == 3
    assert [e["id"] for e in httpx.get(f"{a}/admin/forget", headers=ADMIN).json()["data"]] == [second]


def test_coverage_propagates_between_replicas(replicas: Replicas) -> None:
    models = json.dumps({"unlearned": [replicas.upstream]})
    a, b = replicas.start("a", GUARD_UPSTREAM_MODELS=models), replicas.start("b", GUARD_UPSTREAM_MODELS=models)
    entry = add(a, "Orlen Vasko")
    wait_until(lambda: action(b, "Orlen Vasko", "unlearned") == "refuse")
    r = httpx.post(f"{a}/admin/coverage", headers=ADMIN, json={"model": "unlearned", "entry": entry}, timeout=30)
    assert r.status_code == 201, r.text
    assert action(a, "Orlen Vasko", "unlearned") == "allow"  # enforced as covered on A when acknowledged
    wait_until(lambda: action(b, "Orlen Vasko", "unlearned") == "allow", what="A's coverage honoured on B")
    assert action(b, "Orlen Vasko") == "refuse"  # another model: still refused
    assert httpx.delete(f"{b}/admin/coverage/unlearned/{entry}", headers=ADMIN, timeout=30).status_code == 204
    wait_until(lambda: action(a, "Orlen Vasko", "unlearned") == "refuse", what="B's uncover honoured on A")
    assert health(a)["registry_version"] == health(b)["registry_version"] == 3
