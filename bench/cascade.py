"""The two-stage embedding of the request path (`guard.pipeline.cascade`): is its margin safe, what does it save?

    .venv/bin/python -u -m bench.cascade [--retain 800] [--repeat 60]
    .venv/bin/python -u -m bench.cascade --batches      # only: texts per model call, each model
    .venv/bin/python -u -m bench.cascade --threads      # only: threads inside a model call, or calls side by side

forget10's 20 authors are registered in a real `ForgetIndex` (float MiniLM vectors, as `guard serve` builds it).
Every text below is cut into the pieces the guard's checks embed (its sentences, the window, every normalised view)
and each piece's best score against the index is taken twice: with the float model's vector and with the int8
first stage's. Per set of texts:

- the largest shortfall of the int8 best score under the float one (the margin must stay above it);
- missed: pieces whose float score reaches their floor while the int8 score stays under floor - margin (a score
  that could count, read from the wrong vector): must be 0;
- the share of pieces the float model still embeds (int8 score within the margin of the floor, or above it).

Sets: TOFU forget10 questions, paraphrases, answers and perturbed answers (the forgotten side), retain90 questions
and answers, real authors and world facts, forget01's French questions and answers (the Latin-script language of
the multilingual TOFU; the others are read by the multilingual model), and every text of the attack suite's
requests and generated answers. Last, speed side by side in this process: a short text, and a new 2k-token
passage's ~80 sentences, through each model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from guard.checks.conversation import Conversation
from guard.checks.decide import floors
from guard.checks.evidence import INDEX, Segment
from guard.checks.stages import CheckSet, input_checks, output_checks
from guard.eval.attacks.cases import build
from guard.eval.data import DEFAULT_DIR, Tofu
from guard.eval.multilingual import Translated
from guard.forget.embedder import Embedder, OnnxMiniLMEmbedder, make_embedder
from guard.forget.index import ForgetIndex
from guard.forget.sqlite import REGISTRY_FILE, SqliteRegistry
from guard.pipeline.cascade import MARGIN, best_scores
from guard.policy import PolicySet
from guard.settings import default_policy_file
from guard.text import sentences


def strings(obj: Any) -> Iterator[str]:
    """Every text a request's messages carry (contents, parts, names, tool-call arguments), roles aside."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            if key not in ("role", "type"):
                yield from strings(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from strings(value)


def pieces(checks: CheckSet, segments: list[Segment]) -> tuple[list[str], set[str]]:
    to_read = checks.plan(segments).to_read()
    return checks.needs(to_read).get(INDEX, []), checks.passages(to_read)


Requests = list[tuple[list[Segment], CheckSet]]  # what a check set receives, with that set


def texts_of(tofu: Tofu, retain: int) -> dict[str, Requests]:
    """Per set: the requests and answers as the checks receive them."""
    f10 = tofu.rows("forget10")
    r90 = tofu.rows("retain90")[:retain]
    controls = tofu.rows("real_authors") + tofu.rows("world_facts")
    fr = Translated("fr").rows("forget01")
    inputs, outputs = input_checks(), output_checks()

    def asked(questions: list[str]) -> Requests:
        return [([Segment("messages[0].content", q, "user")], inputs) for q in questions]

    def said(answers: list[str]) -> Requests:
        return [([Segment("output.content", a, "assistant")], outputs) for a in answers]

    attacks: Requests = []
    answers: Requests = []
    for case in build(tofu, 0):
        turns = [
            Segment(f"messages[{i}]", text, str(m.get("role", "user")))
            for i, m in enumerate(case.messages)
            for text in strings(m)
        ]
        attacks.append((Conversation(tuple(turns), 3).segments(), inputs))
        answers.extend(said([case.answer]))
    return {
        "forget10 questions + paraphrased": asked(
            [r["question"] for r in f10] + [r["paraphrased_question"] for r in f10]
        ),
        "forget10 answers + paraphrased": said([r["answer"] for r in f10] + [r["paraphrased_answer"] for r in f10]),
        "forget10 perturbed answers": said([p for r in f10 for p in r["perturbed_answer"]]),
        "retain90 questions": asked([r["question"] for r in r90]),
        "retain90 answers": said([r["answer"] for r in r90]),
        "real authors + world facts (q, a)": asked([r["question"] for r in controls])
        + said([r["answer"] for r in controls]),
        "French forget01 (q, a)": asked([r["question"] for r in fr]) + said([r["answer"] for r in fr]),
        "attack suite requests": attacks,
        "attack suite answers": answers,
    }


async def open_index(tofu: Tofu, exact: Embedder, directory: Path) -> ForgetIndex:
    index = await ForgetIndex.open(
        SqliteRegistry(directory / REGISTRY_FILE, exact.dim), exact, ngram_words=12, typo_min_chars=6
    )
    for author in tofu.authors("forget10"):
        await index.add(author.name, [], author.answers, None)
    return index


def speed(model: Embedder, short: list[str], passage: list[str], repeat: int) -> tuple[float, float]:
    model.embed(short[:2])
    times = []
    for i in range(repeat):
        t = time.perf_counter()
        model.embed([short[i % len(short)]])
        times.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    model.embed(passage)
    return statistics.median(times), (time.perf_counter() - t) * 1000


async def main_async(args: argparse.Namespace) -> None:
    tofu = Tofu(args.tofu)
    exact, fast = make_embedder("minilm"), make_embedder("minilm-fast")
    piece_floor, passage_floor = floors(PolicySet.load(default_policy_file()))
    print(
        f"floors (default policies): question/sentence {piece_floor:.2f}, passage statement {passage_floor:.2f}; "
        f"margin {MARGIN}"
    )
    sets = texts_of(tofu, args.retain)
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        index = await open_index(tofu, exact, Path(tmp))
        view = index.view
        print("| texts | pieces | largest int8 shortfall | missed | float model still embeds |\n|---|---|---|---|---|")
        for name, requests in sets.items():
            texts: dict[str, float] = {}
            for segments, checks in requests:
                found, passages = pieces(checks, segments)
                for t in found:
                    floor = passage_floor if t in passages else piece_floor
                    texts[t] = min(texts.get(t, floor), floor)
            order = list(texts)
            ex = best_scores(view, exact.embed(order))
            fa = best_scores(view, fast.embed(order))
            lines = np.array([texts[t] for t in order], dtype=np.float32)
            shortfall = float((ex - fa).max()) if order else 0.0
            missed = int(((ex >= lines) & (fa < lines - MARGIN)).sum())
            again = float((fa >= lines - MARGIN).mean()) if order else 0.0
            report[name] = {"pieces": len(order), "shortfall": shortfall, "missed": missed, "float_share": again}
            print(f"| {name} | {len(order)} | {shortfall:.3f} | {missed} | {again:.1%} |")
        await index.aclose()
    short = [r["question"] for r in tofu.rows("retain90")[-40:]]
    passage = [s for r in tofu.rows("retain90")[-400:-300] for s in sentences(r["answer"])][:80]
    print(f"\nspeed, one process, side by side ({args.repeat} short texts one at a time; {len(passage)} sentences)")
    print("| model | short text p50 ms | passage ms |\n|---|---|---|")
    for label, model in (
        ("float (minilm)", exact),
        ("int8 first stage (minilm-fast)", fast),
        ("float", exact),
        ("int8", fast),
    ):
        s, p = speed(model, short, passage, args.repeat)
        report.setdefault("speed", []).append([label, s, p])
        print(f"| {label} | {s:.2f} | {p:.1f} |")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))


def batches(tofu: Tofu) -> None:
    """Texts per model call: 80 passage sentences through each model at each batch size, three times."""
    passage = [s for r in tofu.rows("retain90")[1000:1100] for s in sentences(r["answer"])][:80]
    print(f"| batch | int8 first stage, ms ({len(passage)} sentences, 3 times) | float, ms |\n|---|---|---|")
    for size in (8, 16, 32, 64):
        row = []
        for name in ("minilm-fast", "minilm"):
            model = OnnxMiniLMEmbedder(variant="fast" if name == "minilm-fast" else None, batch_size=size)
            model.embed(passage[:4])
            times = []
            for k in range(3):  # new texts each time: nothing is cached below the model
                started = time.perf_counter()
                model.embed([f"{s} ({k})" for s in passage])
                times.append(f"{(time.perf_counter() - started) * 1000:.0f}")
            row.append(" / ".join(times))
        print(f"| {size} | {row[0]} | {row[1]} |")


def threads(tofu: Tofu, repeat: int) -> None:
    """Threads inside a model call, or calls side by side: wall and CPU time (this process's, every thread) of
    one call of 1, 2 and 4 short texts (`repeat` calls each, a 2 ms pause before each, as a proxy's bursts), and
    of a 2k-token passage's 80 sentences (5 calls), per model and layout, the layouts in turn."""
    short = [r["question"] for r in tofu.rows("retain90")[-200:]]
    passage = [s for r in tofu.rows("retain90")[1000:1100] for s in sentences(r["answer"])][:80]
    layouts = ((2, 1), (1, 2))  # (threads in a call, calls side by side)
    print("| model | threads x calls | 1 text: wall / CPU ms | 2 texts | 4 texts | 80 sentences |")
    print("|---|---|---|---|---|---|")
    for variant in ("fast", None):
        models = {lay: OnnxMiniLMEmbedder(variant=variant, threads=lay[0], workers=lay[1]) for lay in layouts}
        times: dict[tuple[int, int], list[str]] = {lay: [] for lay in layouts}
        for n, calls in ((1, repeat), (2, repeat), (4, repeat), (len(passage), 5)):
            for lay, model in models.items():
                model.embed(short[:n])
                wall, cpu = [], []
                for k in range(calls):
                    texts = [f"{t} ({k})" for t in (passage if n == len(passage) else short[k % 50 : k % 50 + n])]
                    time.sleep(0.002)
                    started, cpu_started = time.perf_counter(), time.process_time()
                    model.embed(texts)
                    wall.append((time.perf_counter() - started) * 1000)
                    cpu.append((time.process_time() - cpu_started) * 1000)
                times[lay].append(f"{statistics.median(wall):.1f} / {statistics.median(cpu):.1f}")
        for lay, model in models.items():
            print(
                f"| {'int8 first stage' if variant else 'float'} | {lay[0]} x {lay[1]} | "
                + " | ".join(times[lay])
                + " |"
            )
            model.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tofu", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--retain", type=int, default=800, help="retain90 rows read")
    parser.add_argument("--repeat", type=int, default=60, help="short texts timed per model")
    parser.add_argument("--out", help="write the figures as JSON")
    parser.add_argument("--batches", action="store_true", help="only: the time per batch size (texts per call)")
    parser.add_argument("--threads", action="store_true", help="only: threads in a call, or calls side by side")
    args = parser.parse_args()
    if args.threads:
        threads(Tofu(args.tofu), args.repeat)
        return
    if args.batches:
        batches(Tofu(args.tofu))
        return
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
