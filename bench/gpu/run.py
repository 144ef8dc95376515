"""The guard with its embedder on the GPU beside the same guard on the CPU, `bench.peers`-style, in one run (issue 38,
item 3). `bench/gpu/run.sh` runs it on a machine with one NVIDIA GPU, from the carried wheels (`bench/gpu/pack.py`);
`bench/gpu/run.sh --dry-run` on a CPU machine: the CPU guard only, small counts, so that it stays working.

    python -m bench.gpu.run [--dry-run] [--requests 400] [--seconds 15]

Both guards: the shipped policies, every check on, TOFU forget10 registered through the admin API (the dry run: the
sample's 4 authors in tests/data), the multilingual model off (not carried; English prompts never reach it), and no
faiss (not carried: the guard's exact search in numpy, `guard.forget.exact`, the same results; at forget10's size a
few microseconds). The GPU guard: `GUARD_EMBEDDER_DEVICE=cuda` (half precision where it keeps cosine >= 0.999 to
the CPU float model; no int8 first stage). The CPU guard: `GUARD_EMBEDDER_DEVICE=cpu`, the default ONNX model and
its int8 first stage; where this machine cannot export the ONNX model or lacks `onnx` to quantise it, its row says
what it ran instead.

Measured with bench.peers' own functions: short distinct prompts (general; near-domain: TOFU world facts and real
authors) one at a time, non-streamed, the targets in a shuffled order for each: p50 / p99 and what each adds over
the fake upstream called directly; CPU ms per request of each guard process over that phase; requests/s of 8
closed-loop clients for --seconds each. First, the GPU model's vectors against the CPU float model's (the lowest
cosine over TOFU sentences and the start-up probes). A markdown report on stdout, and in $OUT/gpu-results.md when
OUT is set.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import platform
import random
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from bench.peers import prompts, sustained, timed
from bench.procs import cpu_seconds, register_forget10, start_fake_upstream, start_guard, stop
from guard.eval.data import DEFAULT_DIR, Tofu
from guard.forget.devices import PROBES, TorchMiniLMEmbedder
from guard.forget.embedder import Embedder, default_cache_dir, make_embedder, onnx_model
from guard.settings import REPO_ROOT
from guard.text import sentences

CARRY = Path(__file__).resolve().parent / "carry"
SAMPLE = REPO_ROOT / "tests" / "data" / "tofu-sample"
KINDS = ("general", "near-domain")
WARM_UP = 10  # requests per kind and target left out of the figures
NO_FAISS = 'raise ImportError("faiss is left out of this run (bench/gpu carries none)")\n'


@dataclass
class Target:
    label: str
    runs: str  # what it runs, for the table
    env: dict[str, str] = field(default_factory=dict)
    url: str = ""
    pid: int = 0


def tofu_dir(dry_run: bool) -> Path:
    if not dry_run:
        for folder in (CARRY / "tofu", DEFAULT_DIR):
            if (folder / "forget10.json").exists():
                return folder
    return SAMPLE


def export_without_onnx() -> None:
    """torch's ONNX export (TorchScript) imports `onnx` only to inline custom onnxscript functions, of which BERT has
    none; where `onnx` is not installed (not carried: an 18 MB wheel), that step is skipped, so the CPU guard's model
    can still be exported. torch 2.13 (here) keeps it in the first module; older releases had it in the second."""
    for name in ("torch.onnx._internal.torchscript_exporter.onnx_proto_utils", "torch.onnx._internal.onnx_proto_utils"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "_add_onnxscript_fn"):
            setattr(module, "_add_onnxscript_fn", lambda model_bytes, custom_opsets: model_bytes)  # noqa: B010


def cpu_guard(cache: Path) -> Target:
    """The same guard on the CPU: the ONNX float model and the int8 first stage, as this machine can build them."""
    env = {"GUARD_EMBEDDER_DEVICE": "cpu", "GUARD_MODEL_CACHE": str(cache)}
    try:
        importlib.import_module("onnx")
        with_onnx = True
    except ImportError:
        with_onnx = False
        export_without_onnx()
    try:
        onnx_model(cache)  # exported here, once, not inside the guard's start
    except Exception as exc:  # torch cannot export: the reference model, float only
        runs = f"minilm-torch (sentence-transformers) on the CPU, float only: no ONNX export ({type(exc).__name__})"
        return Target("guard, CPU", runs, env | {"GUARD_EMBEDDER": "minilm-torch", "GUARD_FIRST_STAGE": "off"})
    if not with_onnx:
        runs = "minilm on onnxruntime, float only: no `onnx` here to quantise the int8 first stage"
        return Target("guard, CPU", runs, env | {"GUARD_FIRST_STAGE": "off"})
    onnx_model(cache, variant="fast")
    return Target("guard, CPU", "minilm on onnxruntime + the int8 first stage (the default)", env)


def reference(cache: Path) -> Embedder:
    """The CPU float model: ONNX where it was exported, else the same weights on torch."""
    try:
        return make_embedder("minilm", cache)
    except Exception:
        return TorchMiniLMEmbedder("cpu")


def vectors_check(tofu: Tofu, device: str, cache: Path, n: int) -> tuple[str, str]:
    """(what the guard on `device` runs, a line on its vectors against the CPU float model's)."""
    answers = [s for author in tofu.authors("forget10") for row in author.rows for s in sentences(row["answer"])]
    texts = [*PROBES, *answers[:n], *(row["question"] for row in tofu.rows("world_facts")[: n // 4])]
    model = TorchMiniLMEmbedder(device)
    cosine = (model.embed(texts) * reference(cache).embed(texts)).sum(axis=1)
    runs = f"{model.name}: transformers on torch {model._torch.__version__}, {model.precision}"
    line = (
        f"{model.name} ({model.precision}) against the CPU float model over {len(texts)} texts: cosine min "
        f"{cosine.min():.6f}, median {np.median(cosine):.6f} (its start-up probes: {model.cosine:.6f})"
    )
    return runs, line


def start(targets: list[Target], upstream: str, tofu: Tofu, tmp: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    """Each guard in front of `upstream` on its own fresh index, forget10 registered; no faiss importable in them."""
    blocker = tmp / "no-faiss"
    blocker.mkdir()
    (blocker / "faiss.py").write_text(NO_FAISS, "utf-8")
    for i, target in enumerate(targets):
        env = {**target.env, "GUARD_UPSTREAM": upstream, "GUARD_INDEX_DIR": str(tmp / f"index-{i}")}
        env["GUARD_MULTILINGUAL"] = "off"
        log = tmp / f"guard-{i}.log"
        try:
            proc, target.url = start_guard(env, log, timeout_s=300, path=[blocker])
        except RuntimeError:
            print(
                f"{target.label} did not start; the end of its log:\n" + "\n".join(log.read_text().splitlines()[-40:])
            )
            raise
        procs.append(proc)
        target.pid = proc.pid
        register_forget10(target.url, tofu)


def measure(
    targets: list[Target], tofu: Tofu, requests: int
) -> tuple[dict[str, dict[str, list[float]]], dict[str, float], dict[str, int]]:
    """(ms by kind and target, CPU ms per request by guard, non-allowed answers by target)."""
    ms: dict[str, dict[str, list[float]]] = {kind: {t.label: [] for t in targets} for kind in KINDS}
    guards = [t for t in targets if t.pid]
    cpu_before = {t.label: cpu_seconds(t.pid) for t in guards}
    blocked = {t.label: 0 for t in targets}
    with httpx.Client(timeout=60) as client:
        for kind in KINDS:
            for i, text in enumerate(prompts(kind, requests + WARM_UP, tofu)):
                for target in random.sample(targets, len(targets)):
                    took, action = timed(client, target.url, text, False)
                    blocked[target.label] += action != "allow"
                    if i >= WARM_UP:
                        ms[kind][target.label].append(took)
    calls = len(KINDS) * (requests + WARM_UP)
    cpu_ms = {t.label: (cpu_seconds(t.pid) - cpu_before[t.label]) * 1000 / calls for t in guards}
    return ms, cpu_ms, blocked


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def table(
    targets: list[Target], ms: dict[str, dict[str, list[float]]], cpu_ms: dict[str, float], rps: dict[str, float]
) -> list[str]:
    lines = [
        "| prompts | target | runs | p50 ms | p99 ms | added p50 | added p99 |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in KINDS:
        direct = ms[kind]["direct"]
        for t in targets:
            mine = ms[kind][t.label]
            added = "" if t.label == "direct" else f"{statistics.median(mine) - statistics.median(direct):+.2f}"
            added99 = "" if t.label == "direct" else f"{p99(mine) - p99(direct):+.2f}"
            lines.append(
                f"| {kind} | {t.label} | {t.runs} | {statistics.median(mine):.2f} | {p99(mine):.2f} | {added} | "
                f"{added99} |"
            )
    lines += ["", "| target | CPU ms per request | req/s (8 clients) |", "|---|---|---|"]
    for t in targets:
        cpu = f"{cpu_ms[t.label]:.2f}" if t.label in cpu_ms else ""
        lines.append(f"| {t.label} | {cpu} | {rps[t.label]:.0f} |")
    return lines


def machine(dry_run: bool) -> str:
    import torch

    gpu = "no GPU: a dry run" if dry_run else torch.cuda.get_device_name(0)
    return f"{gpu}; {os.cpu_count()} cores; Python {platform.python_version()}; torch {torch.__version__}"


def run(args: argparse.Namespace) -> list[str]:
    tofu = Tofu(tofu_dir(args.dry_run))
    tmp = Path(tempfile.mkdtemp(prefix="guard-gpu-"))
    cache = default_cache_dir() if args.dry_run else tmp / "models"
    device = "cpu" if args.dry_run else "cuda"
    targets = [Target("direct", "the fake upstream"), cpu_guard(cache)]
    runs, check = vectors_check(tofu, device, cache, 60 if args.dry_run else 400)
    if not args.dry_run:
        targets.append(Target("guard, GPU", f"{runs}, no first stage", {"GUARD_EMBEDDER_DEVICE": "cuda"}))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        proc, targets[0].url = start_fake_upstream()
        procs.append(proc)
        start(targets[1:], targets[0].url, tofu, tmp, procs)
        ms, cpu_ms, blocked = measure(targets, tofu, args.requests)
        texts = prompts("general", 40_000, tofu)[args.requests + WARM_UP :]  # none seen in the phase above
        rps = {t.label: asyncio.run(sustained(t.url, texts, args.seconds)) for t in targets}
    finally:
        stop(procs)
        if os.environ.get("OUT"):  # the guards' logs (warnings and errors; never a prompt's text) beside the report
            for log in tmp.glob("*.log"):
                shutil.copy(log, Path(os.environ["OUT"]) / log.name)
    authors = len(tofu.authors("forget10"))
    return [
        f"# The GPU path (bench/gpu/run.sh{' --dry-run' if args.dry_run else ''})",
        "",
        f"{machine(args.dry_run)}. {args.requests} short distinct prompts per kind and target, non-streamed; "
        f"{authors} forget10 authors registered; every check on; multilingual off; no faiss (exact search in numpy).",
        "",
        f"Vectors: {check}.",
        "",
        *table(targets, ms, cpu_ms, rps),
        "",
        f"Answers that were not allowed (none should be): {blocked}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="no GPU: the CPU guard only, small counts")
    parser.add_argument("--requests", type=int, help="per kind of prompt and target (default 400; dry run 30)")
    parser.add_argument("--seconds", type=float, help="each sustained-throughput run (default 15; dry run 3)")
    args = parser.parse_args()
    args.requests = args.requests or (30 if args.dry_run else 400)
    args.seconds = args.seconds or (3.0 if args.dry_run else 15.0)
    report = "\n".join(run(args)) + "\n"
    print(report)
    if os.environ.get("OUT"):
        (Path(os.environ["OUT"]) / "gpu-results.md").write_text(report, "utf-8")


if __name__ == "__main__":
    main()
