"""A real weight-edited model on this CPU, and the A/B report against it (issue 16, items 4 and 5). Not part of CI.

    .venv/bin/python -m bench.unlearn.run [--out DIR] [--seed N] [--method npo|gd] [--stages finetune,unlearn,ab]

1. finetune: SmolLM2-135M-Instruct (the GGUF `guard demo` serves, converted once) on TOFU forget01 plus a seeded
   retain90 sample, in rounds of epochs until greedy answers to forget01 carry their gold key facts (leak by
   key-fact match >= --target) or --max-epochs is reached. A model that does not know the facts has nothing
   to unlearn.
2. unlearn: NPO (default) or gradient difference on forget01 against the retain sample, from the fine-tuned model.
3. ab: both checkpoints served by vLLM's CPU build, then `guard ab` on forget01 with four arms (base, base+guard,
   unlearned, unlearned+guard) and `--attacks`; the report folder lands in --report.

Training runs in `.venv-model` (bench/unlearn/train.py: torch + transformers); scoring and the A/B in this
environment. Every stage's command, wall time, seed and checkpoint SHA-256 go to DIR/run.json. A stage whose
output exists is skipped (--force redoes it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from guard.eval.data import DEFAULT_DIR
from guard.eval.metrics import leak
from guard.localmodel.serve import ensure_converted, model_python, start_vllm, stop, wait_ready
from guard.settings import REPO_ROOT

TRAIN = Path(__file__).with_name("train.py")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def scores(checkpoint: Path) -> dict[str, Any]:
    """Greedy answers (generations.jsonl) scored as the eval scores them: key-fact leak and ROUGE-L recall."""
    rows = [json.loads(line) for line in (checkpoint / "generations.jsonl").read_text().splitlines()]
    out: dict[str, Any] = {}
    for split in ("forget01", "retain"):
        found = [leak(r["gold"], r["question"], r["answer"]) for r in rows if r["split"] == split]
        out[split] = {
            "n": len(found),
            "keyfact": round(sum(x.by_keyfact for x in found) / len(found), 3),
            "rouge_l_recall": round(sum(x.rouge for x in found) / len(found), 3),
        }
    return out


def train(mode: str, init: Path, out: Path, args: argparse.Namespace, epochs: int, log: list[dict[str, Any]]) -> None:
    cmd = [
        str(model_python()),
        str(TRAIN),
        mode,
        "--init",
        str(init),
        "--out",
        str(out),
        "--data",
        str(args.tofu),
        "--epochs",
        str(epochs),
        "--retain",
        str(args.retain),
        "--seed",
        str(args.seed),
    ]
    if mode == "unlearn":
        cmd += ["--method", args.method, "--lr", str(args.unlearn_lr)]
    else:
        cmd += ["--lr", str(args.lr)]
    print("$", shlex.join(cmd), flush=True)
    started = time.monotonic()
    offline = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}  # local checkpoints only
    subprocess.run(cmd, check=True, cwd=REPO_ROOT, env=offline)
    row = {
        "stage": mode,
        "command": shlex.join(cmd),
        "seconds": round(time.monotonic() - started, 1),
        "checkpoint": str(out),
        "sha256": sha256(out / "model.safetensors"),
        "scores": scores(out),
    }
    print(json.dumps(row["scores"]), flush=True)
    log.append(row)


def reused(stage: str, out: Path) -> dict[str, Any]:
    """A checkpoint made by an earlier run: its training record (arguments, wall time per epoch) and hash."""
    trained = json.loads((out / "train_log.json").read_text())
    return {
        "stage": stage,
        "reused": True,
        "checkpoint": str(out),
        "train_args": trained["args"],
        "seconds": trained["epochs"][-1]["seconds"],
        "sha256": sha256(out / "model.safetensors"),
        "scores": scores(out),
    }


def finetune(args: argparse.Namespace, log: list[dict[str, Any]]) -> Path:
    base, done = ensure_converted(), 0
    current = base
    while done < args.max_epochs:
        step = args.epochs if done == 0 else args.more_epochs
        out = args.out / f"finetuned-e{done + step}"
        if args.force or not (out / "generations.jsonl").exists():
            train("finetune", current, out, args, step, log)
        else:
            log.append(reused("finetune", out))
        done, current = done + step, out
        if scores(out)["forget01"]["keyfact"] >= args.target:
            break
    return current


def unlearn(finetuned: Path, args: argparse.Namespace, log: list[dict[str, Any]]) -> Path:
    out: Path = args.out / f"unlearned-{args.method}-e{args.unlearn_epochs}"
    if args.force or not (out / "generations.jsonl").exists():
        train("unlearn", finetuned, out, args, args.unlearn_epochs, log)
    else:
        log.append(reused("unlearn", out))
    return out


def ab(finetuned: Path, unlearned: Path, args: argparse.Namespace, log: list[dict[str, Any]]) -> None:
    """Serve both checkpoints with vLLM (CPU), then the four-arm `guard ab` with attacks."""
    servers = []
    try:
        urls = []
        for port, (path, name) in enumerate(((finetuned, "smollm2-tofu"), (unlearned, f"smollm2-tofu-{args.method}"))):
            proc = start_vllm(8301 + port, model_dir=path, name=name, log_file=args.out / f"vllm-{name}.log")
            servers.append(proc)
            urls.append(f"http://127.0.0.1:{8301 + port}")
        for url, proc in zip(urls, servers, strict=True):
            wait_ready(url + "/v1/models", proc, timeout_s=600)
        base, edited = urls
        cmd = [
            str(REPO_ROOT / ".venv" / "bin" / "guard"),
            "ab",
            "--split",
            "forget01",
            "--attacks",
            "--retain-limit",
            str(args.ab_retain),
            "--max-tokens",
            "64",
            "--seed",
            str(args.seed),
            "--out",
            str(args.report),
            "--endpoint",
            f"base={base}",
            "--endpoint",
            f"base+guard=guard+{base}",
            "--endpoint",
            f"unlearned={edited}",
            "--endpoint",
            f"unlearned+guard=guard+{edited}",
        ]
        print("$", shlex.join(cmd), flush=True)
        started = time.monotonic()
        subprocess.run(cmd, check=True, cwd=REPO_ROOT)
        log.append(
            {
                "stage": "ab",
                "command": shlex.join(cmd),
                "seconds": round(time.monotonic() - started, 1),
                "report": str(args.report),
            }
        )
    finally:
        for proc in servers:
            stop(proc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO_ROOT / ".cache" / "unlearn")
    ap.add_argument("--report", type=Path, default=REPO_ROOT / "docs" / "examples" / "ab-smollm2-forget01")
    ap.add_argument("--tofu", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--stages", default="finetune,unlearn,ab")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--retain", type=int, default=40, help="retain90 questions trained beside forget01")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--epochs", type=int, default=6, help="fine-tuning epochs of the first round")
    ap.add_argument("--more-epochs", type=int, default=2, help="epochs of each further round")
    ap.add_argument("--max-epochs", type=int, default=12)
    ap.add_argument("--target", type=float, default=0.6, help="forget01 key-fact leak the fine-tune must reach")
    ap.add_argument("--method", choices=["npo", "gd"], default="npo")
    ap.add_argument("--unlearn-epochs", type=int, default=4)
    ap.add_argument("--unlearn-lr", type=float, default=5e-5)
    ap.add_argument("--ab-retain", type=int, default=100, help="retain90 questions of the A/B")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    stages = set(args.stages.split(","))
    log: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        finetuned = finetune(args, log) if stages & {"finetune", "unlearn", "ab"} else None
        unlearned = unlearn(finetuned, args, log) if finetuned and stages & {"unlearn", "ab"} else None
        if finetuned and unlearned and "ab" in stages:
            ab(finetuned, unlearned, args, log)
    finally:
        record = {
            "seed": args.seed,
            "args": {k: str(v) for k, v in vars(args).items()},
            "seconds": round(time.monotonic() - started, 1),
            "stages": log,
        }
        (args.out / "run.json").write_text(json.dumps(record, indent=1))
        print(f"run record: {args.out / 'run.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
