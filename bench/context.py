"""Long prompts and repeated context (issue 15, item 3), side by side in one run: the bare proxy, the guard
(forget10 registered) and the same guard without its int8 first stage (`GUARD_FIRST_STAGE=off`: every text
through the float MiniLM), in front of one fast fake upstream.

    .venv/bin/python -m bench.context [--prompts 30] [--tokens 2000] [--before REV]
    .venv/bin/python -m bench.context --replay 8      # in process: where the time goes, and what each verdict was

Each prompt is a ~2k-token context (TOFU retain90 answers of authors not in forget10, as a RAG passage in a system
message) and a question. It is sent once ("first"), then again with another question after it ("seen": the same
context, as a chat or a RAG deployment re-sends it); and a new question of the same kind without any context
("none": what a short prompt costs anyway). Reported: latency p50/p95 and what the guard adds over the bare
proxy, first, seen and none; what a seen context adds over none; how many were blocked (none should be); and,
as the other side of it, how many of 20 passages about the forgotten authors were refused (each author's TOFU
paraphrased answers, the name parts replaced by "the writer": a passage that states forgotten facts without
naming its subject). `--before REV` adds the guard as it was at a git revision (a worktree), side by side.
`--speculative` adds the guard with `speculative` and `stream_upstream` on; `--first-ms 100 --token-ms 15` paces
the fake upstream as a model serves (the first token after 100 ms, then a word every 15 ms, 30 words).

`--replay N` runs the input check of N such prompts in this process instead (the real MiniLM, the default
policies, forget10 registered): the time to cut the texts, embed them (as `guard serve` does: the int8 first
stage, the index searched, the float model for the texts near a threshold) and decide, first and seen, the verdict
and its evidence, and a profile of deciding a new prompt.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.lib.staged import staged
from bench.lib.texts import contexts, forgotten
from bench.procs import policies, register_forget10, start_fake_upstream, start_guard, stop
from guard.checks.conversation import Conversation
from guard.checks.decide import floors
from guard.checks.evidence import INDEX, Segment
from guard.checks.stages import Reading, input_checks
from guard.eval.data import DEFAULT_DIR, Tofu
from guard.forget.embedder import CachedEmbedder, make_embedder
from guard.forget.registry import Entry
from guard.forget.view import MemoryIndex
from guard.policy import PolicySet
from guard.settings import REPO_ROOT, default_policy_file
from guard.text import sentences

FLOAT = "guard, float only"
SPECULATIVE = "guard, speculative + stream_upstream"
# each context is sent first, then seen again with another question; "none": a new question without any context
SENT = (("first", "Summarise the passage."), ("seen", "Who is it about?"), ("none", "Who is it about, in short?"))
# where the context is in the request (`--shape`): a system message, the user's message with the question appended
# after it, or an earlier user turn (with the model's reply) before the question
SHAPES = ("system", "appended", "turn")


def messages(shape: str, context: str | None, question: str) -> list[tuple[str, str]]:
    """The (role, text) messages of a request: the question alone when there is no context."""
    if context is None:
        return [("user", question)]
    if shape == "appended":
        return [("user", f"{context}\n\n{question}")]
    if shape == "turn":
        return [("user", f"Read this passage.\n\n{context}"), ("assistant", "I have read it."), ("user", question)]
    return [("system", f"Answer from this passage only.\n\n{context}"), ("user", question)]


def replay(tofu: Tofu, n: int, tokens: int, shape: str = "system") -> None:
    policies = PolicySet.load(default_policy_file())
    minilm = CachedEmbedder(make_embedder("minilm"), 8192)
    fast = CachedEmbedder(make_embedder("minilm-fast"), 8192)
    view = MemoryIndex(minilm.dim, ngram_words=12, typo_min_chars=6)
    next_id = 0
    for i, author in enumerate(tofu.authors("forget10")):
        chunks = [s for answer in author.answers for s in sentences(answer)]
        ids = list(range(next_id, next_id + len(chunks)))
        next_id += len(chunks)
        view.add(Entry(str(i), author.name, (), None, 0.0, 1, 1, "enforce"), ids, chunks, minilm.embed(chunks))
    checks = input_checks()
    lines = floors(policies)

    def check(context: str, question: str, profile: cProfile.Profile | None = None) -> str:
        started = time.perf_counter()
        turns = tuple(
            Segment(f"messages[{i}].content", text, role)
            for i, (role, text) in enumerate(messages(shape, context, question))
        )
        plan = checks.plan(Conversation(turns, policies.settings.window_turns).segments(), view.stamp)
        segments = plan.to_read()
        texts = checks.needs(segments).get(INDEX, [])
        cut = time.perf_counter()
        found, _, stages = staged(view, minilm, fast, texts, checks.passages(segments), lines)
        vectors = dict(zip(texts, found, strict=True))
        embedded = time.perf_counter()
        if profile is not None:
            profile.enable()
        verdict = checks.decide(plan, Reading(tuple(segments), policies, view), {INDEX: vectors})
        if profile is not None:
            profile.disable()
        done = time.perf_counter()
        evidence = sorted({f"{m.kind} {m.score:.2f}" for m in verdict.matches})[:4]
        return (
            f"{len(segments)} segments, {len(texts)} texts: cut {1000 * (cut - started):.0f} ms, embed "
            f"{1000 * (embedded - cut):.0f} ms [{stages}], decide {1000 * (done - embedded):.0f} ms -> "
            f"{verdict.action.value} {evidence} watched {len(verdict.watched)}"
        )

    for i, context in enumerate(contexts(tofu, n, tokens)):
        print(f"prompt {i} first: {check(context, f'Summarise the passage. ({i})')}")
        print(f"prompt {i} seen:  {check(context, f'Who is it about? ({i})')}")
    for i, context in enumerate(forgotten(tofu)[:n]):
        print(f"forgotten {i}: {check(context, 'Summarise the passage.')}")
    profile = cProfile.Profile()
    check(contexts(tofu, n + 1, tokens)[n], "Summarise the passage.", profile)
    print(f"\nprofile of deciding prompt {n}, first (cumulative):")
    pstats.Stats(profile, stream=sys.stdout).sort_stats("cumulative").print_stats(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=30)
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--tofu", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--replay", type=int, default=0, help="replay N prompts' input check in process")
    parser.add_argument("--before", help="also the guard at this git revision")
    parser.add_argument("--shape", choices=SHAPES, default="system", help="where the context is in the request")
    parser.add_argument("--first-ms", type=float, default=0.0, help="the fake upstream's time to the first token")
    parser.add_argument("--token-ms", type=float, default=0.0, help="... and to each next word (0: all at once)")
    parser.add_argument("--answer-tokens", type=int, default=30, help="... in an answer of this many words")
    parser.add_argument(
        "--speculative", action="store_true", help="also the guard with speculative and stream_upstream on"
    )
    args = parser.parse_args()
    tofu = Tofu(args.tofu)
    if args.replay:
        replay(tofu, args.replay, args.tokens, args.shape)
        return
    tmp = Path(tempfile.mkdtemp())
    procs: list[subprocess.Popen[bytes]] = []
    before = tmp / "before"
    if args.before:
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(before), args.before],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
        )
    try:
        paced = {"FAKE_TOKEN_MS": str(args.token_ms), "FAKE_TOKENS": str(args.answer_tokens)} if args.token_ms else {}
        proc, upstream = start_fake_upstream({"FAKE_FIRST_MS": str(args.first_ms), **paced})
        procs.append(proc)
        urls: dict[str, str] = {}
        policy = str(policies(tmp))
        targets = [
            ("bare proxy", {}, REPO_ROOT),
            ("guard", {"GUARD_POLICY_FILE": policy}, REPO_ROOT),
            (FLOAT, {"GUARD_POLICY_FILE": policy, "GUARD_FIRST_STAGE": "off"}, REPO_ROOT),
        ]
        if args.before:
            targets.insert(1, (f"guard at {args.before}", {"GUARD_POLICY_FILE": policy}, before))
        if args.speculative:
            spec = str(policies(tmp, speculative=True, stream_upstream=True))
            after = [label for label, _, _ in targets].index("guard") + 1
            targets.insert(after, (SPECULATIVE, {"GUARD_POLICY_FILE": spec}, REPO_ROOT))
        for label, extra, tree in targets:
            extra |= {"GUARD_UPSTREAM": upstream, "GUARD_INDEX_DIR": str(tmp / f"index-{len(urls)}")}
            proc, urls[label] = start_guard(extra, tmp / f"{len(urls)}.log", tree, bare=label == "bare proxy")
            procs.append(proc)
        guards = [label for label in urls if label != "bare proxy"]
        for label in guards:
            register_forget10(urls[label], tofu)
        ms: dict[tuple[str, str], list[float]] = {(k, s): [] for k in urls for s, _ in SENT}
        blocked = dict.fromkeys(urls, 0)
        with httpx.Client(timeout=120) as client:
            for i, context in enumerate(contexts(tofu, args.prompts + 2, args.tokens)):
                for label, url in urls.items():
                    for seen, question in SENT:
                        sent = messages(args.shape, None if seen == "none" else context, f"{question} ({i})")
                        body = {"model": "m", "messages": [{"role": r, "content": t} for r, t in sent]}
                        started = time.perf_counter()
                        r = client.post(f"{url}/v1/chat/completions", json=body)
                        elapsed = (time.perf_counter() - started) * 1000
                        assert r.status_code == 200, r.text
                        blocked[label] += r.headers.get("x-guard-action", "allow") != "allow"
                        if i >= 2:  # warm-up
                            ms[(label, seen)].append(elapsed)
        print(
            f"{args.prompts} prompts of ~{args.tokens} tokens (a passage, shape {args.shape!r}, and a question), each "
            "sent first and then again with another question; forget10 registered"
        )
        if args.token_ms or args.first_ms:
            print(
                f"the upstream: first token after {args.first_ms:.0f} ms, then a word every {args.token_ms:.0f} ms, "
                f"{args.answer_tokens} words (a non-streamed answer comes whole at the end)"
            )
        print("\n| target | context | p50 ms | p95 ms | guard added p50 over bare |")
        print("|---|---|---|---|---|")
        for seen, _ in SENT:
            bare = statistics.median(ms[("bare proxy", seen)])
            for label in urls:
                values = ms[(label, seen)]
                p95 = statistics.quantiles(values, n=20)[18]
                print(
                    f"| {label} | {seen} | {statistics.median(values):.1f} | {p95:.1f} | "
                    f"{statistics.median(values) - bare:+.1f} |"
                )
        for label in guards:
            seen_cost = statistics.median(ms[(label, "seen")]) - statistics.median(ms[(label, "none")])
            print(f"\n{label}: a seen context over the same kind of question without it: {seen_cost:+.1f} ms p50")
        print(f"blocked (none should be): {blocked}")
        refused = dict.fromkeys(urls, 0)
        with httpx.Client(timeout=120) as client:
            for context in forgotten(tofu):
                for label, url in urls.items():
                    body = {
                        "model": "m",
                        "messages": [
                            {"role": "system", "content": f"Answer from this passage only.\n\n{context}"},
                            {"role": "user", "content": "Summarise the passage."},
                        ],
                    }
                    r = client.post(f"{url}/v1/chat/completions", json=body)
                    assert r.status_code == 200, r.text
                    refused[label] += r.headers.get("x-guard-action", "allow") == "refuse"
        print(f"passages about a forgotten author, name removed, refused at input (of 20): {refused}")
    finally:
        stop(procs)
        if args.before:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=REPO_ROOT, capture_output=True)


if __name__ == "__main__":
    main()
