"""Policies: YAML files validated into pydantic models. A bad file fails at start, naming the file and field.

A policy may be bound to model names and to client keys (`applies_to`): it is then the request's policy, in place
of the default one, for requests to those models or with those keys (`PolicySet.for_request`). The running set is
replaced as a whole on reload (`guard.policy_watch`), so a request reads one set from its start to its end.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from guard.errors import PolicyError
from guard.forget.registry import Entry

log = logging.getLogger("guard.policy")

KEY_ID_CHARS = 16  # a client key's id: the first 16 hex characters of its SHA-256 (`key_id`)


class InputAction(StrEnum):
    refuse = "refuse"
    rewrite = "rewrite"


class OnError(StrEnum):
    closed = "closed"  # a check that fails refuses (input) or blocks (output): nothing unchecked gets through
    open = "open"  # a check that fails lets the text pass; the failure is logged and counted


class Mode(StrEnum):
    enforce = "enforce"
    monitor = "monitor"  # decide and record (logs, audit, metrics), never block


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Binding(_Strict):
    """The requests a policy is the request's policy for: those to one of `models` (the body's `model`), those
    with one of `clients` (API keys, by their id: `printf %s "$KEY" | sha256sum | cut -c1-16`), or, with both,
    those with one of the keys to one of the models. Keys are only known when the guard checks them
    (`GUARD_API_KEYS`)."""

    models: list[str] = Field(default_factory=list)
    clients: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _some(self) -> Binding:
        if not self.models and not self.clients:
            raise ValueError("applies_to: name at least one model or client")
        for client in self.clients:
            if len(client) != KEY_ID_CHARS or any(c not in "0123456789abcdef" for c in client):
                raise ValueError(f"applies_to.clients: {KEY_ID_CHARS} lower-case hex characters (a key's id) expected")
        return self

    def keys(self) -> list[tuple[str | None, str | None]]:
        """(client, model) pairs this binding claims; None stands for any."""
        clients: list[str | None] = list(self.clients) or [None]
        models: list[str | None] = list(self.models) or [None]
        return [(c, m) for c in clients for m in models]


class InputPolicy(_Strict):
    action: InputAction = InputAction.refuse
    semantic: bool = True
    semantic_threshold: float = Field(0.70, ge=-1.0, le=1.0)
    lexical: bool = True
    # Weaker evidence puts the conversation under watch for the entry (its output check becomes strict):
    # meaning at or above this score (the closest entry only), a part of a name alone, or this many of the
    # entry's rare fact values (numbers, words outside the 5,000 most frequent).
    watch_threshold: float = Field(0.65, ge=-1.0, le=1.0)
    watch_facts: int = Field(2, ge=1)
    # A question this close to an entry by meaning (the closest entry only) has its answer read with it at the
    # output (`output.qa_threshold`), without the rest of a watch's strictness.
    near_threshold: float = Field(0.55, ge=-1.0, le=1.0)
    # A conversation that names an entry but gives this many details of whoever it names (proper nouns, numbers
    # of three or more digits) that the entry's documents never use, and none that they do, is about a namesake:
    # the name watches instead of refusing (`guard.checks.identity`). 0 turns this off.
    namesake_details: int = Field(2, ge=0)
    # A question this close to an entry (its three closest such entries) has its answer's new words looked for in
    # the entry's sentences the question retrieves (`output.answer_coverage`, `guard.checks.answers`).
    asked_threshold: float = Field(0.45, ge=-1.0, le=1.0)
    # The same for text in other languages, on the multilingual model's scale (bench/embedders.py).
    multilingual_threshold: float = Field(0.87, ge=-1.0, le=1.0)
    multilingual_watch_threshold: float = Field(0.86, ge=-1.0, le=1.0)
    # A subject described, not named: one of the entry's numbers (a year, in any script's digits) in the request, and
    # the entry is the closest by meaning at or above this score (MiniLM for English, the multilingual model
    # for other languages) -> counts as a match (bench/RESULTS.md, issue 14).
    described_threshold: float = Field(0.62, ge=-1.0, le=1.0)
    multilingual_described_threshold: float = Field(0.85, ge=-1.0, le=1.0)
    # Rewrite: the instruction prepended as a system message; `{subjects}` is replaced by the matched subjects.
    rewrite_instruction: str = (
        "The following subjects have been removed from your knowledge: {subjects}. Do not reveal, confirm or "
        "guess any information about them. If asked about them, say you have no information."
    )
    redact_subject: bool = False
    redaction_text: str = "[REDACTED]"


class OutputPolicy(_Strict):
    semantic: bool = True
    semantic_threshold: float = Field(0.80, ge=-1.0, le=1.0)
    verbatim: bool = True
    lexical: bool = True
    # Under watch, a generated sentence this close to the watched entry's documents is blocked; this close
    # under strong watch (a part of the entry's name or its fact values were in the conversation).
    watch_threshold: float = Field(0.76, ge=-1.0, le=1.0)
    watch_strong_threshold: float = Field(0.60, ge=-1.0, le=1.0)
    multilingual_threshold: float = Field(0.90, ge=-1.0, le=1.0)
    multilingual_watch_threshold: float = Field(0.89, ge=-1.0, le=1.0)
    multilingual_watch_strong_threshold: float = Field(0.87, ge=-1.0, le=1.0)
    # Under watch or near (`input.near_threshold`), the answer is also read joined to the question it answers ("Who
    # wanted more unmanned tests of the LM? Grumman."): it counts from this score, a little above where that
    # question, so answered, would be refused at input (a bare value means nothing alone and passes every other
    # check). Only an answer that says little without its question is so read; `guard eval tofu` on forget10
    # counts 32 retain questions blocked of 3,600 with it, 30 without (bench/RESULTS.md, forget10).
    qa_threshold: float = Field(0.72, ge=-1.0, le=1.0)
    # An answer to a question near an entry (`input.asked_threshold`) whose new words (those its question lacks) are
    # at least this share in the entry's sentences the question retrieves is filtered: what it adds is the
    # entry's ("Who wanted more unmanned tests of the LM?" "The answer is Economic pressure.": "economic" and
    # "pressure" are in the article's sentence, "answer" is not: 2 of 3). A short answer with a telling value
    # found (a number, the entry's own proper noun: "The answer is Grumman.") counts whole. 0 turns this off.
    answer_coverage: float = Field(0.5, ge=0.0, le=1.0)
    # Whatever the question seemed to be about (a question without its subject is near no entry, or near every
    # author alike): an answer whose new words stand in one sentence of an entry, at least `answer_coverage` of
    # them (`guard.checks.answers.locate`), this many of them rare (a number of three digits or more, a word
    # outside the 5,000 most frequent: "Veins", "Sorrows") and distinct values (the words of one multi-word name
    # are one: "Nora Roberts", whom the sentence mentions, is no fact of it), and that speaks of what was asked,
    # states that sentence's fact in another form (a JSON object of its values, a table). 0 turns this off.
    located_rare: int = Field(2, ge=0)
    # ... or one rare word, in a sentence that uses at least this share of the question's content words (the
    # question asks what that sentence says: "When was the FIS founded?" "The answer is 1989."). 0 turns this off.
    located_asked: float = Field(0.5, ge=0.0, le=1.0)
    multilingual_qa_threshold: float = Field(0.87, ge=-1.0, le=1.0)


class CoveragePolicy(_Strict):
    """Handing an entry over to a weight-edited model (`guard handoff`) and watching that model afterwards."""

    # An entry is covered when the model alone, in the A/B report, leaked at most this share of the entry's
    # questions (either leak definition), over at least `min_questions` of them ...
    max_leak: float = Field(0.0, ge=0.0, le=1.0)
    min_questions: int = Field(5, ge=1)
    # ... and lost at most this much answer quality (ROUGE-L recall) against the base model on every control set
    # (retain, real authors, world facts).
    max_utility_loss: float = Field(0.05, ge=0.0, le=1.0)
    # What requests routed to that model get for a covered entry: monitor (matched and recorded, the model answers)
    # or enforce (the guard still refuses: defence in depth).
    mode: Mode = Mode.monitor
    # A covered entry the model leaks again in live traffic (its facts in the answer) is counted; with this on,
    # that answer is filtered and the entry is enforced again for the model, on every replica.
    auto_revert: bool = True


class GlobalPolicy(_Strict):
    """Settings that apply to every request whatever entry it matches: they are used before any entry is known
    (which texts to check, how the index is built, what a failed check does). Only in the default policy file."""

    # How far back the multi-turn window reaches: the last `window_turns` turns are also embedded together.
    window_turns: int = Field(3, ge=1, le=64)
    # Verbatim output check: runs of this many words shared with a forget document.
    ngram_words: int = Field(12, ge=3, le=64)
    # A name (spaces removed) of at least this many characters may match with one typo; 4 more, with two.
    typo_min_chars: int = Field(6, ge=1)
    # Streaming: text is released only after it passed the checks, at a sentence end, or when this many
    # characters wait without one. Under watch an answer is held to its end.
    hold_back_chars: int = Field(600, ge=16, le=100_000)
    # What happens when the embedder or the index fails (before it is known which entries match).
    on_error: OnError = OnError.closed


# Fields that were once per policy but are global: a policy file that sets them is refused, naming the move.
MOVED_TO_GLOBAL = {
    ("input", "window_turns"): "window_turns",
    ("output", "ngram_words"): "ngram_words",
    ("output", "hold_back_tokens"): "hold_back_chars",
    ("lexical", "typo_min_chars"): "typo_min_chars",
    ("on_error",): "on_error",
}


# Fields read from the request's policy only (`RequestContext.policy`: the default policy, or the one bound to the
# request with `applies_to`), never from an entry's: the request is dispatched before any entry matched. A policy
# that is only an entry's (not the default, no `applies_to`) that sets one is refused at load, naming it.
REQUEST_ONLY = ("speculative", "stream_upstream")


class Policy(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    refusal_text: str = Field("I'm sorry, but I can't help with that.", min_length=1)
    # monitor: the entries of this policy are matched and recorded but never enforced (see also Entry.mode).
    mode: Mode = Mode.enforce
    # Send the request upstream at once and run its input check meanwhile (`guard.pipeline.speculate`): the input
    # check's time hides behind the upstream's, but the upstream sees prompts that are then refused (cancelled).
    # Read from the request's policy (the default policy: no entry has matched yet).
    speculative: bool = False
    # A request that does not stream is streamed from the upstream all the same and returned whole
    # (`guard.openai.assemble`): the answer's sentences are embedded while the rest is generated, so its output check
    # is done moments after the last token. Read from the request's policy, as `speculative`.
    stream_upstream: bool = False
    input: InputPolicy = InputPolicy()
    output: OutputPolicy = OutputPolicy()
    coverage: CoveragePolicy = CoveragePolicy()
    applies_to: Binding | None = None

    @model_validator(mode="after")
    def _instruction_placeholder(self) -> Policy:
        try:
            self.input.rewrite_instruction.format(subjects="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"input.rewrite_instruction: only the {{subjects}} placeholder is allowed ({exc})"
            ) from exc
        return self


def load_policy(path: Path, *, default: bool = False) -> tuple[Policy, GlobalPolicy]:
    """A policy file: the policy, and its `global` section (only the default policy file may have one)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PolicyError(f"policy file not found: {path}") from exc
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PolicyError(f"policy file {path} cannot be read: {exc}") from exc
    if not isinstance(raw, dict):
        raise PolicyError(f"policy file {path}: expected a mapping at the top level")
    raw.setdefault("name", path.stem)
    for where, name in MOVED_TO_GLOBAL.items():
        section: object = raw
        for key in where[:-1]:
            section = section.get(key) if isinstance(section, dict) else None
        if isinstance(section, dict) and where[-1] in section:
            raise PolicyError(
                f"policy file {path}: field '{'.'.join(where)}' applies to every request, not per policy: "
                f"set 'global.{name}' in the default policy file instead"
            )
    if isinstance(raw.get("global"), dict) and "hold_back_tokens" in raw["global"]:
        raise PolicyError(
            f"policy file {path}: field 'global.hold_back_tokens' is now 'global.hold_back_chars' "
            "(the hold-back limit is counted in characters)"
        )
    if "global" in raw and not default:
        raise PolicyError(f"policy file {path}: field 'global': only the default policy file may have it")
    if "applies_to" in raw and default:
        raise PolicyError(f"policy file {path}: field 'applies_to': the default policy applies to every request")
    glob = raw.pop("global", None) or {}
    try:
        policy, settings = Policy.model_validate(raw), GlobalPolicy.model_validate(glob)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        if exc.title == GlobalPolicy.__name__:
            field = f"global.{field}"
        raise PolicyError(f"policy file {path}: field '{field}': {first['msg']}") from exc
    ignored = [f for f in REQUEST_ONLY if f in policy.model_fields_set]
    if ignored and not default and policy.applies_to is None:
        raise PolicyError(
            f"policy file {path}: field '{ignored[0]}': read from the request's policy only (the default policy, "
            "or one with 'applies_to'); this policy can only be an entry's, where it would be ignored"
        )
    return policy, settings


@dataclass(frozen=True)
class _Loaded:
    default: Policy
    by_name: dict[str, Policy]
    settings: GlobalPolicy
    bound: dict[tuple[str | None, str | None], Policy] = field(default_factory=dict)  # (client, model) -> policy
    scoped: dict[tuple[str | None, str | None], PolicySet] = field(default_factory=dict)  # for_request's, cached
    warned: set[str] = field(default_factory=set)  # unknown policy names logged (once each per set, not per request)


class PolicySet:
    """The default policy plus every other policy file beside it, addressable by name; `for_request` gives the
    set a request reads, with its bound policy (if any) as its default. `replace` swaps the whole set (reload)."""

    def __init__(
        self, default: Policy, others: dict[str, Policy] | None = None, settings: GlobalPolicy | None = None
    ) -> None:
        by_name = {default.name: default, **(others or {})}
        bound: dict[tuple[str | None, str | None], Policy] = {}
        for policy in by_name.values():
            for key in policy.applies_to.keys() if policy.applies_to else []:
                if key in bound:
                    what = " and ".join(f"{k} {v}" for k, v in zip(("client", "model"), key, strict=True) if v)
                    raise PolicyError(f"policies '{bound[key].name}' and '{policy.name}' are both bound to {what}")
                bound[key] = policy
        self._state = _Loaded(default, by_name, settings or GlobalPolicy(), bound)
        self._bound: Policy | None = None

    @classmethod
    def load(cls, default_file: Path) -> PolicySet:
        default, settings = load_policy(default_file, default=True)
        others: dict[str, Policy] = {}
        for path in sorted(default_file.parent.glob("*.yaml")):
            if path.resolve() == default_file.resolve():
                continue
            policy, _ = load_policy(path)
            if policy.name in others or policy.name == default.name:
                raise PolicyError(f"policy file {path}: name '{policy.name}' is used by another policy file")
            others[policy.name] = policy
        return cls(default, others, settings)

    @property
    def default(self) -> Policy:
        """The request's policy: the default policy file's, or the policy bound to this request's model/key."""
        return self._bound or self._state.default

    @property
    def settings(self) -> GlobalPolicy:
        return self._state.settings  # the `global` section of the default policy file

    def replace(self, new: PolicySet) -> None:
        """Run with `new` from the next request on (requests under way keep the set they started with)."""
        self._state = new._state  # one reference: a request reads the old set or the new one, never a mix

    def for_request(self, model: str | None, client: str | None) -> PolicySet:
        """The set a request reads from its start to its end: the policy bound to its key and model, else to its
        key, else to its model, is its default (entries registered with a policy of their own keep theirs)."""
        state, key = self._state, (client, model)
        found = state.scoped.get(key)
        if found is None:
            order = ((client, model), (client, None), (None, model))
            found = PolicySet.__new__(PolicySet)
            found._state, found._bound = state, next((state.bound[k] for k in order if k in state.bound), None)
            if len(state.scoped) < 4096:  # the models x keys in use; beyond that, built per request
                state.scoped[key] = found
        return found

    def get(self, name: str | None) -> Policy:
        if name is None:
            return self.default
        found = self._state.by_name.get(name)
        if found is None:  # an entry registered on a replica that has this policy and this one does not
            if name not in self._state.warned:
                self._state.warned.add(name)
                log.warning("entry names an unknown policy: the request's policy applies", extra={"policy": name})
            return self.default
        return found

    def for_entry(self, entry: Entry | None) -> Policy:
        """The policy an entry was registered with (the request's policy when it named none)."""
        return self.get(entry.policy if entry else None)

    def monitored(self, entry: Entry | None) -> bool:
        """An entry is only monitored when it or its policy is in monitor mode."""
        return entry is not None and (entry.mode == Mode.monitor or self.for_entry(entry).mode is Mode.monitor)

    def __contains__(self, name: str) -> bool:
        return name in self._state.by_name

    def names(self) -> list[str]:
        return sorted(self._state.by_name)

    def all(self) -> list[Policy]:
        """Every policy of the set (the default and every other file's)."""
        return list(self._state.by_name.values())

    def bindings(self) -> dict[str, list[str]]:
        """Policy name -> what it is bound to (model names, and key ids shortened), for /healthz and logs."""
        out: dict[str, list[str]] = {}
        for (client, model), policy in self._state.bound.items():
            what = "+".join(
                x for x in (f"key:{client[:6]}" if client else None, f"model:{model}" if model else None) if x
            )
            out.setdefault(policy.name, []).append(what)
        return out


def key_id(key: str) -> str:
    """A client key's id in policy files: the first 16 hex characters of the SHA-256 of the key."""
    return hashlib.sha256(key.encode()).hexdigest()[:KEY_ID_CHARS]
