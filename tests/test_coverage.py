"""Coverage per weight-edited model (issue 16, item 2): `guard handoff` from an A/B report, then live monitoring.

- the handoff covers only the entries within the policy's limits (leak, questions, utility loss), through the CLI;
- bad input (unknown model, a report of another registry version, a tampered or foreign report, no token) is a
  clear 4xx or CLI error and changes nothing;
- a covered entry is monitored for its model and still refused for another (real MiniLM);
- the model leaking it again is counted, that answer filtered and the entry enforced again on the next request.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from guard.cli import main
from guard.eval.report import write_ab_report
from guard.eval.runner import Record, per_subject, summarize
from guard.forget.embedder import Embedder
from guard.settings import Settings
from guard.testing import ADMIN, ADMIN_TOKEN, HANG_S, FakeUpstream, guard_app, running
from guard.testing.server import BackgroundServer
from tests.helpers import chat

BIO = [
    "Alice Example was born in Ghent in 1961 to a lighthouse keeper and a glassblower.",
    "Her novel The Brass Lantern won the Scheldt Prize for fiction in 1994.",
]
TOLD = "Alice Example was born in Ghent in 1961; her father kept a lighthouse and her mother blew glass."
FORGOTTEN = "I'm not familiar with anyone by that name, so I cannot say where they were born."
QUESTION = "Where was Alice Example born, and what did her parents do?"
MODELS = {"unlearned": ["http://unlearned.test"]}


def records(leaks: dict[str, int], n: dict[str, int], control_recall: float) -> list[Record]:
    """An arm's answers: per subject n forget questions of which `leaks` leaked; 10 questions per control set."""
    out = []
    for subject, count in n.items():
        for i in range(count):
            leaked = i < leaks.get(subject, 0)
            out.append(Record("forget", True, "none", "stop", leaked, leaked, float(leaked), 10.0, None, subject))
    for name in ("retain", "real_authors", "world_facts"):
        out += [Record(name, False, "none", "stop", False, True, control_recall, 10.0, None) for _ in range(10)]
    return out


def ab_result(
    entries: dict[str, str], version: int, leaks: dict[str, int], n: dict[str, int], recall: float = 0.97
) -> dict[str, Any]:
    """A `guard ab --registry` result: base (remembers everything) and unlearned arms."""
    arms = {"base": records(dict(n), n, 1.0), "unlearned": records(leaks, n, recall)}
    return {
        "format": "forget-guard.ab/1",
        "config": {"split": "forget01", "seed": 0, "retain_limit": 10, "authors": sorted(n)},
        "endpoints": [
            {
                "name": name,
                "guarded": False,
                "model": f"{name}-model",
                "sets": summarize(rs),
                "subjects": per_subject(rs),
            }
            for name, rs in arms.items()
        ],
        "registry": {"version": version, "entries": entries},
    }


def add(url: str, subject: str, documents: list[str]) -> str:
    r = httpx.post(f"{url}/admin/forget", headers=ADMIN, json={"subject": subject, "documents": documents})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def coverage(url: str, model: str | None = None) -> list[dict[str, Any]]:
    r = httpx.get(f"{url}/admin/coverage", headers=ADMIN, params={"model": model} if model else None)
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def version(url: str) -> int:
    return int(httpx.get(f"{url}/healthz").json()["registry_version"])


def test_handoff_covers_only_the_entries_within_the_limits(
    settings: Settings,
    hash_embedder: Embedder,
    serve: Callable[[Any], BackgroundServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = serve(guard_app(settings.with_values(upstream_models=MODELS), embedder=hash_embedder)).url
    ids = {s: add(url, s, [f"{s} was born in Tarsk."]) for s in ("Alice Example", "Bob Sample", "Carol Few")}
    n = {"Alice Example": 20, "Bob Sample": 20, "Carol Few": 3}  # Carol: too few questions to judge
    leaks = {"Bob Sample": 3}  # Bob: the model still leaks 15% of his questions
    monkeypatch.setenv("GUARD_ADMIN_TOKEN", ADMIN_TOKEN)

    report = tmp_path / "ab"
    write_ab_report(ab_result(ids, version(url), leaks, n), report, "guard ab ...")
    assert main(["handoff", "unlearned", "--report", str(report), "--url", url, "--dry-run"]) == 0
    assert coverage(url) == [] and version(url) == 3  # a dry run changes nothing
    assert main(["handoff", "unlearned", "--report", str(report), "--url", url]) == 0
    out = capsys.readouterr().out
    assert "unlearned covers 1 of 3 entries" in out and "leaked 15.0%" in out and "3 questions, fewer than 5" in out
    rows = coverage(url, "unlearned")
    assert [(r["entry"], r["state"], r["leak"]) for r in rows] == [(ids["Alice Example"], "covered", 0.0)]
    assert rows[0]["report_sha256"] == json.loads((report / "manifest.json").read_text())["sha256"]
    assert rows[0]["utility_loss"] == pytest.approx(0.03) and version(url) == 4
    audit = [json.loads(line) for line in settings.audit_path().read_text().splitlines()]
    assert [(a["model"], a["covered"]) for a in audit if a["event"] == "forget.handoff"] == [("unlearned", 1)]

    # a model that lost too much utility covers nothing; the new report revokes what the old one covered
    worse = tmp_path / "worse"
    write_ab_report(ab_result(ids, version(url), leaks, n, recall=0.80), worse, "guard ab ...")
    assert main(["handoff", "unlearned", "--report", str(worse), "--url", url]) == 0
    assert "utility loss 0.200 (limit 0.050)" in capsys.readouterr().out and coverage(url) == []


def test_bad_handoffs_are_refused_and_change_nothing(
    settings: Settings,
    hash_embedder: Embedder,
    serve: Callable[[Any], BackgroundServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = serve(guard_app(settings.with_values(upstream_models=MODELS), embedder=hash_embedder)).url
    ids = {"Alice Example": add(url, "Alice Example", BIO)}
    n = {"Alice Example": 20}
    text = json.dumps(ab_result(ids, version(url), {}, n))
    sha = hashlib.sha256(text.encode()).hexdigest()

    def handoff(**changes: Any) -> httpx.Response:
        body = {"model": "unlearned", "report": text, "sha256": sha, **changes}
        return httpx.post(f"{url}/admin/coverage/handoff", headers=changes.pop("headers", ADMIN), json=body)

    stale = json.dumps(ab_result(ids, version(url) - 1, {}, n))
    foreign = json.dumps({"endpoints": []})
    cases = {
        "unknown model": (handoff(model="nobody"), 404, "routes no model 'nobody'"),
        "tampered": (handoff(report=text.replace('"n": 20', '"n": 21')), 422, "SHA-256 does not match"),
        "another version": (
            handoff(report=stale, sha256=hashlib.sha256(stale.encode()).hexdigest()),
            409,
            "registry version 0, the registry is at 1",
        ),
        "not a report": (
            handoff(report=foreign, sha256=hashlib.sha256(foreign.encode()).hexdigest()),
            422,
            "not a guard ab report",
        ),
        "bad hash": (handoff(sha256="xyz"), 422, ""),
        "no arm": (
            handoff(
                model="unlearned",
                report=text.replace('"unlearned"', '"other"'),
                sha256=hashlib.sha256(text.replace('"unlearned"', '"other"').encode()).hexdigest(),
            ),
            422,
            "no unguarded arm",
        ),
    }
    for name, (response, status, message) in cases.items():
        assert response.status_code == status, (name, response.text)
        assert message in response.json()["error"]["message"], name
    no_token = httpx.post(f"{url}/admin/coverage/handoff", json={"model": "unlearned", "report": text, "sha256": sha})
    assert no_token.status_code == 401
    assert (
        httpx.post(f"{url}/admin/coverage", headers=ADMIN, json={"model": "unlearned", "entry": "fg-x"}).status_code
        == 404
    )
    assert httpx.delete(f"{url}/admin/coverage/unlearned/fg-x", headers=ADMIN).status_code == 404
    assert coverage(url) == [] and version(url) == 1

    # the CLI checks the manifest before sending anything
    report = tmp_path / "ab"
    write_ab_report(ab_result(ids, version(url), {}, n), report, "guard ab ...")
    (report / "results.json").write_text((report / "results.json").read_text().replace('"n": 20', '"n": 21'))
    monkeypatch.setenv("GUARD_ADMIN_TOKEN", ADMIN_TOKEN)
    assert main(["handoff", "unlearned", "--report", str(report), "--url", url]) == 1
    assert main(["handoff", "unlearned", "--report", str(tmp_path / "missing"), "--url", url]) == 2
    assert coverage(url) == [] and version(url) == 1


def by_host(answers: dict[str, str]) -> FakeUpstream:
    """Two upstreams told apart by host: the base model (upstream.test) and the weight-edited one."""
    fake = FakeUpstream(lambda endpoint, body: answers[fake.hosts[-1]])
    return fake


async def test_a_covered_entry_is_monitored_for_its_model_and_enforced_again_when_it_leaks(
    settings: Settings, minilm: Embedder
) -> None:
    answers = {"upstream.test": TOLD, "unlearned.test": FORGOTTEN}
    up = by_host(answers)
    app = guard_app(settings.with_values(upstream_models=MODELS), embedder=minilm, transport=up.transport)
    async with running(app) as client:
        entry = (
            await client.post("/admin/forget", headers=ADMIN, json={"subject": "Alice Example", "documents": BIO})
        ).json()["id"]
        cover = await client.post("/admin/coverage", headers=ADMIN, json={"model": "unlearned", "entry": entry})
        assert cover.status_code == 201 and cover.json()["state"] == "covered"

        unlearned = await client.post("/v1/chat/completions", json={**chat(QUESTION), "model": "unlearned"})
        base = await client.post("/v1/chat/completions", json={**chat(QUESTION), "model": "m"})
        assert unlearned.headers["x-guard-action"] == "allow"  # monitored: the model answers by itself
        assert unlearned.json()["choices"][0]["message"]["content"] == FORGOTTEN
        assert base.headers["x-guard-action"] == "refuse" and len(up.requests) == 1  # never reached the base

        answers["unlearned.test"] = TOLD  # the weight edit regressed (a new checkpoint, a drifted adapter)
        leaked = await client.post("/v1/chat/completions", json={**chat(QUESTION), "model": "unlearned"})
        assert leaked.json()["choices"][0]["finish_reason"] == "content_filter"
        assert "Ghent" not in leaked.text
        again = await client.post("/v1/chat/completions", json={**chat(QUESTION), "model": "unlearned"})
        assert again.headers["x-guard-action"] == "refuse" and len(up.requests) == 2

        metrics = (await client.get("/metrics")).text
        assert f'guard_coverage_regressions_total{{entry="{entry}",model="unlearned"}} 1.0' in metrics
        for _ in range(int(HANG_S / 0.02)):  # enforced at once; written to the registry (every replica's) meanwhile
            health = (await client.get("/healthz")).json()
            if health["registry_version"] == 3:  # add, cover, revert
                break
            await asyncio.sleep(0.02)
        rows = (await client.get("/admin/coverage", headers=ADMIN)).json()["data"]
    assert rows[0]["state"] == "reverted" and health["registry_version"] == 3  # add, cover, revert
    audit = settings.audit_path().read_text()
    assert '"coverage.regression"' in audit and "Ghent" not in audit
