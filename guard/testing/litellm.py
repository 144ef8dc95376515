"""LiteLLM's proxy (`litellm[proxy]`, pinned) in its own virtual environment, started offline on loopback: the
peer the benchmarks compare with (`bench.peers`), and the gateway the guard is tested inside (tests/test_gateway.py).

Installed on first use from the package registry into `.peers/litellm` (git-ignored); it starts with the cost map
bundled in the wheel (LITELLM_LOCAL_MODEL_COST_MAP), no database, telemetry off, one worker. With `guard` set, the
guard is its guardrail: `generic_guardrail_api`, modes pre_call and post_call, on every request.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from guard.settings import REPO_ROOT
from guard.testing.server import free_port

# 1.106.2: the release the issue measured; it has the generic guardrail API. Not 1.107.0, the release that was
# compromised on PyPI.
LITELLM = "litellm[proxy]==1.106.2"
LITELLM_VENV = REPO_ROOT / ".peers" / "litellm"
LITELLM_KEY = "sk-bench-0123456789abcdef"  # LiteLLM refuses to start without a master key of some strength
GUARDRAIL = "forget-guard"


def ensure_litellm() -> Path:
    """The LiteLLM proxy's executable, installed into its own environment when missing."""
    exe = LITELLM_VENV / "bin" / "litellm"
    stamp = LITELLM_VENV / f".installed-{LITELLM.split('==')[1]}"
    if not stamp.is_file():
        print(f"installing {LITELLM} into {LITELLM_VENV} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        pip = [str(LITELLM_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, LITELLM], check=True)
        stamp.touch()
    return exe


def config(upstream: str, guard: str | None = None, guard_key: str | None = None) -> str:
    """LiteLLM's config.yaml: model `m` on `upstream`; with `guard`, the guard as its guardrail on every call."""
    text = (
        "model_list:\n"
        "  - model_name: m\n"
        "    litellm_params: {model: openai/m, api_base: '" + upstream + "/v1', api_key: none}\n"
        "litellm_settings: {telemetry: false}\n"
    )
    if guard is not None:
        text += (
            "guardrails:\n"
            f"  - guardrail_name: {GUARDRAIL}\n"
            "    litellm_params:\n"
            "      guardrail: generic_guardrail_api\n"
            "      mode: [pre_call, post_call]\n"
            f"      api_base: '{guard}'\n"
            + (f"      api_key: '{guard_key}'\n" if guard_key else "")
            + "      default_on: true\n"
        )
    return text


def start_litellm(
    upstream: str, tmp: Path, guard: str | None = None, guard_key: str | None = None, timeout_s: float = 180.0
) -> tuple[subprocess.Popen[bytes], str]:
    """LiteLLM's proxy on a free port (its log in `tmp/litellm.log`), and its URL once it answers."""
    exe = ensure_litellm()
    path = tmp / "litellm.yaml"
    path.write_text(config(upstream, guard, guard_key))
    port = free_port()
    env = {
        **os.environ,
        "LITELLM_MASTER_KEY": LITELLM_KEY,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "DISABLE_ADMIN_UI": "True",
    }
    env.pop("DATABASE_URL", None)
    with (tmp / "litellm.log").open("ab") as log:
        proc = subprocess.Popen(
            [str(exe), "--config", str(path), "--port", str(port), "--num_workers", "1"],
            cwd=tmp,
            env=env,
            stdout=log,
            stderr=log,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url + "/health/liveliness", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"LiteLLM did not start; see {tmp / 'litellm.log'}")
