"""What "rewrite" does to a request: add a do-not-reveal instruction, and redact subject names if asked."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any

from guard.openai.protocol import Endpoint
from guard.policy import Policy
from guard.text import tokens


def name_pattern(names: Sequence[str]) -> re.Pattern[str] | None:
    """A regex for the names, tolerant of case and of any spacing/punctuation between their words."""
    alts = []
    for name in sorted(names, key=len, reverse=True):
        toks = tokens(name)
        if toks:
            alts.append(r"[\W_]*".join(re.escape(t) for t in toks))
    if not alts:
        return None
    return re.compile(r"(?<![0-9A-Za-z])(?:" + "|".join(alts) + r")(?![0-9A-Za-z])", re.IGNORECASE)


def rewrite_request(
    body: dict[str, Any],
    endpoint: Endpoint,
    subjects: Sequence[str],
    names: Sequence[str],
    policy: Policy,
) -> dict[str, Any]:
    """A copy of the request body with the instruction added and, if the policy says so, the names redacted."""
    out = copy.deepcopy(body)
    instruction = policy.input.rewrite_instruction.format(subjects=", ".join(subjects))
    pattern = name_pattern(names) if policy.input.redact_subject else None

    def redact(text: str) -> str:
        return pattern.sub(policy.input.redaction_text, text) if pattern else text

    if endpoint == "chat":
        for message in out["messages"]:
            if message.get("role") != "user":
                continue
            content = message.get("content")
            if isinstance(content, str):
                message["content"] = redact(content)
            elif isinstance(content, list):
                for part in content:
                    if part.get("type") == "text" and isinstance(part.get("text"), str):
                        part["text"] = redact(part["text"])
        out["messages"] = [{"role": "system", "content": instruction}, *out["messages"]]
    else:
        prompts = out["prompt"] if isinstance(out["prompt"], list) else [out["prompt"]]
        rewritten = [f"{instruction}\n\n{redact(p)}" for p in prompts]
        out["prompt"] = rewritten if isinstance(out["prompt"], list) else rewritten[0]
    return out


MAX_BAD_WORDS = 100  # vLLM refuses more than VLLM_MAX_NUM_BAD_WORDS (128 by default) in one request


def with_bad_words(body: Mapping[str, Any], words: Sequence[str]) -> dict[str, Any]:
    """A copy of the request with `words` added to vLLM's `bad_words` (token sequences the model cannot
    generate), after the client's own: the model writes around a watched entry's names instead of being cut
    off by the output check."""
    out = dict(body)
    own = [w for w in body.get("bad_words") or [] if isinstance(w, str) and w.strip()]
    out["bad_words"] = list(dict.fromkeys([*own, *(w for w in words if w.strip())]))[: max(MAX_BAD_WORDS, len(own))]
    return out
