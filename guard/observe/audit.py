"""The append-only audit log: who forgot what and when, and which request was refused by which entry.

One JSON object per line in `audit.jsonl`. It records ids, decisions, scores and salted hashes — never prompt,
completion or forget text (a subject is recorded as a salted hash: the name of a person who asked to be forgotten
is itself personal data). Every line carries `prev`, the SHA-256 of the line before it, so an edit, a deletion or
a reordering anywhere breaks the chain: `guard audit verify` finds it.

Admin changes are fsynced before the API answers; request decisions are flushed (a crash may lose the last few).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

GENESIS = "0" * 64


def _digest(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def load_salt(path: Path) -> bytes:
    """The installation's salt for hashing text in logs (created on first use, readable by the owner only)."""
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        salt = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(salt.hex())
        return salt


class Hasher:
    """Salted hashes of text: equal texts get equal hashes (to correlate), but the text cannot be recovered."""

    def __init__(self, salt: bytes) -> None:
        self._salt = salt

    def __call__(self, text: str) -> str:
        return hmac.new(self._salt, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:24]


class AuditLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._prev = GENESIS
        self._seq = 0
        last = _last_line(path)
        if last is not None:
            self._prev, self._seq = _digest(last), int(json.loads(last)["seq"])
        # O_APPEND: every write lands at the end, whatever else has the file open
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def write(self, event: str, fields: dict[str, Any], *, sync: bool = False) -> None:
        with self._lock:
            self._seq += 1
            record = {"seq": self._seq, "ts": round(time.time(), 3), "event": event, **fields, "prev": self._prev}
            line = json.dumps(record, separators=(",", ":"), default=str).encode()
            os.write(self._fd, line + b"\n")
            if sync:
                os.fsync(self._fd)
            self._prev = _digest(line)

    def close(self) -> None:
        with self._lock:
            os.close(self._fd)


def _last_line(path: Path, window: int = 1 << 20) -> bytes | None:
    """The last complete line. A crash in the middle of a write leaves a line without its newline: it was never
    complete, so it is cut off here before anything is appended."""
    try:
        f = path.open("r+b")
    except FileNotFoundError:
        return None
    with f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - window))
        tail = f.read()
        if tail and not tail.endswith(b"\n"):
            cut = tail.rfind(b"\n") + 1
            f.truncate(size - len(tail) + cut)
            tail = tail[:cut]
    lines = tail.splitlines()
    return lines[-1] if lines else None


def _lines(path: Path) -> Iterator[bytes]:
    try:
        with path.open("rb") as f:
            for raw in f:
                if raw.endswith(b"\n"):
                    yield raw[:-1]
    except FileNotFoundError:
        return


def verify(path: Path) -> tuple[int, str | None]:
    """Check the chain: (lines checked, None) when intact, else (line number, what is wrong)."""
    prev = GENESIS
    n = 0
    for n, line in enumerate(_lines(path), start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            return n, "not a JSON object"
        if not isinstance(record, dict) or record.get("prev") != prev:
            return n, "chain broken: 'prev' does not match the line before (edited, removed or reordered)"
        if record.get("seq") != n:
            return n, f"sequence number {record.get('seq')} where {n} was expected"
        prev = _digest(line)
    return n, None
