"""`bench.attacks.compare`: two attack-suite runs side by side, per class and benign twin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.attacks.compare import main


def _run(path: Path, leaked: list[bool], blocked: list[bool]) -> Path:
    rows = [{"attack": "unnamed_json", "benign": False, "leaked": x, "blocked": not x} for x in leaked]
    rows += [{"attack": "unnamed_json", "benign": True, "leaked": False, "blocked": x} for x in blocked]
    path.write_text(json.dumps(rows))
    return path


def test_the_classes_that_differ_are_printed_and_identical_runs_say_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _run(tmp_path / "a.json", [True, True, False], [False, False])
    after = _run(tmp_path / "b.json", [False, True, False], [False, True])
    main([str(before), str(after)])
    assert capsys.readouterr().out.splitlines() == [
        "unnamed_json (attack): leaked 2/3 -> 1/3",
        "unnamed_json (benign): blocked 0/2 -> 1/2",
    ]
    main([str(after), str(after)])
    assert capsys.readouterr().out.strip() == "identical"
