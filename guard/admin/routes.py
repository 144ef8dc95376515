"""The admin API: add, list, show, switch and remove forget entries; export them for the weight-level job.
Who may do what: `guard.admin.operators` (viewer: read; editor: change entries; admin: export).

Every change is committed to the registry, then written (fsynced) to the audit log, then acknowledged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse

from guard.admin.export import export
from guard.admin.operators import Caller, Role, authenticate, require
from guard.admin.protocol import Created, EntryList, EntryOut, EntryUpdate, ForgetRequest, Term, Vocabulary
from guard.errors import NotFound, ValidationFailed
from guard.forget.facts import MAX_VALUES, vocabulary
from guard.forget.index import ForgetIndex
from guard.services import services

log = logging.getLogger("guard.admin")

VERSION_HEADER = "x-guard-registry-version"  # the registry version a listing or export reflects


router = APIRouter(prefix="/admin", dependencies=[Depends(authenticate)])
EDITOR = [Depends(require(Role.editor))]
ADMIN = [Depends(require(Role.admin))]


def _index(request: Request) -> ForgetIndex:
    return services(request).index


def record_change(request: Request, op: str, entry_id: str, **fields: Any) -> None:
    """Audit (fsynced) and count one change. The subject is hashed: it names the person who asked to be forgotten."""
    audit, metrics = services(request).audit, services(request).metrics
    caller: Caller = request.state.caller  # the operator (or the legacy token's x-guard-actor)
    record = {
        "entry": entry_id,
        "actor": caller.actor,
        "auth": caller.auth,
        "request_id": request.state.request_id,
        **fields,
    }
    audit.write(f"forget.{op}", record, sync=True)
    metrics.admin_changes.labels(op).inc()
    log.info(f"forget.{op}", extra=record)


@router.post("/forget", status_code=201, response_model=Created, dependencies=EDITOR)
async def add_entry(body: ForgetRequest, request: Request) -> Created:
    policies = services(request).policies
    if body.policy is not None and body.policy not in policies:
        known = ", ".join(policies.names())
        raise ValidationFailed(f"policy: unknown policy '{body.policy}' (known: {known})", param="policy")
    qa = [(p.question, p.answer) for p in body.qa]
    entry = await _index(request).add(body.subject, body.aliases, body.documents, body.policy, body.mode, qa)
    hasher = services(request).hasher
    record_change(
        request,
        "add",
        entry.id,
        subject_hash=hasher(entry.subject),
        chunks=entry.chunks,
        documents=entry.documents,
        policy=entry.policy,
        mode=entry.mode,
    )
    return Created(id=entry.id, chunks=entry.chunks)


@router.get("/forget", response_model=EntryList)
async def list_entries(request: Request, response: Response) -> EntryList:
    index = _index(request)
    entries, version = await index.run(lambda: (index.entries(), index.version))
    response.headers[VERSION_HEADER] = str(version)
    return EntryList(data=[EntryOut.of(e) for e in entries], total_chunks=sum(e.chunks for e in entries))


@router.get("/forget/{entry_id}", response_model=EntryOut)
async def get_entry(entry_id: str, request: Request) -> EntryOut:
    index = _index(request)
    entry = await index.run(index.get, entry_id)
    if entry is None:
        raise NotFound(f"no forget entry with id '{entry_id}'", param="id")
    return EntryOut.of(entry)


@router.patch("/forget/{entry_id}", response_model=EntryOut, dependencies=EDITOR)
async def update_entry(entry_id: str, body: EntryUpdate, request: Request) -> EntryOut:
    """Switch an entry between monitor and enforce (e.g. promote it once its false blocks were measured)."""
    entry = await _index(request).set_mode(entry_id, body.mode)
    if entry is None:
        raise NotFound(f"no forget entry with id '{entry_id}'", param="id")
    record_change(request, "mode", entry_id, mode=entry.mode)
    return EntryOut.of(entry)


@router.get("/forget/{entry_id}/vocabulary", response_model=Vocabulary, dependencies=ADMIN)
async def entry_vocabulary(entry_id: str, request: Request, limit: int = 100) -> Vocabulary:
    """The terms that identify an entry in its own documents (its fact values), found by how specific they are to
    it against general English, with their weights: what the fact check counts as the entry's (issue 35). It is
    text of the forget index, so only an admin reads it, and the read is audited."""
    if not 1 <= limit <= 1000:
        raise ValidationFailed("limit must be between 1 and 1000", param="limit")
    found = await _index(request).registry.entry_chunks(entry_id)
    if found is None:
        raise NotFound(f"no forget entry with id '{entry_id}'", param="id")
    entry, chunks = found
    terms = vocabulary([c.text for c in chunks], (entry.subject, *entry.aliases))
    record_change(request, "vocabulary", entry_id, terms=min(limit, len(terms)))
    data = [Term(term=w, count=n, weight=round(x, 2), kept=i < MAX_VALUES) for i, (w, n, x) in enumerate(terms)]
    return Vocabulary(entry_id=entry_id, data=data[:limit])


@router.get("/export", dependencies=ADMIN)
async def export_entries(request: Request) -> StreamingResponse:
    """The forget set with its documents, for the weight-level job (`guard.admin.export`): audited first."""
    lines, manifest = await export(_index(request).registry)
    fields = {k: manifest[k] for k in ("registry_version", "entries", "sha256")}
    record_change(request, "export", "*", **fields)

    async def body() -> AsyncIterator[bytes]:
        for line in lines:
            yield line
        yield json.dumps({"manifest": manifest}).encode() + b"\n"

    headers = {VERSION_HEADER: str(manifest["registry_version"])}
    return StreamingResponse(body(), media_type="application/x-ndjson", headers=headers)


@router.delete("/forget/{entry_id}", status_code=204, dependencies=EDITOR)
async def remove_entry(entry_id: str, request: Request) -> Response:
    if not await _index(request).remove(entry_id):
        raise NotFound(f"no forget entry with id '{entry_id}'", param="id")
    record_change(request, "remove", entry_id)
    return Response(status_code=204)
