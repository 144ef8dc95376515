"""How fast two replicas agree: two `guard serve` processes on one PostgreSQL registry (a throw-away cluster,
`guard.testing.pg`: initdb in a temp dir, as the `postgres` user when run as root) in front of the test kit's fake
upstream.

    .venv/bin/python -m bench.replicas [--rounds 20] [--embedder minilm|hash] [--poll-s 0.5]

Each round adds an entry through replica A and times, from A's acknowledgement, until B refuses a question naming
the subject; then deletes it through B and times until A allows the question again. A replica is asked every
10 ms, so a figure includes up to one request's latency. Reported: p50, p95 and max of each direction.
`tests/test_replicas.py` only shows that the changes propagate; how fast belongs here.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench.lib.corpus import name
from bench.lib.measure import pct
from guard.testing import ADMIN, HANG_S, BackgroundServer, FakeUpstream, fixed, guard_process
from guard.testing.pg import PgCluster, pg_bin


def action(client: httpx.Client, url: str, subject: str) -> str:
    body = {"model": "m", "messages": [{"role": "user", "content": f"Where was {subject} born?"}]}
    return str(client.post(f"{url}/v1/chat/completions", json=body).headers["x-guard-action"])


def until(client: httpx.Client, url: str, subject: str, wanted: str, since: float) -> float:
    """Seconds from `since` until `url` answers a question about `subject` with `wanted`."""
    while action(client, url, subject) != wanted:
        if time.monotonic() - since > HANG_S:
            raise SystemExit(f"{url} did not {wanted} {subject!r} in {HANG_S:.0f} s")
        time.sleep(0.01)
    return time.monotonic() - since


def rounds(a: str, b: str, n: int) -> tuple[list[float], list[float]]:
    adds: list[float] = []
    deletes: list[float] = []
    rng = random.Random(7)
    with httpx.Client(headers=ADMIN, timeout=30) as client:
        for _ in range(n):
            subject = name(rng)
            body = {
                "subject": subject,
                "documents": [f"{subject} was born in Tarsk in 1950 and wrote The Salt Ledger."],
            }
            r = client.post(f"{a}/admin/forget", json=body)
            acked = time.monotonic()
            assert r.status_code == 201, r.text
            adds.append(until(client, b, subject, "refuse", acked))
            assert client.delete(f"{b}/admin/forget/{r.json()['id']}").status_code == 204
            deletes.append(until(client, a, subject, "allow", time.monotonic()))
    return adds, deletes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--embedder", default="minilm", help="the replicas' GUARD_EMBEDDER")
    parser.add_argument("--poll-s", type=float, help="GUARD_REGISTRY_POLL_S (default: as shipped)")
    args = parser.parse_args()
    bindir = pg_bin()
    if bindir is None:
        raise SystemExit("PostgreSQL binaries (initdb, pg_ctl) not found")
    cluster = PgCluster(bindir)
    try:
        cluster.start()
        env = {"GUARD_REGISTRY_DSN": cluster.database(), "GUARD_EMBEDDER": args.embedder}
        if args.poll_s is not None:
            env["GUARD_REGISTRY_POLL_S"] = str(args.poll_s)
        with (
            tempfile.TemporaryDirectory() as tmp,
            BackgroundServer(FakeUpstream(fixed("I do not know that person.")).app()) as upstream,
            ExitStack() as stack,
        ):
            a, b = (
                stack.enter_context(guard_process(Path(tmp) / n, upstream.url, Path(tmp) / f"{n}.log", **env))[1]
                for n in ("a", "b")
            )
            adds, deletes = rounds(a, b, args.rounds)
    finally:
        cluster.destroy()
    print(f"{args.rounds} rounds, embedder {args.embedder}, poll {args.poll_s or 'as shipped'}")
    print("| change | p50 ms | p95 ms | max ms |\n|---|---:|---:|---:|")
    for label, times in (("add on A → refused on B", adds), ("delete on B → allowed on A", deletes)):
        ms = [t * 1000 for t in times]
        print(f"| {label} | {statistics.median(ms):.0f} | {pct(ms, 0.95):.0f} | {max(ms):.0f} |")


if __name__ == "__main__":
    main()
