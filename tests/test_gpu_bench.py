"""The GPU bench's dry run (`bench/gpu/run.sh --dry-run`): on a machine without a GPU it runs the same script the
GPU machine runs, the CPU guard only, and prints its table: so the script stays working between GPU runs. No time
is asserted: the figures only have to be there and be sane."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from guard.settings import REPO_ROOT

pytestmark = [pytest.mark.socket, pytest.mark.slow]

ROW = re.compile(r"^\| (general|near-domain) \| (direct|guard, CPU) \| [^|]+ \| ([\d.]+) \| ([\d.]+) \| ([^|]*) \|")
TOTALS = re.compile(r"^\| (direct|guard, CPU) \| ([\d.]*) \| (\d+) \|$")


def test_the_dry_run_prints_the_cpu_guards_row(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(REPO_ROOT / "bench" / "gpu" / "run.sh"), "--dry-run", "--requests", "20", "--seconds", "1"],
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "OUT": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=1200,  # a hang, not a slow machine, reaches it
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [m.groups() for m in map(ROW.match, done.stdout.splitlines()) if m]
    assert {(kind, target) for kind, target, *_ in rows} == {
        (kind, target) for kind in ("general", "near-domain") for target in ("direct", "guard, CPU")
    }
    for _, target, p50, p99, added in rows:
        assert 0 < float(p50) <= float(p99)
        assert not added.strip() if target == "direct" else float(added) > 0  # checking costs something
    totals = {m[1]: m.groups()[1:] for m in map(TOTALS.match, done.stdout.splitlines()) if m}
    assert set(totals) == {"direct", "guard, CPU"}
    cpu_ms, rps = totals["guard, CPU"]
    assert float(cpu_ms) > 0 and int(rps) > 0 and int(totals["direct"][1]) > 0
    assert "'guard, CPU': 0" in done.stdout  # nothing the short prompts ask was refused
    assert "cosine min 1.0" in done.stdout or "cosine min 0.99" in done.stdout  # the torch model = the ONNX one
    report = (tmp_path / "gpu-results.md").read_text("utf-8")
    assert "| general | guard, CPU |" in report and list(tmp_path.glob("guard-*.log"))


def test_without_onnx_the_cpu_guards_model_is_still_exported(tmp_path: Path) -> None:
    """The GPU machine has no `onnx` (not carried): the CPU guard there runs the ONNX float model, exported without
    it, and no int8 first stage (quantising needs `onnx`)."""
    script = (
        "import sys; from pathlib import Path; sys.modules['onnx'] = None; from bench.gpu.run import cpu_guard; "
        "t = cpu_guard(Path(sys.argv[1])); print(t.runs); print(t.env)"
    )
    done = subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "python"), "-c", script, str(tmp_path)],
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "minilm on onnxruntime, float only" in done.stdout and "'GUARD_FIRST_STAGE': 'off'" in done.stdout
    assert [p.name for p in tmp_path.glob("*.onnx")] == ["all-minilm-l6-v2-0.1.0.onnx"]
