"""OpenAI wire models (only pydantic and the stdlib here).

`extra="allow"` everywhere: fields the guard does not know (tools, response_format, logprobs, vLLM extras) are
kept and forwarded untouched. Only what the guard reads is declared.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from guard.errors import ClientError, ValidationFailed

MAX_MESSAGES = 4096  # a conversation longer than this is a mistake or an attack, not a chat
MAX_PARTS = 1024  # content parts in one message
# Fields of a message that carry text a model reads (besides `content`): all of them are checked.
TEXT_FIELDS = ("name", "reasoning", "reasoning_content", "refusal")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ChatMessage(_Open):
    role: str = Field(min_length=1)
    # the bound is on the number of parts only: a Field(max_length=...) on the whole union also bounded a string's
    # length, and every prompt over 1,024 characters was refused with a 422
    content: str | Annotated[list[dict[str, Any]], Field(max_length=MAX_PARTS)] | None = None

    def text(self) -> str:
        """The message's content as text: a string, or every textual part of a multi-part content."""
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "\n".join(t for p in self.content for t in part_texts(p))

    def texts(self) -> list[tuple[str, str]]:
        """Every text of the message a model reads, with its field: content, name, tool calls, reasoning."""
        out = [("content", self.text())]
        extra = self.model_extra or {}
        out += [(f, v) for f in TEXT_FIELDS if isinstance(v := extra.get(f), str)]
        calls = extra.get("tool_calls")
        for i, call in enumerate(calls if isinstance(calls, list) else []):
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                out += [(f"tool_calls[{i}]", " ".join(str(fn.get(k) or "") for k in ("name", "arguments")))]
        fn = extra.get("function_call")
        if isinstance(fn, dict):
            out.append(("function_call", " ".join(str(fn.get(k) or "") for k in ("name", "arguments"))))
        return [(f, t) for f, t in out if t.strip()]


def part_texts(part: dict[str, Any]) -> list[str]:
    """The text of a content part, whatever its type calls it ("text", "input_text", "refusal", …)."""
    return [v for k, v in part.items() if k != "type" and isinstance(v, str) and k in ("text", "refusal", "content")]


class ChatCompletionRequest(_Open):
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False
    n: int | None = Field(None, ge=1, le=128)


class CompletionRequest(_Open):
    model: str = Field(min_length=1)
    prompt: str | list[str]
    stream: bool = False
    n: int | None = Field(None, ge=1, le=128)

    @field_validator("prompt", mode="before")
    @classmethod
    def _no_token_ids(cls, v: Any) -> Any:
        # Token-id prompts cannot be checked against the forget index: refuse them rather than pass them blind.
        if isinstance(v, list) and any(not isinstance(x, str) for x in v):
            raise ValueError("token-id prompts are not supported by forget-guard; send text")
        if isinstance(v, list) and len(v) > MAX_MESSAGES:
            raise ValueError(f"at most {MAX_MESSAGES} prompts per request")
        return v

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


Endpoint = Literal["chat", "completions"]


M = TypeVar("M", bound=BaseModel)


def parse_body(raw: bytes, model: type[M]) -> tuple[dict[str, Any], M]:
    """Decode and validate a request body: the raw dict (forwarded as is) and the validated view of it.

    Every failure is a 400/422 naming the problem.
    """
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ClientError(f"request body is not valid UTF-8: {exc.reason}") from exc
    except json.JSONDecodeError as exc:
        raise ClientError(f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    if not isinstance(data, dict):
        raise ClientError("request body must be a JSON object")
    try:
        return data, model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise ValidationFailed(f"{param}: {first['msg']}" if param else first["msg"], param=param) from exc
