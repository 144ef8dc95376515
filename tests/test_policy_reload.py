"""Policies bound to models and client keys, and their hot reload: on change (polled) and on SIGHUP, validated
first; a refused set keeps the running one and says why in /healthz."""

from __future__ import annotations

import asyncio
import shutil
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from guard.errors import PolicyError
from guard.forget.embedder import Embedder
from guard.forget.registry import Entry
from guard.policy import PolicySet, key_id
from guard.policy_watch import PolicyWatcher
from guard.settings import REPO_ROOT, Settings
from guard.testing import ADMIN, HANG_S, guard_app, guard_process, running
from tests.helpers import add, chat, upstream_echo

ASK = "Tell me about Hsiao Yun-Hwa"
DEFAULT_REFUSAL = "I'm sorry, but I can't share information about that."


def policy_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    shutil.copy(REPO_ROOT / "policies" / "default.yaml", folder / "default.yaml")
    return folder


def write(path: Path, text: str) -> None:
    """Write a policy file so that a poll sees a new signature even within one mtime tick (size changes too)."""
    path.write_text(text)


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = HANG_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


def entry(policy: str | None = None) -> Entry:
    return Entry(id="e1", subject="S", aliases=(), policy=policy, created_at=0.0, documents=1, chunks=1)


def test_the_most_specific_binding_is_the_requests_policy(tmp_path: Path) -> None:
    folder = policy_dir(tmp_path)
    k1, k2 = key_id("key-one"), key_id("key-two")
    write(folder / "for-model.yaml", "refusal_text: model\napplies_to:\n  models: [edited]\n")
    write(folder / "for-key.yaml", f"refusal_text: key\napplies_to:\n  clients: [{k1}]\n")
    write(folder / "for-both.yaml", f"refusal_text: both\napplies_to:\n  clients: [{k1}]\n  models: [edited]\n")
    write(folder / "named.yaml", "refusal_text: named\n")
    policies = PolicySet.load(folder / "default.yaml")

    def text(model: str, client: str | None, policy: str | None = None) -> str:
        return policies.for_request(model, client).for_entry(entry(policy)).refusal_text

    assert text("edited", k1) == "both"
    assert text("base", k1) == "key"
    assert text("edited", k2) == "model" and text("edited", None) == "model"
    assert text("base", k2) == DEFAULT_REFUSAL and text("base", None) == DEFAULT_REFUSAL
    assert text("edited", k1, policy="named") == "named"  # an entry registered with its own policy keeps it
    assert text("edited", k1, policy="only-on-another-replica") == "both"  # not a KeyError (a 500)
    assert policies.for_request("edited", None).default.name == "for-model"
    assert policies.default.name == "default"  # the running set itself is unchanged


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a.yaml": "applies_to:\n  models: [m]\n", "b.yaml": "applies_to:\n  models: [m, n]\n"}, "both bound"),
        ({"a.yaml": "applies_to:\n  clients: [not-a-key-id]\n"}, "hex"),
        ({"a.yaml": "applies_to: {}\n"}, "at least one"),
        ({"default.yaml": "name: default\napplies_to:\n  models: [m]\n"}, "every request"),
    ],
)
def test_bad_bindings_fail_naming_why(tmp_path: Path, files: dict[str, str], message: str) -> None:
    folder = policy_dir(tmp_path)
    for name, text in files.items():
        write(folder / name, text)
    with pytest.raises(PolicyError, match=message):
        PolicySet.load(folder / "default.yaml")


async def test_policies_reload_on_change_and_a_refused_set_keeps_the_running_one(
    tmp_path: Path, settings: Settings, hash_embedder: Embedder
) -> None:
    folder = policy_dir(tmp_path)
    settings = settings.with_values(policy_file=folder / "default.yaml", policy_reload_s=0.02)
    up = upstream_echo()
    app = guard_app(settings, embedder=hash_embedder, transport=up.transport)

    async def ask(model: str) -> httpx.Response:
        return await client.post("/v1/chat/completions", json={**chat(ASK), "model": model})

    async def health() -> dict[str, object]:
        policies: dict[str, object] = (await client.get("/healthz")).json()["policies"]
        return policies

    async with running(app) as client:
        await add(client)
        assert (await ask("edited")).headers["x-guard-action"] == "refuse"
        assert (await health())["ok"] is True and (await health())["loads"] == 1

        # a policy bound to one model, in monitor mode: that model is answered, the others still refused
        write(folder / "edited.yaml", "mode: monitor\napplies_to:\n  models: [edited]\n")
        await until(lambda: _loads(health, 2))
        assert (await ask("edited")).headers["x-guard-action"] == "allow"
        assert (await ask("base")).headers["x-guard-action"] == "refuse"

        # an invalid file: refused, named in /healthz, the running set stays
        write(folder / "broken.yaml", "input:\n  semantic_threshold: high\n")
        await until(lambda: _refused(health))
        status = await health()
        assert "broken.yaml" in str(status["error"]) and "input.semantic_threshold" in str(status["error"])
        assert status["loads"] == 2 and "edited" in status["policies"]  # type: ignore[operator]
        assert (await ask("edited")).headers["x-guard-action"] == "allow"
        metrics = (await client.get("/metrics")).text
        assert 'guard_policy_reloads_total{outcome="refused"}' in metrics

        # a set that shapes the index differently: refused too (a restart applies it)
        text = (folder / "default.yaml").read_text()
        write(folder / "default.yaml", text.replace("ngram_words: 12", "ngram_words: 9"))
        (folder / "broken.yaml").unlink()
        await until(lambda: _error_says(health, "restart"))
        write(folder / "default.yaml", text)
        await until(lambda: _loads(health, 3))
        assert (await health())["ok"] is True

        # a policy registered entries name cannot go away
        r = await client.post(
            "/admin/forget",
            json={"subject": "Basil Al-Kuwaiti", "documents": ["A writer."], "policy": "edited"},
            headers=ADMIN,
        )
        assert r.status_code == 201, r.text
        (folder / "edited.yaml").unlink()
        await until(lambda: _error_says(health, "edited"))
        assert (await ask("edited")).headers["x-guard-action"] == "allow"  # still the running set
        assert len([line for line in up.requests if line.get("model") == "edited"]) == 3


async def test_a_reload_that_sets_a_request_only_field_in_an_entry_only_policy_is_refused(tmp_path: Path) -> None:
    folder = policy_dir(tmp_path)
    policies = PolicySet.load(folder / "default.yaml")
    outcomes: list[str] = []

    async def no_entries() -> list[str | None]:
        return []

    watcher = PolicyWatcher(policies, folder / "default.yaml", no_entries, interval_s=0, on_reload=outcomes.append)
    write(folder / "named.yaml", "speculative: true\n")
    assert await watcher.reload("test") is False
    assert outcomes == ["refused"] and policies.names() == ["default"]  # the running set stays
    assert "named.yaml" in str(watcher.status()["error"]) and "'speculative'" in str(watcher.status()["error"])
    write(folder / "named.yaml", "speculative: true\napplies_to:\n  models: [m]\n")  # bound: the request's policy
    assert await watcher.reload("test") is True and watcher.status()["ok"] is True


async def _loads(health: Callable[[], Awaitable[dict[str, object]]], n: int) -> bool:
    return (await health())["loads"] == n


async def _refused(health: Callable[[], Awaitable[dict[str, object]]]) -> bool:
    return (await health())["ok"] is False


async def _error_says(health: Callable[[], Awaitable[dict[str, object]]], word: str) -> bool:
    return word in str((await health())["error"] or "")


async def test_a_policy_bound_to_a_client_key(tmp_path: Path, settings: Settings, hash_embedder: Embedder) -> None:
    folder = policy_dir(tmp_path)
    write(folder / "tenant.yaml", f"refusal_text: Not for tenant B.\napplies_to:\n  clients: [{key_id('key-b')}]\n")
    settings = settings.with_values(policy_file=folder / "default.yaml", api_keys=SecretStr("key-a,key-b"))
    app = guard_app(settings, embedder=hash_embedder, transport=upstream_echo().transport)
    async with running(app) as client:
        await add(client)
        texts = {}
        for key in ("key-a", "key-b"):
            r = await client.post("/v1/chat/completions", json=chat(ASK), headers={"authorization": f"Bearer {key}"})
            texts[key] = r.json()["choices"][0]["message"]["content"]
    assert texts == {"key-a": DEFAULT_REFUSAL, "key-b": "Not for tenant B."}


@pytest.mark.socket
def test_sighup_reloads_a_running_guard_and_keeps_it_alive(tmp_path: Path) -> None:
    folder = policy_dir(tmp_path)
    env = {"GUARD_POLICY_FILE": str(folder / "default.yaml"), "GUARD_POLICY_RELOAD_S": "0"}  # SIGHUP only
    with guard_process(tmp_path / "index", "http://127.0.0.1:9", tmp_path / "guard.log", **env) as (proc, url):
        write(folder / "other.yaml", "output:\n  semantic: [maybe]\n")
        proc.send_signal(signal.SIGHUP)
        status = _wait_health(url, lambda s: s["ok"] is False)
        assert "other.yaml" in status["error"] and status["loads"] == 1
        write(folder / "other.yaml", "refusal_text: other\napplies_to:\n  models: [m2]\n")
        time.sleep(0.05)
        assert httpx.get(url + "/healthz").json()["policies"]["ok"] is False  # no poll: only a signal reloads
        proc.send_signal(signal.SIGHUP)
        status = _wait_health(url, lambda s: s["loads"] == 2)
        assert status["ok"] is True and status["bindings"] == {"other": ["model:m2"]}
        assert proc.poll() is None
    assert "policy reload refused" in (tmp_path / "guard.log").read_text()


def _wait_health(url: str, ok: Callable[[dict[str, object]], bool]) -> dict[str, object]:
    deadline = time.monotonic() + HANG_S
    while True:
        status: dict[str, object] = httpx.get(url + "/healthz", timeout=2).json()["policies"]
        if ok(status):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
