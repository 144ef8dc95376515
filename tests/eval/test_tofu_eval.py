"""`guard eval tofu` and `guard ab` on a small slice: the metrics move the way they must."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from guard.cli import main
from guard.eval.data import Tofu
from guard.eval.targets import Targets
from guard.eval.tofu import EvalConfig, headline, run_tofu
from guard.forget.embedder import Embedder
from guard.settings import Settings
from guard.testing import ADMIN, ADMIN_TOKEN, guard_app
from guard.testing.server import BackgroundServer
from tests.conftest import TOFU_DIR

pytestmark = pytest.mark.socket  # the eval serves the oracle and the guard on real ports


async def test_eval_forget01_against_the_memorizing_model(minilm: Embedder) -> None:
    tofu = Tofu(TOFU_DIR)
    config = EvalConfig(split="forget01", retain_limit=40, seed=1, sustain=True, distractors=[30])
    with Targets(tofu, minilm, "forget01") as targets:
        raw = targets.open("raw", "oracle:ignore")
        guarded = targets.open("guarded", "guard+oracle:ignore")
        result = await run_tofu(tofu, guarded, raw, config)
    assert [s["stage"] for s in result["stages"]] == ["forget01", "+30 distractors"]
    assert [s["entries"] for s in result["stages"]] == [2, 32]
    # the raw memorizing model answers everything: the baseline reveals the gold answers
    assert result["baseline"]["retain"]["leak_keyfact"] > 0.9
    numbers = headline(result)
    assert numbers["leak_forget"] == 0.0 and numbers["leak_paraphrased"] == 0.0
    assert numbers["false_block_retain"] <= 0.05
    stage = result["stages"][0]["sets"]
    assert stage["forget"]["n"] == 40 and stage["retain"]["n"] == 40 and stage["world_facts"]["n"] == 117
    assert stage["forget"]["caught_input"] + stage["forget"]["caught_output"] == stage["forget"]["blocked"]
    assert stage["retain"]["overhead_ms_p50"] is not None
    # answer quality of what passes is the raw model's
    assert abs(stage["retain"]["rouge_recall_mean"] - result["baseline"]["retain"]["rouge_recall_mean"]) < 0.05


def test_ab_command_writes_a_report(tmp_path: Path) -> None:
    out = tmp_path / "ab"
    code = main(
        [
            "ab",
            "--split",
            "forget01",
            "--retain-limit",
            "20",
            "--out",
            str(out),
            "--endpoint",
            "base=oracle:ignore",
            "--endpoint",
            "base+guard=guard+oracle:ignore",
            "--endpoint",
            "unlearned=oracle:unlearned",
            "--attacks",
        ]
    )
    assert code == 0
    result = json.loads((out / "results.json").read_text())
    by_name = {e["name"]: e["sets"] for e in result["endpoints"]}
    assert by_name["base"]["forget"]["leak_keyfact"] > 0.9
    assert by_name["base+guard"]["forget"]["leak_keyfact"] == 0.0
    assert by_name["unlearned"]["forget"]["leak_keyfact"] < by_name["base"]["forget"]["leak_keyfact"]
    html = (out / "report.html").read_text()
    assert html.count("<svg") == 4 and "base+guard" in html
    report = (out / "report.md").read_text()
    assert "| base+guard | forget |" in report
    # --attacks: every arm faced the same cases; the memorizing model answers many, the guard stops them
    attacks = {e["name"]: e["attacks"] for e in result["endpoints"]}
    assert {a["all"]["n"] for a in attacks.values()} == {170} and attacks["base"]["all"]["errors"] == 0
    assert attacks["base"]["all"]["leak"] > 0.3 and attacks["base"]["all"]["false_blocks"] == 0.0
    assert attacks["base+guard"]["all"]["leak"] < attacks["base"]["all"]["leak"] / 4
    assert attacks["base+guard"]["classes"]["lang_fr"]["n"] == 10
    assert "## Attacks" in report and "| **all**" in report


def test_ab_for_a_live_guard_feeds_its_handoff(
    tmp_path: Path,
    settings: Settings,
    minilm: Embedder,
    serve: Callable[[Any], BackgroundServer],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`guard ab --registry` names the live guard's entries and version; `guard handoff` takes that report and
    covers exactly the entries whose figures in it are within the default policy's limits."""
    models = {"unlearned": ["http://unlearned.test"]}
    url = serve(guard_app(settings.with_values(upstream_models=models), embedder=minilm)).url
    authors = Tofu(TOFU_DIR).authors("forget01")
    ids = {}
    for a in authors:
        r = httpx.post(f"{url}/admin/forget", headers=ADMIN, json={"subject": a.name, "documents": a.answers})
        ids[a.name] = r.json()["id"]
    monkeypatch.setenv("GUARD_ADMIN_TOKEN", ADMIN_TOKEN)
    out = tmp_path / "ab"
    assert (
        main(
            [
                "ab",
                "--split",
                "forget01",
                "--retain-limit",
                "20",
                "--out",
                str(out),
                "--registry",
                url,
                "--endpoint",
                "base=oracle:ignore",
                "--endpoint",
                "unlearned=oracle:unlearned",
            ]
        )
        == 0
    )
    result = json.loads((out / "results.json").read_text())
    assert result["registry"] == {"version": 2, "entries": ids}
    unlearned = next(e for e in result["endpoints"] if e["name"] == "unlearned")
    assert sum(s["n"] for s in unlearned["subjects"].values()) == unlearned["sets"]["forget"]["n"] * 3
    capsys.readouterr()
    assert main(["handoff", "unlearned", "--report", str(out), "--url", url]) == 0
    printed = capsys.readouterr().out
    loss = max(
        next(e for e in result["endpoints"] if e["name"] == "base")["sets"][s]["rouge_recall_mean"]
        - unlearned["sets"][s]["rouge_recall_mean"]
        for s in ("retain", "real_authors", "world_facts")
    )
    expected = sorted(
        ids[name]
        for name, figures in unlearned["subjects"].items()
        if max(figures["leak_keyfact"], figures["leak_rouge"]) == 0 and loss <= 0.05
    )
    rows = httpx.get(f"{url}/admin/coverage", headers=ADMIN).json()["data"]
    assert sorted(r["entry"] for r in rows) == expected
    assert f"covers {len(expected)} of {len(ids)} entries" in printed
