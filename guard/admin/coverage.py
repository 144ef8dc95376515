"""The admin API of coverage: which entries each weight-edited model has forgotten by itself (`guard handoff`).

- `POST /admin/coverage/handoff`: a `guard ab` report (its exact text and the SHA-256 from its manifest) decides,
  per entry it names, whether the model covers it; the model's coverage of those entries is replaced in one
  registry change (replicated like every change). `dry_run` only says what it would do.
- `GET /admin/coverage[?model=]`, `POST /admin/coverage` (one entry by hand), `DELETE /admin/coverage/{model}/{id}`.

A model must be one the guard routes by name (`GUARD_UPSTREAM_MODELS`): coverage of any other would never apply.
Every change is audited before it is acknowledged, like the forget entries' own.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from guard.admin.handoff import assess, read_report, rows
from guard.admin.operators import authenticate
from guard.admin.routes import ADMIN, record_change
from guard.errors import NotFound, ValidationFailed
from guard.forget.coverage import COVERED
from guard.forget.index import ForgetIndex
from guard.forget.registry import Coverage
from guard.services import services

router = APIRouter(prefix="/admin/coverage", dependencies=[Depends(authenticate)])

MAX_REPORT_CHARS = 20_000_000


class Handoff(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=256)
    report: str = Field(min_length=2, max_length=MAX_REPORT_CHARS)  # results.json, exactly as written
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")  # from manifest.json
    dry_run: bool = False


class CoverOne(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=256)
    entry: str = Field(min_length=1, max_length=128)


class CoverageOut(BaseModel):
    model: str
    entry: str
    state: str
    leak: float | None
    utility_loss: float | None
    report_sha256: str | None
    registry_version: int
    at: float

    @classmethod
    def of(cls, c: Coverage) -> CoverageOut:
        return cls(
            model=c.model,
            entry=c.entry_id,
            state=c.state,
            leak=c.leak,
            utility_loss=c.utility_loss,
            report_sha256=c.report_sha256,
            registry_version=c.registry_version,
            at=c.at,
        )


class CoverageList(BaseModel):
    object: str = "list"
    data: list[CoverageOut]


def _index(request: Request) -> ForgetIndex:
    return services(request).index


def _known_model(request: Request, model: str) -> None:
    models = services(request).settings.upstreams.models
    if model not in models:
        known = ", ".join(sorted(models)) or "none: set GUARD_UPSTREAM_MODELS"
        raise NotFound(f"model: the guard routes no model {model!r} by name (it routes: {known})", param="model")


@router.post("/handoff", dependencies=ADMIN)
async def handoff(body: Handoff, request: Request) -> dict[str, Any]:
    _known_model(request, body.model)
    index = _index(request)
    version = index.version
    report = read_report(body.report, body.sha256, version)
    entries = {e.id: e for e in await index.run(index.entries)}
    try:
        policies = services(request).policies.for_request(body.model, None)  # the model's bound policy, if any
        outcomes, loss = assess(report, body.model, entries, policies)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValidationFailed(f"report: malformed ({type(exc).__name__}: {exc})", param="report") from exc
    covered = rows(body.model, outcomes, loss, body.sha256, version)
    revoked = [o.entry_id for o in outcomes if not o.covered and o.entry_id in entries]
    found = [
        {"entry": o.entry_id, "covered": o.covered, "reason": o.reason, "leak": o.leak, "questions": o.questions}
        for o in outcomes
    ]
    answer: dict[str, Any] = {
        "model": body.model,
        "utility_loss": loss,
        "dry_run": body.dry_run,
        "entries": found,
        "registry_version": version,
    }
    if body.dry_run:
        return answer
    answer["registry_version"] = await index.set_coverage(body.model, covered, revoked)
    record_change(
        request,
        "handoff",
        "*",
        model=body.model,
        covered=len(covered),
        not_covered=len(revoked),
        report_sha256=body.sha256.lower(),
        report_version=version,
    )
    return answer


@router.get("", response_model=CoverageList)
async def list_coverage(request: Request, model: str | None = None) -> CoverageList:
    return CoverageList(data=[CoverageOut.of(c) for c in _index(request).memory.coverage.rows(model)])


@router.post("", status_code=201, response_model=CoverageOut, dependencies=ADMIN)
async def cover(body: CoverOne, request: Request) -> CoverageOut:
    """Cover one entry for a model by hand (no report: the operator vouches for it; audited as such)."""
    _known_model(request, body.model)
    index = _index(request)
    if index.get(body.entry) is None:
        raise NotFound(f"no forget entry with id '{body.entry}'", param="entry")
    row = Coverage(body.model, body.entry, COVERED, None, None, None, index.version, time.time())
    await index.set_coverage(body.model, [row])
    record_change(request, "cover", body.entry, model=body.model)
    return CoverageOut.of(row)


@router.delete("/{model}/{entry_id}", status_code=204, dependencies=ADMIN)
async def revoke(model: str, entry_id: str, request: Request) -> Response:
    index = _index(request)
    if not any(c.entry_id == entry_id for c in index.memory.coverage.rows(model)):
        raise NotFound(f"model {model!r} does not cover entry '{entry_id}'", param="entry")
    await index.set_coverage(model, [], [entry_id])
    record_change(request, "uncover", entry_id, model=model)
    return Response(status_code=204)
