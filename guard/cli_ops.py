"""The operators' commands of `guard`: audit verify|export · operator add|ls|rm; and the admin API call the
other commands share."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = sub.add_parser("audit", help="the append-only audit log")
    asub = audit.add_subparsers(dest="action", required=True)
    verify = asub.add_parser("verify", help="check the audit log's hash chain (exit 1 if it was tampered with)")
    verify.add_argument(
        "--file",
        type=Path,
        help="the audit log (default: audit.jsonl of GUARD_INDEX_DIR); its rotated files beside it are checked with it",
    )
    aexport = asub.add_parser("export", help="the audit records since a date, for a regulator (metadata only)")
    aexport.add_argument("--since", required=True, help="ISO date or time (UTC unless it says), e.g. 2026-11-01")
    aexport.add_argument("--file", type=Path, help="the audit log (default: audit.jsonl of GUARD_INDEX_DIR)")
    aexport.add_argument("--out", type=Path, help="write here (owner-readable only) instead of stdout")

    operator = sub.add_parser("operator", help="named admin API users and their roles (needs an admin)")
    osub = operator.add_subparsers(dest="action", required=True)
    oadd = osub.add_parser("add", help="create an operator; its token is printed once")
    oadd.add_argument("name")
    oadd.add_argument("--role", choices=("viewer", "editor", "admin"), required=True)
    osub.add_parser("ls", help="list operators (names, roles, when created and revoked; never tokens)")
    orm = osub.add_parser("rm", help="revoke an operator (its token stops working at once, on every replica)")
    orm.add_argument("name")
    for p in osub.choices.values():
        p.add_argument("--url", default=os.environ.get("GUARD_URL", DEFAULT_URL), help="the guard's base URL")


def run(args: argparse.Namespace) -> int:
    return _audit(args) if args.command == "audit" else _operator(args)


def _operator(args: argparse.Namespace) -> int:
    def send(client: httpx.Client) -> httpx.Response:
        if args.action == "add":
            return client.post("/admin/operators", json={"name": args.name, "role": args.role})
        if args.action == "ls":
            return client.get("/admin/operators")
        return client.delete(f"/admin/operators/{args.name}")

    response = admin_call(args.url, send)
    if isinstance(response, int):
        return response
    if args.action == "add":
        body = response.json()
        print(f"operator {body['name']} ({body['role']}) created; its token, shown this once:", file=sys.stderr)
        print(body["token"])
    elif args.action == "ls":
        for op in response.json()["data"]:
            state = "revoked" if op["revoked_at"] else "active"
            print(f"{op['name']}\t{op['role']}\t{state}")
    else:
        print(f"operator {args.name} revoked", file=sys.stderr)
    return 0


def admin_call(
    url: str, send: Callable[[httpx.Client], httpx.Response], timeout: float = 300.0
) -> httpx.Response | int:
    """One admin API call with GUARD_ADMIN_TOKEN: its response, or the exit code after saying what went wrong."""
    token = os.environ.get("GUARD_ADMIN_TOKEN")
    if not token:
        print("guard: set GUARD_ADMIN_TOKEN to the guard's admin token", file=sys.stderr)
        return 2
    try:
        with httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=timeout) as client:
            response = send(client)
    except httpx.HTTPError as exc:
        print(f"guard: cannot reach {url}: {exc}", file=sys.stderr)
        return 1
    if response.status_code >= 400:
        print(f"guard: HTTP {response.status_code}: {message(response)}", file=sys.stderr)
        return 1
    return response


def message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text


def _audit(args: argparse.Namespace) -> int:
    """verify: the chain over the rotated files and the current one; export: the records since a date, from a
    chain that verifies (a broken one is refused: investigate first)."""
    from datetime import UTC, datetime

    from guard.observe.audit import chain_files, records_since, verify_files
    from guard.settings import Settings

    path = args.file or Settings.load().audit_path()
    files = chain_files(path)
    if not files:
        print(f"guard: no audit log at {path}", file=sys.stderr)
        return 2
    lines, problem = verify_files(files)
    if problem is not None:
        print(f"guard: {problem[0]}: line {lines}: {problem[1]}", file=sys.stderr)
        return 1
    if args.action == "verify":
        print(f"{path}: {lines} records in {len(files)} file(s), hash chain intact")
        return 0
    try:
        since = datetime.fromisoformat(args.since)
    except ValueError:
        print(f"guard: --since: not an ISO date or time: {args.since!r}", file=sys.stderr)
        return 2
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    data = b"".join(line + b"\n" for line in records_since(files, since.timestamp()))
    if args.out is None:
        sys.stdout.buffer.write(data)
    else:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    count = data.count(b"\n")
    print(f"{count} records since {since.isoformat()} (of {lines}, chain intact)", file=sys.stderr)
    return 0
