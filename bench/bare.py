"""The bare pass-through proxy the side-by-side benches compare the guard with: the guard's own app and server
(`guard serve`, the same GUARD_* settings) with every check off, so the difference is the checks alone.

    GUARD_UPSTREAM=http://127.0.0.1:8001 GUARD_PORT=8002 .venv/bin/python -m bench.bare

A benchmark's instrument, not a product setting: it enforces nothing."""

from __future__ import annotations

import sys

from guard.cli import run_server
from guard.errors import PolicyError, SettingsError
from guard.settings import Settings


def main() -> int:
    try:
        run_server(Settings.load(), checks=False)
    except (PolicyError, SettingsError) as exc:
        print(f"bench.bare: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
