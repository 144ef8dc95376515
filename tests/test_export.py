"""The forget set handed to the weight-level job (issue 16): `GET /admin/export` and `guard export`."""

from __future__ import annotations

import hashlib
import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from guard.admin.export import verify
from guard.cli import main
from guard.forget.embedder import Embedder
from guard.settings import Settings
from guard.testing import ADMIN, ADMIN_TOKEN, guard_app, running
from guard.testing.server import BackgroundServer

DOCUMENTS = ["Alice was born in Ghent in 1961. She wrote the Brass Lantern.", "Her father was a baker."]
QA = [{"question": "Where was Alice Example born?", "answer": "In Ghent, in 1961."}]
ALICE = {"subject": "Alice Example", "aliases": ["A. Example"], "documents": DOCUMENTS, "qa": QA}
BOB = {"subject": "Bob Sample", "documents": ["Bob's only secret."], "policy": "rewrite", "mode": "monitor"}


def lines_of(body: bytes) -> tuple[list[bytes], dict[str, Any]]:
    *lines, last = body.splitlines(keepends=True)
    return lines, json.loads(last)["manifest"]


async def test_export_gives_every_entry_with_its_sentences_and_a_manifest_that_verifies(
    settings: Settings, hash_embedder: Embedder
) -> None:
    app = guard_app(settings, embedder=hash_embedder)
    async with running(app) as client:
        ids = [(await client.post("/admin/forget", json=e, headers=ADMIN)).json()["id"] for e in (ALICE, BOB)]
        removed = (await client.post("/admin/forget", json={"subject": "Gone"}, headers=ADMIN)).json()["id"]
        assert (await client.delete(f"/admin/forget/{removed}", headers=ADMIN)).status_code == 204
        r = await client.get("/admin/export", headers=ADMIN)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    lines, manifest = lines_of(r.content)
    assert verify(lines, manifest) is None
    assert manifest["entries"] == 2 and manifest["registry_version"] == 4  # 3 adds and a removal
    assert r.headers["x-guard-registry-version"] == "4"
    alice, bob = (json.loads(line) for line in lines)
    assert [alice["id"], bob["id"]] == ids  # in the order they were added
    assert alice["subject"] == "Alice Example" and alice["aliases"] == ["A. Example"]
    assert alice["sentences"] == [
        "Alice was born in Ghent in 1961.",
        "She wrote the Brass Lantern.",
        "Her father was a baker.",
        "In Ghent, in 1961.",
    ]
    assert alice["documents"] == [" ".join(alice["sentences"])] and alice["qa"] == QA
    assert (bob["policy"], bob["mode"], bob["sentences"]) == ("rewrite", "monitor", ["Bob's only secret."])
    assert bob["qa"] == []
    # a line changed or dropped on the way no longer verifies
    assert verify([lines[0].replace(b"1961", b"1962"), lines[1]], manifest) is not None
    assert verify(lines[:1], manifest) is not None
    # audited before the text left: who, the version, the count and the hash; never the text
    records = [json.loads(line) for line in settings.audit_path().read_text().splitlines()]
    exported = [rec for rec in records if rec["event"] == "forget.export"]
    assert len(exported) == 1 and exported[0]["sha256"] == manifest["sha256"] and exported[0]["entries"] == 2
    assert "Ghent" not in settings.audit_path().read_text() and "Alice" not in json.dumps(exported)


async def test_export_needs_the_admin_token(settings: Settings, hash_embedder: Embedder) -> None:
    app = guard_app(settings, embedder=hash_embedder)
    async with running(app) as client:
        await client.post("/admin/forget", json=ALICE, headers=ADMIN)
        missing = await client.get("/admin/export")
        wrong = await client.get("/admin/export", headers={"authorization": "Bearer nope"})
    assert (missing.status_code, wrong.status_code) == (401, 403)
    assert "Ghent" not in missing.text + wrong.text and missing.json()["error"]["type"]
    assert not any('"forget.export"' in line for line in settings.audit_path().read_text().splitlines())


def test_guard_export_writes_the_entries_and_manifest_owner_readable_only(
    settings: Settings,
    hash_embedder: Embedder,
    serve: Callable[[Any], BackgroundServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = serve(guard_app(settings, embedder=hash_embedder)).url
    out = tmp_path / "export"
    monkeypatch.delenv("GUARD_ADMIN_TOKEN", raising=False)
    assert main(["export", "--out", str(out), "--url", url]) == 2 and not out.exists()
    monkeypatch.setenv("GUARD_ADMIN_TOKEN", "wrong")
    assert main(["export", "--out", str(out), "--url", url]) == 1 and not out.exists()
    monkeypatch.setenv("GUARD_ADMIN_TOKEN", ADMIN_TOKEN)
    assert main(["forget", "add", "Alice Example", "--url", url]) == 0
    capsys.readouterr()
    assert main(["export", "--out", str(out), "--url", url]) == 0
    assert "1 entries at registry version 1" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    lines = (out / "entries.jsonl").read_bytes().splitlines(keepends=True)
    assert verify(lines, manifest) is None and json.loads(lines[0])["subject"] == "Alice Example"
    assert all(stat.S_IMODE((out / f).stat().st_mode) == 0o600 for f in ("entries.jsonl", "manifest.json"))


async def test_the_tofu_layout_gives_question_answer_records_and_the_other_entries_documents(
    settings: Settings,
    hash_embedder: Embedder,
    serve: Callable[[Any], BackgroundServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = serve(guard_app(settings, embedder=hash_embedder)).url
    for body in (ALICE, BOB):
        assert httpx.post(f"{url}/admin/forget", json=body, headers=ADMIN).status_code == 201
    bad = httpx.post(f"{url}/admin/forget", json={**BOB, "qa": [{"question": "", "answer": "x"}]}, headers=ADMIN)
    assert bad.status_code == 422 and bad.json()["error"]["param"].startswith("qa")
    monkeypatch.setenv("GUARD_ADMIN_TOKEN", ADMIN_TOKEN)
    out = tmp_path / "tofu"
    assert main(["export", "--out", str(out), "--url", url, "--layout", "tofu"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    forget = json.loads((out / "forget.json").read_text())
    documents = json.loads((out / "forget_documents.json").read_text())
    alice_id = json.loads((out / "entries.jsonl").read_text().splitlines()[0])["id"]
    assert forget == [{**QA[0], "subject": "Alice Example", "entry_id": alice_id}]
    assert [(d["subject"], d["text"]) for d in documents] == [("Bob Sample", "Bob's only secret.")]
    assert manifest["layout"] == "tofu" and manifest["entries"] == 2
    assert {n: hashlib.sha256((out / n).read_bytes()).hexdigest() for n in manifest["files"]} == manifest["files"]
    assert stat.S_IMODE((out / "forget.json").stat().st_mode) == 0o600
