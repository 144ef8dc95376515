"""Metrics, the audit trail and its hash chain, monitor mode, fail mode (on_error) and proxy API keys."""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from guard.cli import main
from guard.context import RequestContext
from guard.forget.embedder import Embedder, HashEmbedder, Vectors
from guard.observe.audit import AuditLog, chain_files, verify, verify_files
from guard.settings import REPO_ROOT, Settings
from guard.testing import ADMIN, ADMIN_TOKEN, guard_app, running
from tests.helpers import FACT, add, chat, upstream_echo


def audit_records(settings: Settings) -> list[dict[str, object]]:
    return [json.loads(line) for line in settings.audit_path().read_text().splitlines()]


def metric(text: str, name: str) -> float:
    """The value of one sample line of the Prometheus exposition (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_metrics_count_actions_stages_index_and_upstream_errors(
    settings: Settings, hash_embedder: Embedder
) -> None:
    up = upstream_echo()
    app = guard_app(settings, embedder=hash_embedder, transport=up.transport)
    async with running(app) as client:
        await add(client)
        await client.post("/v1/chat/completions", json=chat("What is the capital of France?"))
        await client.post("/v1/chat/completions", json=chat("Who is Hsiao Yun-Hwa?"))
        await client.post("/v1/chat/completions", json=chat("Tell me about Hsiao Yun-Hwa", stream=True))
        await client.post("/v1/chat/completions", content=b"{oops", headers={"content-type": "application/json"})
        text = (await client.get("/metrics")).text
    assert metric(text, 'guard_requests_total{action="allow",endpoint="chat",route="a"}') == 1
    assert metric(text, 'guard_requests_total{action="refuse",endpoint="chat",route="none"}') == 2
    assert metric(text, 'guard_errors_total{status="400",type="invalid_request_error"}') == 1
    assert metric(text, 'guard_stage_seconds_count{stage="input_check"}') == 3
    assert metric(text, 'guard_stage_seconds_count{stage="output_check"}') == 1
    assert metric(text, "guard_index_entries") == 1 and metric(text, "guard_index_chunks") == 1
    assert metric(text, "guard_registry_version") == 1
    assert metric(text, 'guard_admin_changes_total{op="add"}') == 1
    assert "Hsiao" not in text and "France" not in text


async def test_failed_background_upkeep_is_exposed(settings: Settings, hash_embedder: Embedder) -> None:
    # the index's compactions and rebuilds count their failures; until now no one could read that count
    app = guard_app(settings, embedder=hash_embedder, transport=upstream_echo().transport)
    async with running(app) as client:
        assert metric((await client.get("/metrics")).text, "guard_index_upkeep_failures") == 0
        app.state.services.index.upkeep.errors += 2  # what two failed compactions leave (guard/forget/upkeep.py)
        assert metric((await client.get("/metrics")).text, "guard_index_upkeep_failures") == 2


async def test_upstream_errors_are_counted_by_route_and_kind(settings: Settings, hash_embedder: Embedder) -> None:
    def refuse_connection(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    app = guard_app(settings, embedder=hash_embedder, transport=httpx.MockTransport(refuse_connection))
    async with running(app) as client:
        r = await client.post("/v1/chat/completions", json=chat("hello"))
        text = (await client.get("/metrics")).text
    assert r.status_code == 502
    assert metric(text, 'guard_upstream_errors_total{kind="upstream_error",route="a"}') == 1
    assert metric(text, 'guard_errors_total{status="502",type="upstream_error"}') == 1


async def test_audit_log_records_who_forgot_what_and_which_entry_refused(
    settings: Settings, hash_embedder: Embedder
) -> None:
    app = guard_app(settings, embedder=hash_embedder, transport=upstream_echo(FACT).transport)
    async with running(app) as client:
        entry = await add(client, aliases=["Yun-Hwa"])
        await client.post("/v1/chat/completions", json=chat("Who is Hsiao Yun-Hwa?"), headers={"x-request-id": "r-1"})
        await client.post("/v1/chat/completions", json=chat("Tell me a story"), headers={"x-request-id": "r-2"})
        await client.post("/v1/chat/completions", json=chat("hello"), headers={"x-request-id": "r-3"})
        r = await client.delete(f"/admin/forget/{entry}", headers={**ADMIN, "x-guard-actor": "dpo@example.com"})
        assert r.status_code == 204
    records = audit_records(settings)
    events = [(r["event"], r.get("stage"), r.get("request_id")) for r in records]
    assert events[0][0] == "forget.add" and events[-1][0] == "forget.remove"
    refused = [r for r in records if r.get("request_id") == "r-1"]
    assert refused[0]["action"] == "refuse" and {m["entry"] for m in refused[0]["matches"]} == {entry}  # type: ignore[attr-defined]
    # r-2 was allowed in, but the upstream's answer was the fact: an output decision names the entry
    assert any(r.get("request_id") == "r-2" and r["action"] == "filter" for r in records)
    assert records[-1]["actor"] == "dpo@example.com" and records[-1]["entry"] == entry
    assert records[0]["actor"] == "admin" and len(str(records[0]["subject_hash"])) == 24
    raw = settings.audit_path().read_text()
    assert "Hsiao" not in raw and "Golden Compass" not in raw and "story" not in raw
    assert verify(settings.audit_path()) == (len(records), None)


def test_audit_rotation_carries_the_chain_and_finds_a_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, rotate_bytes=400)
    for i in range(30):
        log.write("decision", {"request_id": f"r{i}", "action": "refuse"})
    log.close()
    files = chain_files(path)
    assert len(files) >= 5 and files[-1] == path and all(f.stat().st_size < 600 for f in files)
    assert verify_files(files) == (30, None)
    log = AuditLog(path, rotate_bytes=400)  # a restart continues the chain in the current file
    log.write("forget.add", {"entry": "fg-1"}, sync=True)
    log.close()
    files = chain_files(path)
    assert verify_files(files) == (31, None)
    assert main(["audit", "verify", "--file", str(path)]) == 0
    assert f"31 records in {len(files)} file(s)" in capsys.readouterr().out
    # the records since a time, for a regulator: from a verified chain, oldest first
    since = json.loads(files[2].read_text().splitlines()[0])["ts"]
    out = tmp_path / "export.jsonl"
    assert main(["audit", "export", "--since", str(since), "--file", str(path), "--out", str(out)]) == 2
    iso = datetime.fromtimestamp(0, UTC).isoformat()
    assert main(["audit", "export", "--since", iso, "--file", str(path), "--out", str(out)]) == 0
    assert [json.loads(line)["seq"] for line in out.read_text().splitlines()] == list(range(1, 32))
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    # a rotated file removed from the middle, or the first one: found, and named
    middle = files[2].read_bytes()
    files[2].unlink()
    _, problem = verify_files(chain_files(path))
    assert problem is not None and problem[0] == files[3] and "a file before it is missing" in problem[1]
    assert main(["audit", "verify", "--file", str(path)]) == 1
    assert main(["audit", "export", "--since", iso, "--file", str(path)]) == 1  # a broken chain is not exported
    files[2].write_bytes(middle)
    files[0].unlink()
    _, problem = verify_files(chain_files(path))
    assert problem is not None and problem[0] == files[1] and "earlier file is missing" in problem[1]


def test_audit_chain_detects_edits_and_survives_a_torn_write(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    for i in range(5):
        log.write("decision", {"request_id": f"r{i}", "action": "refuse"})
    log.close()
    assert verify(path) == (5, None)
    with path.open("ab") as f:
        f.write(b'{"seq":6,"event":"half a li')  # a crash in the middle of a write
    log = AuditLog(path)  # reopening drops the torn line and continues the chain
    log.write("forget.add", {"entry": "fg-1"}, sync=True)
    log.close()
    assert verify(path) == (6, None)
    lines = path.read_text().splitlines()
    edited = [*lines[:2], lines[2].replace("refuse", "allow"), *lines[3:]]
    path.write_text("\n".join(edited) + "\n")
    assert verify(path) == (4, "chain broken: 'prev' does not match the line before (edited, removed or reordered)")
    path.write_text("\n".join(lines[:1] + lines[2:]) + "\n")  # a line removed
    assert verify(path)[0] == 2


async def test_monitor_mode_records_but_never_blocks_until_promoted(
    settings: Settings, hash_embedder: Embedder
) -> None:
    app = guard_app(settings, embedder=hash_embedder, transport=upstream_echo(FACT).transport)
    async with running(app) as client:
        entry = await add(client, mode="monitor")
        asked = await client.post("/v1/chat/completions", json=chat("Who is Hsiao Yun-Hwa?"))
        shown = await client.get(f"/admin/forget/{entry}", headers=ADMIN)
        text = (await client.get("/metrics")).text
        promoted = await client.patch(f"/admin/forget/{entry}", headers=ADMIN, json={"mode": "enforce"})
        again = await client.post("/v1/chat/completions", json=chat("Who is Hsiao Yun-Hwa?"))
        bad = await client.patch(f"/admin/forget/{entry}", headers=ADMIN, json={"mode": "sometimes"})
        missing = await client.patch("/admin/forget/fg-nope", headers=ADMIN, json={"mode": "monitor"})
    # monitored: the request went upstream and the answer (the fact itself) reached the client
    assert asked.headers["x-guard-action"] == "allow" and "Golden Compass" in asked.text
    assert shown.json()["mode"] == "monitor"
    assert metric(text, 'guard_monitor_matches_total{stage="input"}') == 1
    assert metric(text, 'guard_monitor_matches_total{stage="output"}') == 1
    assert promoted.status_code == 200 and promoted.json()["mode"] == "enforce"
    assert again.headers["x-guard-action"] == "refuse" and "Golden Compass" not in again.text
    assert bad.status_code == 422 and missing.status_code == 404
    records = audit_records(settings)
    monitored = [r for r in records if r["event"] == "decision" and r.get("monitored")]
    assert {r["stage"] for r in monitored} == {"input", "output"} and all(r["action"] == "allow" for r in monitored)
    assert any(r["event"] == "forget.mode" and r["mode"] == "enforce" for r in records)


async def test_a_monitor_policy_makes_its_entries_log_only(
    settings: Settings, hash_embedder: Embedder, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "default.yaml").write_text((REPO_ROOT / "policies" / "default.yaml").read_text())
    (policies / "watch.yaml").write_text("name: watch\nmode: monitor\n")
    up = upstream_echo()
    app = guard_app(
        settings.with_values(policy_file=policies / "default.yaml"),
        embedder=hash_embedder,
        transport=up.transport,
    )
    async with running(app) as client:
        watched = await add(client, policy="watch")
        r = await client.post("/v1/chat/completions", json=chat("Who is Hsiao Yun-Hwa?"))
        # an entry under the default policy is enforced: its name alone refuses
        await add(client, subject="Orlen Vasko", documents=["Orlen Vasko sails."])
        enforced = await client.post("/v1/chat/completions", json=chat("Who is Orlen Vasko?"))
    assert r.headers["x-guard-action"] == "allow" and len(up.requests) == 1
    assert enforced.headers["x-guard-action"] == "refuse" and len(up.requests) == 1
    # allowed, but matched and recorded: the input decision names the watched entry as monitored
    decisions = [d for d in audit_records(settings) if d["event"] == "decision" and d["stage"] == "input"]
    assert decisions[0]["action"] == "allow"
    assert [m["entry"] for m in decisions[0]["monitored"]] == [watched]  # type: ignore[index]


class BrokenEmbedder(Embedder):
    """Embeds normally until `broken` is set, then fails like a model that ran out of memory."""

    def __init__(self) -> None:
        self.inner = HashEmbedder()
        self.dim = self.inner.dim
        self.broken = False

    def embed(self, texts: Sequence[str]) -> Vectors:
        if self.broken:
            raise RuntimeError("embedder out of memory")
        return self.inner.embed(texts)


def policy_dir(tmp_path: Path, on_error: str) -> Path:
    d = tmp_path / f"policies-{on_error}"
    d.mkdir()
    (d / "default.yaml").write_text(f"name: default\nglobal:\n  on_error: {on_error}\n")
    return d / "default.yaml"


@pytest.mark.parametrize("stream", [False, True])
async def test_on_error_closed_refuses_when_the_embedder_fails(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture, stream: bool
) -> None:
    emb = BrokenEmbedder()
    up = upstream_echo(FACT)
    app = guard_app(
        settings.with_values(policy_file=policy_dir(tmp_path, "closed")),
        embedder=emb,
        transport=up.transport,
    )
    caplog.set_level(logging.INFO, logger="guard")
    async with running(app) as client:
        await add(client)
        emb.broken = True
        r = await client.post("/v1/chat/completions", json=chat("Tell me a story", stream=stream))
        text = (await client.get("/metrics")).text
    assert r.status_code == 200 and r.headers["x-guard-action"] == "refuse"
    assert "Golden Compass" not in r.text and up.requests == []
    assert metric(text, 'guard_check_failures_total{on_error="closed",stage="input"}') == 1
    failed = [rec for rec in caplog.records if rec.getMessage() == "check failed"]
    assert failed and failed[0].levelname == "ERROR"


async def test_on_error_closed_blocks_output_it_could_not_check(settings: Settings, tmp_path: Path) -> None:
    emb = BrokenEmbedder()
    up = upstream_echo("A harmless answer.")
    app = guard_app(
        settings.with_values(policy_file=policy_dir(tmp_path, "closed")),
        embedder=emb,
        transport=up.transport,
    )
    async with running(app) as client:
        await add(client)
        # the input check passes; the embedder breaks while the answer is being checked
        checker = app.state.services.guard.checker
        original = checker.input

        async def check_then_break(ctx: RequestContext) -> object:
            verdict = await original(ctx)
            emb.broken = True
            return verdict

        checker.input = check_then_break
        r = await client.post("/v1/chat/completions", json=chat("Tell me a story", stream=True))
    assert r.headers["x-guard-action"] == "allow" and "harmless" not in r.text
    assert '"finish_reason":"content_filter"' in r.text and r.text.endswith("data: [DONE]\n\n")


async def test_on_error_open_passes_and_counts(settings: Settings, tmp_path: Path) -> None:
    emb = BrokenEmbedder()
    up = upstream_echo("A harmless answer.")
    opened = settings.with_values(policy_file=policy_dir(tmp_path, "open"))
    app = guard_app(opened, embedder=emb, transport=up.transport)
    async with running(app) as client:
        await add(client)
        emb.broken = True
        r = await client.post("/v1/chat/completions", json=chat("Tell me a story"))
        text = (await client.get("/metrics")).text
    assert r.headers["x-guard-action"] == "allow" and "harmless" in r.text and len(up.requests) == 1
    assert metric(text, 'guard_check_failures_total{on_error="open",stage="input"}') == 1
    assert metric(text, 'guard_check_failures_total{on_error="open",stage="output"}') == 1
    assert [r["failed"] for r in audit_records(settings) if r["event"] == "decision"] == [True, True]


async def test_api_keys_guard_the_proxy_and_are_separate_from_the_admin_token(
    settings: Settings, hash_embedder: Embedder
) -> None:
    keyed = settings.with_values(api_keys=SecretStr("key-one, key-two"))
    app = guard_app(keyed, embedder=hash_embedder, transport=upstream_echo().transport)
    async with running(app) as client:
        none = await client.post("/v1/chat/completions", json=chat("hi"))
        wrong = await client.post("/v1/chat/completions", json=chat("hi"), headers={"authorization": "Bearer nope"})
        admin = await client.post("/v1/chat/completions", json=chat("hi"), headers=ADMIN)
        good = await client.post("/v1/chat/completions", json=chat("hi"), headers={"authorization": "Bearer key-two"})
        models = await client.get("/v1/models")
        key_on_admin = await client.get("/admin/forget", headers={"authorization": "Bearer key-one"})
        health = await client.get("/healthz")
    for r in (none, wrong, admin, models):
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert good.status_code == 200 and key_on_admin.status_code == 403 and health.status_code == 200
    assert ADMIN_TOKEN not in str(audit_records(settings))


async def test_every_answer_carries_the_request_id_given_or_made(settings: Settings, hash_embedder: Embedder) -> None:
    app = guard_app(settings, embedder=hash_embedder, transport=upstream_echo().transport)
    async with running(app) as client:
        given = await client.post("/v1/chat/completions", json=chat("hello"), headers={"x-request-id": "r-given"})
        made = await client.post("/v1/chat/completions", json=chat("hello"))
        streamed = await client.post("/v1/chat/completions", json=chat("hello", stream=True))
        bad = await client.post("/v1/chat/completions", json={"messages": []}, headers={"x-request-id": "r-bad"})
        long = await client.get("/healthz", headers={"x-request-id": "x" * 300})
    assert given.headers["x-request-id"] == "r-given"
    assert len(made.headers["x-request-id"]) == 32 and made.headers["x-request-id"] != streamed.headers["x-request-id"]
    assert bad.status_code == 422 and bad.headers["x-request-id"] == "r-bad"
    assert long.headers["x-request-id"] == "x" * 128
    assert made.headers.get_list("x-request-id") == [made.headers["x-request-id"]]  # set once, not twice


async def test_metrics_can_require_a_token(settings: Settings, hash_embedder: Embedder) -> None:
    settings = settings.with_values(metrics_token=SecretStr("scrape-me"))
    app = guard_app(settings, embedder=hash_embedder, transport=upstream_echo().transport)
    async with running(app) as client:
        missing = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"authorization": "Bearer nope"})
        admin = await client.get("/metrics", headers=ADMIN)  # the admin token is not the metrics token
        right = await client.get("/metrics", headers={"authorization": "Bearer scrape-me"})
        health = await client.get("/healthz")  # the load balancer's probe stays open
    assert (missing.status_code, wrong.status_code, admin.status_code) == (401, 403, 403)
    assert missing.json()["error"]["type"] and "guard_requests_total" not in missing.text + wrong.text
    assert right.status_code == 200 and "guard_requests_total" in right.text
    assert health.status_code == 200
