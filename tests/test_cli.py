from __future__ import annotations

import io
import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from guard.cli import main
from guard.forget.embedder import Embedder
from guard.settings import Settings
from guard.testing import ADMIN_TOKEN, guard_app, guard_process
from guard.testing.server import BackgroundServer


def test_forget_add_ls_rm_through_the_admin_api(
    settings: Settings,
    hash_embedder: Embedder,
    serve: Callable[[Any], BackgroundServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = serve(guard_app(settings, embedder=hash_embedder)).url
    monkeypatch.setenv("GUARD_ADMIN_TOKEN", ADMIN_TOKEN)
    docs = tmp_path / "docs.txt"
    docs.write_text("First fact about Alice.\nStill the first document.\n\nSecond document. Two sentences.\n")

    assert (
        main(["forget", "add", "Alice Example", "--alias", "A. Example", "--documents", str(docs), "--url", url]) == 0
    )
    created = json.loads(capsys.readouterr().out)
    assert created["chunks"] == 4

    monkeypatch.setattr("sys.stdin", io.StringIO("Bob's only secret."))
    assert main(["forget", "add", "Bob", "--documents", "-", "--policy", "rewrite", "--url", url]) == 0
    bob = json.loads(capsys.readouterr().out)["id"]

    assert main(["forget", "ls", "--url", url]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [(e["subject"], e["documents"], e["policy"]) for e in listing["data"]] == [
        ("Alice Example", 2, None),
        ("Bob", 1, "rewrite"),
    ]
    assert "secret" not in json.dumps(listing)

    assert main(["forget", "add", "Carol", "--monitor", "--url", url]) == 0
    carol = json.loads(capsys.readouterr().out)["id"]
    assert main(["forget", "mode", carol, "enforce", "--url", url]) == 0
    assert json.loads(capsys.readouterr().out)["mode"] == "enforce"

    assert main(["forget", "rm", bob, "--url", url]) == 0
    assert main(["forget", "rm", bob, "--url", url]) == 1
    assert "HTTP 404" in capsys.readouterr().err

    audit = settings.audit_path()
    assert main(["audit", "verify", "--file", str(audit)]) == 0
    assert "5 records in 1 file(s), hash chain intact" in capsys.readouterr().out
    lines = audit.read_text().splitlines()
    audit.write_text("\n".join([lines[0], *lines[2:]]) + "\n")
    assert main(["audit", "verify", "--file", str(audit)]) == 1
    assert "line 2: chain broken" in capsys.readouterr().err


@pytest.mark.socket
def test_forget_needs_a_token_and_a_reachable_guard(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GUARD_ADMIN_TOKEN", raising=False)
    assert main(["forget", "ls"]) == 2
    monkeypatch.setenv("GUARD_ADMIN_TOKEN", "x")
    assert main(["forget", "ls", "--url", "http://127.0.0.1:9"]) == 1
    assert "cannot reach" in capsys.readouterr().err


def test_serve_with_a_bad_policy_fails_at_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "default.yaml"
    bad.write_text("global:\n  ngram_words: 1\n")
    assert main(["serve", "--policy", str(bad), "--index-dir", str(tmp_path / "idx")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "global.ngram_words" in err


@pytest.mark.socket
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_exits_0_on_sigterm_and_sigint(tmp_path: Path, sig: signal.Signals) -> None:
    """docker stop, systemd and timeout send SIGTERM: a clean shutdown, exit 0 (uvicorn re-raises the signal
    after its graceful shutdown; before, that killed the process with -15)."""
    with guard_process(tmp_path / "index", "http://127.0.0.1:9", tmp_path / "guard.log") as (proc, _):
        proc.send_signal(sig)
        assert proc.wait(30) == 0, (tmp_path / "guard.log").read_text()[-2000:]
