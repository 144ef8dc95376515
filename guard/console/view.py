"""What the console shows, gathered from the running services: metadata and counts only, never documents or
prompts (a decision is its ids, checks, scores and hashes, as in the audit log)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from guard.observe.audit import chain_files, verify_files
from guard.services import Services

ACTIONS = ("refuse", "filter", "rewrite", "monitor")  # the per-entry counts, in the table's column order


@dataclass
class AuditStatus:
    ok: bool
    records: int
    files: int
    problem: str | None


@dataclass
class AuditChecker:
    """`guard audit verify` for the console, in a worker thread. Cached by the files' sizes and times, so a page
    load after no change costs a stat per file. A rotation during the check is retried once, not reported."""

    path: Path
    _key: tuple[tuple[str, int, int], ...] | None = None
    _status: AuditStatus | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def _files(self) -> tuple[list[Path], tuple[tuple[str, int, int], ...]]:
        files = [p for p in chain_files(self.path) if p.exists()]
        key = []
        for p in files:
            st = p.stat()
            key.append((p.name, st.st_size, st.st_mtime_ns))
        return files, tuple(key)

    def _check(self) -> tuple[tuple[tuple[str, int, int], ...], AuditStatus]:
        for _ in range(2):
            files, key = self._files()
            records, problem = verify_files(files)
            if problem is None or self._files()[0] == files:
                break
        where = None if problem is None else f"{problem[0].name}, line {records}: {problem[1]}"
        return key, AuditStatus(problem is None, records, len(files), where)

    async def status(self) -> AuditStatus:
        async with self._lock:
            _, key = await asyncio.to_thread(self._files)
            cached = self._status
            if cached is not None and key == self._key:
                return cached
            self._key, fresh = await asyncio.to_thread(self._check)
            self._status = fresh
            return fresh


def entry_rows(svc: Services) -> list[dict[str, Any]]:
    """The entries, newest first, each with this replica's decision counts."""
    counts = svc.decisions.counts
    rows = []
    for e in sorted(svc.index.entries(), key=lambda e: e.created_at, reverse=True):
        tally = counts.get(e.id) or Counter[str]()
        rows.append(
            {
                "id": e.id,
                "subject": e.subject,
                "aliases": len(e.aliases),
                "policy": e.policy or "(default)",
                "mode": e.mode,
                "documents": e.documents,
                "chunks": e.chunks,
                "created": _when(e.created_at),
                "counts": {a: tally.get(a, 0) for a in ACTIONS},
            }
        )
    return rows


def recent_decisions(svc: Services, limit: int = 50) -> list[dict[str, Any]]:
    out = []
    for d in list(svc.decisions.recent)[:limit]:
        found: list[dict[str, Any]] = [*cast(list[Any], d.get("matches", [])), *cast(list[Any], d.get("monitored", []))]
        out.append(
            {
                "time": _when(cast(float, d["time"])),
                "request_id": d.get("request_id", ""),
                "stage": d.get("stage", ""),
                "action": "monitor" if d.get("monitored") and d.get("action") == "allow" else d.get("action"),
                "entries": sorted({m["entry"] for m in found}),
                "checks": sorted({m["check"] for m in found}),
                "failed": bool(d.get("failed")),
            }
        )
    return out


def coverage_rows(svc: Services) -> list[dict[str, Any]]:
    return [
        {
            "model": c.model,
            "entry": c.entry_id,
            "state": c.state,
            "leak": "—" if c.leak is None else f"{c.leak:.1%}",
            "utility_loss": "—" if c.utility_loss is None else f"{c.utility_loss:.3f}",
        }
        for c in svc.index.memory.coverage.rows(None)
    ]


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + "Z"
