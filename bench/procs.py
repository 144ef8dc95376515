"""The processes the side-by-side benches start: guards (`guard serve`, from this tree or another, with the shipped
policies or a variant of them) and the fake upstream (`guard.testing.upstream`), and forget10 registered through
the admin API."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import httpx
import yaml

from guard.eval.data import Tofu
from guard.settings import REPO_ROOT, default_policy_file
from guard.testing.server import free_port

TOKEN = "bench-admin"


def start_guard(
    env: Mapping[str, str],
    log: Path,
    tree: Path = REPO_ROOT,
    timeout_s: float = 180,
    *,
    bare: bool = False,
    path: Sequence[Path] = (),
) -> tuple[subprocess.Popen[bytes], str]:
    """`guard serve` from `tree` with these GUARD_* settings (`bare`: `bench.bare`, every check off); returns once
    /healthz answers (a large index loads for minutes: `timeout_s`). `path`: folders searched for modules after
    `tree`, before the installed packages."""
    port = free_port()
    full = {
        **os.environ,
        **env,
        "GUARD_PORT": str(port),
        "GUARD_ADMIN_TOKEN": TOKEN,
        "GUARD_LOG_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join(map(str, [tree, *path])),
    }
    with log.open("ab") as out:
        command = [sys.executable, "-m", "bench.bare"] if bare else [sys.executable, "-m", "guard", "serve"]
        proc = subprocess.Popen(command, cwd=tree, env=full, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"guard in {tree} did not start; see {log}")
        time.sleep(0.2)


def start_fake_upstream(env: Mapping[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """The fake upstream on a free port (FAKE_* settings in `env`, see `guard.testing.upstream.from_env`)."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "guard.testing.upstream:from_env",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
    )
    return proc, f"http://127.0.0.1:{port}"


def register_forget10(url: str, tofu: Tofu) -> list[float]:
    """forget10's 20 authors (name and answers), one at a time; ms from POST to 201 for each."""
    took = []
    for author in tofu.authors("forget10"):
        started = time.perf_counter()
        r = httpx.post(
            f"{url}/admin/forget",
            headers={"authorization": f"Bearer {TOKEN}"},
            json={"subject": author.name, "documents": author.answers},
            timeout=120,
        )
        r.raise_for_status()
        took.append((time.perf_counter() - started) * 1000)
    return took


def stop(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    procs = list(procs)
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def policies(tmp: Path, shipped: Path | None = None, **fields: bool) -> Path:
    """The shipped policies (of this tree, or those in `shipped`), with these fields set in the default one."""
    d = tmp / f"policies-{len(list(tmp.glob('policies-*')))}"
    d.mkdir()
    for f in (shipped or default_policy_file().parent).glob("*.yaml"):
        raw = yaml.safe_load(f.read_text("utf-8"))
        if f.name == "default.yaml":
            raw.update(fields)
        (d / f.name).write_text(yaml.safe_dump(raw, allow_unicode=True), "utf-8")
    return d / "default.yaml"
