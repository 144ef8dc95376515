"""The append-only audit log: who forgot what and when, and which request was refused by which entry.

One JSON object per line in `audit.jsonl`. It records ids, decisions, scores and salted hashes — never prompt,
completion or forget text (a subject is recorded as a salted hash: the name of a person who asked to be forgotten
is itself personal data). Every line carries `prev`, the SHA-256 of the line before it, so an edit, a deletion or
a reordering anywhere breaks the chain: `guard audit verify` finds it.

Admin changes are fsynced before the API answers. Request decisions are written with one `write` each (the
kernel has them; a power loss may lose the last few) unless `fsync_all` (`GUARD_AUDIT_FSYNC=all`) fsyncs every line.

Rotation: past `rotate_bytes` the file is renamed `audit.jsonl.<last seq, 12 digits>` and a new one begins; the
chain goes on across files (the new file's first `prev` is the old file's last line's digest, `seq` continues), so
the files in name order verify as one chain (`verify_files`), and a missing file is found where it was. Never
rotate with `logrotate copytruncate`: it cuts the chain.
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
    def __init__(self, path: Path, *, rotate_bytes: int = 0, fsync_all: bool = False) -> None:
        """`rotate_bytes`: start a new file past this size (0 = never); `fsync_all`: fsync every line."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.rotate_bytes = rotate_bytes
        self.fsync_all = fsync_all
        self._lock = threading.Lock()
        self._prev = GENESIS
        self._seq = 0
        last = _last_line(path)
        rotated = [f for f in chain_files(path) if f != path]
        if last is None and rotated:  # the current file is new (just rotated): the chain goes on from the last one
            last = _last_line(rotated[-1])
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
            if sync or self.fsync_all:
                os.fsync(self._fd)
            self._prev = _digest(line)
            if self.rotate_bytes and os.fstat(self._fd).st_size >= self.rotate_bytes:
                self._rotate()

    def _rotate(self) -> None:
        """Close the full file under its last seq's name; go on in a new one (the chain and seq carry over)."""
        os.fsync(self._fd)
        os.close(self._fd)
        os.rename(self.path, rotated_name(self.path, self._seq))
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        _fsync_dir(self.path.parent)

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


def rotated_name(path: Path, last_seq: int) -> Path:
    return path.with_name(f"{path.name}.{last_seq:012d}")


def chain_files(path: Path) -> list[Path]:
    """The rotated files of an audit log, oldest first, then the current one (if there)."""
    rotated = sorted(p for p in path.parent.glob(f"{path.name}.*") if p.suffix[1:].isdigit())
    return rotated + ([path] if path.exists() else [])


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def verify(path: Path) -> tuple[int, str | None]:
    """Check the chain of one file from the start: (lines checked, None) when intact, else (line, problem)."""
    n, problem = verify_files([path])
    return n, None if problem is None else problem[1]


def verify_files(paths: list[Path]) -> tuple[int, tuple[Path, str] | None]:
    """Check the chain across files in order (rotated ones, then the current): (lines checked, None) when intact,
    else (the line's number within its file, (that file, what is wrong))."""
    prev, seq, total = GENESIS, 0, 0
    for path in paths:
        for n, line in enumerate(_lines(path), start=1):
            total += 1
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                return n, (path, "not a JSON object")
            if not isinstance(record, dict) or record.get("prev") != prev:
                where = "a file before it is missing" if n == 1 and path != paths[0] else "edited, removed or reordered"
                if n == 1 and path == paths[0]:
                    where = "the chain does not start here: an earlier file is missing"
                return n, (path, f"chain broken: 'prev' does not match the line before ({where})")
            if record.get("seq") != seq + 1:
                return n, (path, f"sequence number {record.get('seq')} where {seq + 1} was expected")
            prev, seq = _digest(line), seq + 1
    return total, None


def records_since(paths: list[Path], since: float) -> Iterator[bytes]:
    """The lines of the chain written at or after `since` (a Unix time), oldest first."""
    for path in paths:
        for line in _lines(path):
            if float(json.loads(line).get("ts", 0)) >= since:
                yield line
