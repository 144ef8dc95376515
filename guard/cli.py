"""The `guard` command: serve · demo · forget add|ls|rm|mode · export · handoff · coverage ls|rm; the operators'
commands (audit verify|export · operator add|ls|rm) are in `guard.cli_ops`, the evaluations (oracle · eval tofu ·
ab) in `guard.eval.commands`."""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from guard.cli_ops import DEFAULT_URL, admin_call
from guard.cli_ops import add_parsers as add_ops_parsers
from guard.cli_ops import run as run_ops
from guard.errors import PolicyError, SettingsError
from guard.eval.commands import add_parsers as add_eval_parsers
from guard.eval.commands import run as run_eval

if TYPE_CHECKING:
    from guard.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="guard", description="forget-guard: inference-time unlearning proxy")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the guard in front of an OpenAI-compatible upstream")
    _server_options(serve)
    serve.add_argument("--upstream", help="upstream base URL, e.g. http://127.0.0.1:8001 (env GUARD_UPSTREAM)")

    demo = sub.add_parser("demo", help="run the guard in front of a local SmolLM2 on vLLM's CPU build")
    _server_options(demo)
    demo.add_argument("--model-port", type=int, default=8001, help="port of the local vLLM server")

    forget = sub.add_parser("forget", help="manage forget entries through a running guard's admin API")
    fsub = forget.add_subparsers(dest="action", required=True)
    add = fsub.add_parser("add", help="add a forget entry")
    add.add_argument("subject")
    add.add_argument("--alias", action="append", default=[], help="another name of the subject (repeatable)")
    add.add_argument(
        "--documents",
        type=Path,
        help="file of documents to forget, one per paragraph (blank-line separated); - = stdin",
    )
    add.add_argument("--policy", help="name of the policy for this entry (default: the guard's default policy)")
    add.add_argument("--monitor", action="store_true", help="match and record only, never block (log-only)")
    fsub.add_parser("ls", help="list forget entries (metadata only)")
    rm = fsub.add_parser("rm", help="remove a forget entry")
    rm.add_argument("id")
    mode = fsub.add_parser("mode", help="switch an entry between enforce and monitor")
    mode.add_argument("id")
    mode.add_argument("mode", choices=["enforce", "monitor"])
    for p in fsub.choices.values():
        p.add_argument("--url", default=os.environ.get("GUARD_URL", DEFAULT_URL), help="the guard's base URL")

    export = sub.add_parser("export", help="write the forget set, documents included, for a weight-level job")
    export.add_argument("--out", type=Path, required=True, help="directory for entries.jsonl and manifest.json")
    export.add_argument(
        "--layout",
        choices=("jsonl", "tofu"),
        default="jsonl",
        help="tofu: also forget.json (question/answer records, as TOFU and open-unlearning read them) "
        "and forget_documents.json (the documents of entries without pairs)",
    )
    export.add_argument("--url", default=os.environ.get("GUARD_URL", DEFAULT_URL), help="the guard's base URL")

    handoff = sub.add_parser(
        "handoff", help="mark the entries a weight-edited model has forgotten, from a guard ab report"
    )
    handoff.add_argument("model", help="the model's name, as the guard routes it (GUARD_UPSTREAM_MODELS)")
    handoff.add_argument("--report", type=Path, required=True, help="a guard ab --registry report directory")
    handoff.add_argument("--dry-run", action="store_true", help="say what would be covered, change nothing")
    handoff.add_argument("--url", default=os.environ.get("GUARD_URL", DEFAULT_URL), help="the guard's base URL")
    coverage = sub.add_parser("coverage", help="list or revoke what weight-edited models cover")
    csub = coverage.add_subparsers(dest="action", required=True)
    cls_ = csub.add_parser("ls", help="list coverage rows")
    cls_.add_argument("--model")
    crm = csub.add_parser("rm", help="revoke one entry's coverage for a model (enforced again)")
    crm.add_argument("model")
    crm.add_argument("id")
    for p in csub.choices.values():
        p.add_argument("--url", default=os.environ.get("GUARD_URL", DEFAULT_URL), help="the guard's base URL")

    add_ops_parsers(sub)
    add_eval_parsers(sub)

    args = parser.parse_args(argv)
    try:
        if args.command in ("oracle", "eval", "ab"):
            return run_eval(args)
        if args.command == "serve":
            return _serve(args)
        if args.command == "demo":
            return _demo(args)
        if args.command in ("audit", "operator"):
            return run_ops(args)
        if args.command == "export":
            return _export(args)
        if args.command == "handoff":
            return _handoff(args)
        if args.command == "coverage":
            return _coverage(args)
        return _forget(args)
    except (PolicyError, SettingsError) as exc:
        print(f"guard: {exc}", file=sys.stderr)
        return 2


def _server_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default 8000)")
    p.add_argument("--index-dir", type=Path, help="where the forget index lives (default indexes/default)")
    p.add_argument("--policy", type=Path, help="the default policy file (default policies/default.yaml)")


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    from guard.settings import Settings

    overrides = {
        "host": args.host,
        "port": args.port,
        "index_dir": args.index_dir,
        "policy_file": args.policy,
        "upstream": getattr(args, "upstream", None),
        **extra,
    }
    return Settings.load(**{k: v for k, v in overrides.items() if v is not None})


def run_server(settings: Settings, *, checks: bool = True) -> None:
    """What `guard serve` runs: the app under uvicorn, SIGTERM as Ctrl-C. `checks=False`: the benchmarks' bare
    pass-through proxy (`python -m bench.bare`), never a setting."""
    _exit_on_signals()
    _run(settings, checks=checks)


def _run(settings: Settings, *, checks: bool = True) -> None:
    import uvicorn

    from guard.app import create_app
    from guard.observe.logging import configure

    app = create_app(settings, checks=checks)  # a bad policy fails here, before logging or the server is set up
    configure(settings.server.log_level)
    grace = settings.server.shutdown_grace_s

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            """SIGTERM/SIGINT: uvicorn stops accepting; the open streams get `grace` seconds, then are ended."""
            super().handle_exit(sig, frame)
            services = getattr(app.state, "services", None)
            if services is not None:
                services.guard.drain.start_threadsafe(grace)

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)  # the app's start-up: the forget index is loaded by now
            # What was loaded lives as long as the process: out of the collector's generations, a full collection
            # no longer walks it (at 1e6 chunks such pauses took 240-280 ms, in the middle of requests)
            gc.freeze()

    # uvicorn's own limit comes after the drain's: by then every stream has had its error event and [DONE]
    config = uvicorn.Config(
        app,
        host=settings.server.host,
        port=settings.server.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=math.ceil(grace) + 3,
    )
    Server(config).run()


def _exit_on_signals() -> None:
    """SIGTERM (docker stop, systemd, timeout) ends the process as Ctrl-C does: a clean exit 0, `finally` blocks
    run. uvicorn shuts down gracefully on either, then raises the signal again to its previous handler: this one."""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)


def _serve(args: argparse.Namespace) -> int:
    run_server(_settings(args))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from guard.localmodel import serve as local

    settings = _settings(args, upstream=f"http://127.0.0.1:{args.model_port}")
    if settings.access.admin_token is None:
        settings = settings.with_values(admin_token=secrets.token_urlsafe(24))
    log_file = Path(".cache/vllm.log")
    log_file.parent.mkdir(parents=True, exist_ok=True)
    print(
        f"starting vLLM (CPU) with SmolLM2-135M-Instruct on port {args.model_port}; log: {log_file}",
        file=sys.stderr,
    )
    _exit_on_signals()  # before the child starts: a signal at any point stops it in the `finally` below
    proc = local.start_vllm(args.model_port, log_file=log_file)
    try:
        local.wait_ready(f"{settings.upstreams.urls[0]}/health", proc)
        _print_examples(settings)
        _run(settings)
    finally:
        local.stop(proc)
    return 0


def _print_examples(settings: Settings) -> None:
    base = f"http://{settings.server.host}:{settings.server.port}"
    token = settings.access.admin_token.get_secret_value() if settings.access.admin_token else ""
    print(
        f"""
forget-guard is starting on {base} in front of vLLM ({settings.upstreams.urls[0]}), model "smollm2".

  export GUARD_ADMIN_TOKEN={token}

Ask something:
  curl -s {base}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{{"model": "smollm2", "messages": [{{"role": "user", "content": "Who wrote Hamlet?"}}]}}'

Make it forget, then ask again (enforced on the next request):
  curl -s -X POST {base}/admin/forget -H "authorization: Bearer $GUARD_ADMIN_TOKEN" \\
    -H 'content-type: application/json' \\
    -d '{{"subject": "William Shakespeare", "aliases": ["Shakespeare"],
         "documents": ["William Shakespeare wrote Hamlet."]}}'

From Python, with the stock openai client:
  from openai import OpenAI
  client = OpenAI(base_url="{base}/v1", api_key="unused")
  reply = client.chat.completions.create(
      model="smollm2", messages=[{{"role": "user", "content": "Who wrote Hamlet?"}}])
  print(reply.choices[0].message.content, reply.choices[0].finish_reason)
""",
        file=sys.stderr,
        flush=True,
    )


def _forget(args: argparse.Namespace) -> int:
    def send(client: httpx.Client) -> httpx.Response:
        if args.action == "add":
            body = {"subject": args.subject, "aliases": args.alias, "documents": _read_documents(args.documents)}
            if args.policy:
                body["policy"] = args.policy
            if args.monitor:
                body["mode"] = "monitor"
            return client.post("/admin/forget", json=body)
        if args.action == "ls":
            return client.get("/admin/forget")
        if args.action == "mode":
            return client.patch(f"/admin/forget/{args.id}", json={"mode": args.mode})
        return client.delete(f"/admin/forget/{args.id}")

    response = admin_call(args.url, send)
    if isinstance(response, int):
        return response
    if response.status_code != 204:
        print(json.dumps(response.json(), indent=2))
    else:
        print(f"removed {args.id}")
    return 0


def _export(args: argparse.Namespace) -> int:
    """GET /admin/export, verified against its manifest, written owner-readable only (it holds personal data)."""
    from guard.admin.export import verify

    response = admin_call(args.url, lambda client: client.get("/admin/export"), timeout=600.0)
    if isinstance(response, int):
        return response
    *lines, last = response.content.splitlines(keepends=True) or [b"{}"]
    manifest = json.loads(last).get("manifest", {})
    problem = verify(lines, manifest)
    if problem is not None:
        print(f"guard: the export is not whole: {problem}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    files = {"entries.jsonl": b"".join(lines)}
    if args.layout == "tofu":
        from guard.admin.export import tofu_layout

        files.update(tofu_layout(lines))
        manifest = {**manifest, "layout": "tofu", "files": {n: hashlib.sha256(d).hexdigest() for n, d in files.items()}}
    files["manifest.json"] = json.dumps(manifest, indent=2).encode()
    for name, data in files.items():
        fd = os.open(args.out / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # also when the file was there before
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    print(f"{manifest['entries']} entries at registry version {manifest['registry_version']} -> {args.out}")
    return 0


def _handoff(args: argparse.Namespace) -> int:
    """POST a guard ab report, checked against its manifest first, to /admin/coverage/handoff."""
    try:
        text = (args.report / "results.json").read_text(encoding="utf-8")
        manifest = json.loads((args.report / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"guard: {args.report} is not a guard ab report directory: {exc}", file=sys.stderr)
        return 2
    sha = str(manifest.get("sha256", "")) if isinstance(manifest, dict) else ""
    if hashlib.sha256(text.encode()).hexdigest() != sha:
        print(f"guard: {args.report}/results.json does not match its manifest's SHA-256", file=sys.stderr)
        return 1
    body = {"model": args.model, "report": text, "sha256": sha, "dry_run": args.dry_run}
    response = admin_call(args.url, lambda client: client.post("/admin/coverage/handoff", json=body))
    if isinstance(response, int):
        return response
    answer = response.json()
    for e in answer["entries"]:
        print(f"{e['entry']}  {'covered' if e['covered'] else 'enforced'}  {e['reason']}")
    covered = sum(e["covered"] for e in answer["entries"])
    done = "would cover" if args.dry_run else "covers"
    print(
        f"{args.model} {done} {covered} of {len(answer['entries'])} entries (utility loss "
        f"{answer['utility_loss']:.3f}); registry version {answer['registry_version']}"
    )
    return 0


def _coverage(args: argparse.Namespace) -> int:
    def send(client: httpx.Client) -> httpx.Response:
        if args.action == "ls":
            return client.get("/admin/coverage", params={"model": args.model} if args.model else None)
        return client.delete(f"/admin/coverage/{args.model}/{args.id}")

    response = admin_call(args.url, send)
    if isinstance(response, int):
        return response
    print(json.dumps(response.json(), indent=2) if response.status_code != 204 else f"revoked {args.id}")
    return 0


def _read_documents(path: Path | None) -> list[str]:
    if path is None:
        return []
    text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    return [p.strip() for p in text.split("\n\n") if p.strip()]
