"""The forget set for the weight-level unlearning job: the one path by which registered text leaves the guard.

`GET /admin/export` (admin token; audited with the registry version, the entry count and the content hash, never
the text) streams one JSON line per entry, read from one consistent snapshot of the registry:
`{"id", "subject", "aliases", "policy", "mode", "created_at", "documents", "sentences", "qa"}` (`qa`: the
question/answer pairs it was registered with, `[{"question", "answer"}]`). The registry keeps the
sentences of an entry's documents in order, not where one document ended: `sentences` is that list and
`documents` holds it joined as one text. A last line `{"manifest": {...}}` gives the registry version, the entry
count and the SHA-256 of the entry lines (each with its newline), so the job and `guard export` can verify what
they received. `guard export --out DIR` writes `entries.jsonl` and `manifest.json`.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from guard.forget.registry import Registry

FORMAT = "forget-guard.export/1"


async def export(registry: Registry) -> tuple[list[bytes], dict[str, Any]]:
    """The entry lines and the manifest, read whole before anything is sent, so that the audit record (with the
    hash) is written before the text leaves. A million chunks make ~150 MB here, for the time of the request."""
    digest = hashlib.sha256()
    async with registry.snapshot() as snap:
        version = await snap.version()
        entries = await snap.entries()
        pairs = await snap.qa()
        sentences: dict[str, list[str]] = {e.id: [] for e in entries}
        async for batch in snap.chunks(text=True):
            for chunk in batch:
                sentences.setdefault(chunk.entry_id, []).append(chunk.text)
    lines: list[bytes] = []
    for entry in sorted(entries, key=lambda e: (e.created_at, e.id)):
        said = sentences.get(entry.id, [])
        record = {
            "id": entry.id,
            "subject": entry.subject,
            "aliases": list(entry.aliases),
            "policy": entry.policy,
            "mode": entry.mode,
            "created_at": entry.created_at,
            "documents": [" ".join(said)] if said else [],
            "sentences": said,
            "qa": [{"question": q, "answer": a} for q, a in pairs.get(entry.id, [])],
        }
        line = json.dumps(record, ensure_ascii=False).encode() + b"\n"
        digest.update(line)
        lines.append(line)
    manifest = {
        "format": FORMAT,
        "registry_version": version,
        "entries": len(entries),
        "sha256": digest.hexdigest(),
        "created_at": round(time.time(), 3),
    }
    return lines, manifest


def tofu_layout(lines: list[bytes]) -> dict[str, bytes]:
    """The export as TOFU's forget split reads it (open-unlearning's TOFU loader too): `forget.json`, a JSON array
    of `{"question", "answer", "subject", "entry_id"}` over every entry's pairs; and `forget_documents.json`,
    `{"text", "subject", "entry_id"}` per document of the entries registered without pairs (a raw-text forget
    set, as MUSE-style jobs take it)."""
    pairs: list[dict[str, Any]] = []
    documents: list[dict[str, Any]] = []
    for line in lines:
        record = json.loads(line)
        where = {"subject": record["subject"], "entry_id": record["id"]}
        if record.get("qa"):
            pairs += [{"question": p["question"], "answer": p["answer"], **where} for p in record["qa"]]
        else:
            documents += [{"text": d, **where} for d in record["documents"]]
    return {
        "forget.json": json.dumps(pairs, ensure_ascii=False, indent=1).encode(),
        "forget_documents.json": json.dumps(documents, ensure_ascii=False, indent=1).encode(),
    }


def verify(lines: list[bytes], manifest: dict[str, Any]) -> str | None:
    """What is wrong with an export as received (None: it is whole)."""
    if manifest.get("format") != FORMAT:
        return f"unknown export format {manifest.get('format')!r}"
    if len(lines) != manifest.get("entries"):
        return f"{len(lines)} entries received, the manifest says {manifest.get('entries')}"
    if hashlib.sha256(b"".join(lines)).hexdigest() != manifest.get("sha256"):
        return "the entries do not match the manifest's sha256"
    return None
