"""`guard eval tofu` and `guard ab` on a small slice: the metrics move the way they must."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from guard.cli import main
from guard.eval.data import Tofu
from guard.eval.targets import Targets
from guard.eval.tofu import EvalConfig, headline, run_tofu
from guard.forget.embedder import Embedder
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
    code = main(["ab", "--split", "forget01", "--retain-limit", "20", "--out", str(out),
                 "--endpoint", "base=oracle:ignore", "--endpoint", "base+guard=guard+oracle:ignore",
                 "--endpoint", "unlearned=oracle:unlearned"])  # fmt: skip
    assert code == 0
    result = json.loads((out / "results.json").read_text())
    by_name = {e["name"]: e["sets"] for e in result["endpoints"]}
    assert by_name["base"]["forget"]["leak_keyfact"] > 0.9
    assert by_name["base+guard"]["forget"]["leak_keyfact"] == 0.0
    assert by_name["unlearned"]["forget"]["leak_keyfact"] < by_name["base"]["forget"]["leak_keyfact"]
    html = (out / "report.html").read_text()
    assert html.count("<svg") == 4 and "base+guard" in html
    assert "| base+guard | forget |" in (out / "report.md").read_text()
