"""Admin API wire models. The documents go in; they come out only through the audited export (`guard.admin.export`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from guard.forget.registry import Entry

Mode = Literal["enforce", "monitor"]


class QuestionAnswer(BaseModel):
    """A question about the subject and its answer: the answer is indexed like a document, and the pair goes to
    the weight-level job as it is (`guard export --layout tofu`)."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=4096)
    answer: str = Field(min_length=1, max_length=100_000)


class ForgetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str = Field(min_length=1, max_length=512)
    aliases: list[str] = Field(default_factory=list, max_length=256)
    documents: list[str] = Field(default_factory=list, max_length=100_000)
    qa: list[QuestionAnswer] = Field(default_factory=list, max_length=10_000)
    policy: str | None = Field(None, min_length=1, max_length=128)
    # monitor: match and record (logs, audit, metrics) but never block — to measure false blocks first
    mode: Mode = "enforce"

    @field_validator("subject")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("subject must not be blank")
        return v.strip()

    @field_validator("aliases")
    @classmethod
    def _clean_aliases(cls, v: list[str]) -> list[str]:
        return [a.strip() for a in v if a.strip()]


class EntryUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Mode


class EntryOut(BaseModel):
    """Metadata and counts only: never the documents' text."""

    id: str
    subject: str
    aliases: list[str]
    policy: str | None
    created_at: float
    documents: int
    chunks: int
    mode: str

    @classmethod
    def of(cls, entry: Entry) -> EntryOut:
        return cls(
            id=entry.id,
            subject=entry.subject,
            aliases=list(entry.aliases),
            policy=entry.policy,
            created_at=entry.created_at,
            documents=entry.documents,
            chunks=entry.chunks,
            mode=entry.mode,
        )


class EntryList(BaseModel):
    object: str = "list"
    data: list[EntryOut]
    total_chunks: int


class Created(BaseModel):
    id: str
    chunks: int


class Term(BaseModel):
    term: str
    count: int  # how often the entry's documents use it (documents, for a number)
    weight: float  # its specificity: rare in English and said often by the entry (`guard.forget.facts.specificity`)
    kept: bool  # among the entry's values the fact check reads (the most specific `MAX_VALUES`)


class Vocabulary(BaseModel):
    """An entry's own vocabulary, most specific first: the words of its documents (forget-index text: an admin's
    audited read, as the export is)."""

    object: str = "list"
    entry_id: str
    data: list[Term]
