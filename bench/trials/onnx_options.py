"""onnxruntime options for MiniLM, tried and not shipped (bench/RESULTS.md, issue 15), side by side in one run:
the transformer graph fusion of `onnxruntime.transformers.optimizer` (vectors, and time per short text), and one
intra-op thread against two, with and without spinning (latency and CPU per short request of 2 + 1 texts).

    .venv/bin/python -m bench.trials.onnx_options
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from pathlib import Path

import onnxruntime as ort
from onnxruntime.transformers import optimizer

from guard.forget.embedder import OnnxMiniLMEmbedder, default_cache_dir, onnx_model

SHORT = ["Write a Python function that reverses a linked list.", "Who wrote the novel 'Pride and Prejudice'?"]


def session(path: Path, threads: int, spin: bool) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads, options.log_severity_level = threads, 1, 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def p50_ms(embedder: OnnxMiniLMEmbedder, text: str) -> float:
    embedder.embed([text])
    times = []
    for _ in range(40):
        started = time.perf_counter()
        embedder.embed([text])
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def main() -> None:
    plain = onnx_model(default_cache_dir(), int8=False)
    fused_path = Path(tempfile.mkdtemp()) / "fused.onnx"
    optimizer.optimize_model(str(plain), model_type="bert", num_heads=12, hidden_size=384).save_model_to_file(
        str(fused_path)
    )
    base, fused = OnnxMiniLMEmbedder(threads=2), OnnxMiniLMEmbedder(threads=2)
    fused._session = session(fused_path, 2, spin=False)
    a, b = base.embed(SHORT * 50), fused.embed(SHORT * 50)
    print(f"fusion: lowest cosine to the plain graph {float((a * b).sum(axis=1).min()):.7f}")
    for text in SHORT:
        print(f"  {text!r}: plain {p50_ms(base, text):.2f} ms, fused {p50_ms(fused, text):.2f} ms p50")
    requests = [f"{SHORT[0]} ({i})" for i in range(200)]
    for threads in (1, 2):
        for spin in (False, True):
            embedder = OnnxMiniLMEmbedder(threads=threads)
            embedder._session = session(plain, threads, spin)
            for text in requests[:20]:
                embedder.embed([text])
            times, before = [], cpu_s()
            for i, text in enumerate(requests):
                started = time.perf_counter()
                embedder.embed([text, SHORT[0]])
                embedder.embed([f"Request {i} reached the model."])
                times.append(time.perf_counter() - started)
                time.sleep(0.002)
            cpu = (cpu_s() - before) / len(requests) * 1000
            print(
                f"threads {threads}, spinning {spin}: p50 {1000 * statistics.median(times):.2f} ms per request "
                f"(2 + 1 texts), CPU {cpu:.2f} ms"
            )


if __name__ == "__main__":
    main()
