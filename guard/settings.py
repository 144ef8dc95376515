"""The settings, in small typed groups; each one is set from the environment as `GUARD_<NAME>`.

The names are flat and unchanged (`GUARD_UPSTREAM_B`, `GUARD_JUDGE_URL`, ...): a group only says where a setting
lives in code (`settings.ab.url`). `Settings.load(upstream_b=...)` takes the same names, lower-case. An empty variable
counts as unset. A list is comma-separated (`a,b`); a JSON array (`["a", "b"]`) is accepted too. A setting that
another one makes meaningless (`GUARD_JUDGE_MODEL` without `GUARD_JUDGE_URL`) stops the guard at start, naming
both; only what the operator set counts, never a default.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from guard.errors import SettingsError

REPO_ROOT = Path(__file__).resolve().parents[1]
PREFIX = "GUARD_"


def default_policy_file() -> Path:
    """`policies/default.yaml` of the working directory if there is one, else the one shipped beside the package."""
    local = Path("policies/default.yaml")
    return local if local.is_file() else REPO_ROOT / "policies" / "default.yaml"


def split_list(value: object) -> object:
    """A list setting: comma-separated (`a, b`), or a JSON array; blank items are dropped."""
    if isinstance(value, SecretStr):  # keys given whole, as `api_keys` once was
        value = value.get_secret_value()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


def json_object(value: object) -> object:
    """A mapping setting: a JSON object (its values are lists, as above)."""
    return json.loads(value) if isinstance(value, str) else value


Items = Annotated[tuple[str, ...], BeforeValidator(split_list)]
Secrets = Annotated[tuple[SecretStr, ...], BeforeValidator(split_list)]
ModelUrls = Annotated[dict[str, Items], BeforeValidator(json_object)]
EmbedderKind = Literal["minilm", "minilm-int8", "minilm-fast", "minilm-torch", "hash", "e5"]
FLOAT_MINILM = ("minilm", "minilm-torch")  # the models the int8 first stage approximates


def setting(name: str, default: Any = None, description: str | None = None, **constraints: Any) -> Any:
    """A field of a group, set as GUARD_<NAME> (or `name=` in Python)."""
    return Field(default, validation_alias=name, description=description, **constraints)


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True)


class ServerSettings(_Group):
    host: str = setting("host", "127.0.0.1")
    port: int = setting("port", 8000)
    max_body_bytes: int = setting("max_body_bytes", 4 * 1024 * 1024, "Larger request bodies get a 413", gt=0)
    # On SIGTERM/SIGINT: no new connections; open streams get this long to finish, then each ends with an error
    # event and [DONE] (guard/pipeline/drain.py). Keep it under the orchestrator's kill timeout (docker stop: 10 s).
    shutdown_grace_s: float = setting("shutdown_grace_s", 8.0, "Seconds open streams get to finish at shutdown", ge=0)
    # The operators' web page under /console (sign-in with an operator token; guard/console/routes.py).
    console: bool = setting("console", True, "Serve the operators' console under /console")
    log_level: str = setting("log_level", "INFO")
    # Debug only: put prompt and completion text into the decision logs. Off, logs hold ids/scores/hashes only.
    log_content: bool = setting("log_content", False)


class UpstreamSettings(_Group):
    urls: Items = setting("upstream", ("http://127.0.0.1:8001",), "The OpenAI-compatible upstream's base URL(s)")
    # Per model name, its own servers ({"model": ["http://vllm-1:8000", "http://vllm-2:8000"]}); models not listed
    # go to `urls`. Round-robin over healthy servers; connect errors are retried on the next one.
    models: ModelUrls = setting("upstream_models", {}, "Model name -> upstream URLs (JSON object)")
    api_key: SecretStr | None = setting("upstream_api_key", None, "Bearer token sent to the upstream")
    # Is the upstream vLLM (it accepts `bad_words`, used for watched conversations)? Unset: detected through
    # vLLM's GET /version the first time it matters.
    vllm: bool | None = setting("upstream_vllm", None, "The upstream is vLLM (true/false); unset: detect")
    connect_timeout_s: float = setting("connect_timeout_s", 5.0, gt=0)
    read_timeout_s: float = setting("read_timeout_s", 120.0, "Also the longest silence inside a stream", gt=0)

    @model_validator(mode="after")
    def _some(self) -> UpstreamSettings:
        if not self.urls:
            raise ValueError("GUARD_UPSTREAM: at least one URL")
        return self


class ABSettings(_Group):
    """Live A/B against a second upstream (e.g. a weight-edited model): route a share of traffic to it, and/or
    mirror every request to it (shadow: the client gets the primary answer; the shadow's is checked and its
    verdict logged). The request header `x-guard-route: a|b` forces the route of one request."""

    url: str | None = setting("upstream_b", None, "Base URL of the second upstream (B)")
    share: float = setting("ab_share", 0.0, "Share of requests routed to B", ge=0.0, le=1.0)
    shadow: bool = setting("shadow", False, "Mirror every request to B and log the verdict on its answer")


class RegistrySettings(_Group):
    index_dir: Path = setting("index_dir", Path("indexes/default"))
    # The forget registry: unset = SQLite in index_dir (one machine); postgresql://… = shared by every replica.
    dsn: SecretStr | None = setting("registry_dsn", None, "postgresql://user@host/db, or unset for SQLite")
    poll_s: float = setting("registry_poll_s", 2.0, "Version check against the registry (notify fallback)", gt=0)
    # The change log replicas replay is pruned hourly to its last this many versions (0 = never). A replica further
    # behind reconciles entry by entry; one that starts loads a snapshot: neither needs the pruned rows.
    change_log_keep: int = setting("change_log_keep", 100_000, "Change-log versions kept (0 = all)", ge=0)


class PolicyFiles(_Group):
    file: Path = Field(default_factory=default_policy_file, validation_alias="policy_file")
    # The policy files (the default one and those beside it) are reloaded when they change, checked this often,
    # and on SIGHUP; an invalid set is refused and the running one kept (guard/policy_watch.py). 0 = SIGHUP only.
    reload_s: float = setting("policy_reload_s", 2.0, "How often the policy files are checked for changes", ge=0)


class AccessSettings(_Group):
    admin_token: SecretStr | None = setting("admin_token", None, "Bearer token of the admin API; unset = admin off")
    # Client keys of the proxy endpoints (/v1/*); unset = open. Separate from the admin token.
    api_keys: Secrets = setting("api_keys", (), "API keys accepted on /v1/* (a list)")
    # /metrics: open when unset (a scraper on a private network); with a token, it needs `Authorization: Bearer`.
    metrics_token: SecretStr | None = setting("metrics_token", None, "Bearer token /metrics requires; unset = open")


class AuditSettings(_Group):
    file: Path | None = setting("audit_log", None, "Append-only audit log (default: audit.jsonl in index_dir)")
    rotate_bytes: int = setting("audit_rotate_bytes", 64 * 1024 * 1024, "New file past this size; 0=never", ge=0)
    # changes: admin changes are fsynced before the answer, decisions only written; all: every line is fsynced
    fsync: Literal["changes", "all"] = setting("audit_fsync", "changes", "changes | all")


class EmbeddingSettings(_Group):
    """The embedding models of this process (unless an embedding server embeds the forget texts)."""

    kind: EmbedderKind = setting("embedder", "minilm", "'minilm' (ONNX), 'minilm-int8', 'minilm-torch', 'hash' (tests)")
    model_cache: Path | None = setting("model_cache", None, "Where the ONNX export is kept (~/.cache/forget-guard)")
    cache: int = setting("embed_cache", 8192, "Embeddings of recent texts kept in memory (0 = off)", ge=0)
    # Where the float MiniLM runs (guard/forget/devices.py): auto = a CUDA GPU when torch sees one, else the CPU;
    # cuda without one stops the guard at start. On a GPU the first stage is off unless GUARD_FIRST_STAGE is set.
    device: Literal["auto", "cpu", "cuda"] = setting(
        "embedder_device", "auto", "Where the local float MiniLM runs: 'auto' (a CUDA GPU if any) | 'cpu' | 'cuda'"
    )
    multilingual: Literal["e5", "off"] = setting("multilingual", "e5", "Meaning of text not in English: e5 | off")
    # The request path's first stage (guard/pipeline/cascade.py): int8 MiniLM for every new text, the float model
    # only for texts near a threshold. Used with the local float MiniLM only; the index's vectors are unchanged.
    first_stage: Literal["minilm-fast", "off"] = setting("first_stage", "minilm-fast", "'minilm-fast' | 'off'")
    first_stage_audit: int = setting(
        "first_stage_audit", 64, "One settled text in this many is re-embedded by the float model (0 = never)", ge=0
    )


class EmbeddingServer(_Group):
    """An embedding server instead of the local model (guard/forget/remote.py): OpenAI-compatible /v1/embeddings."""

    url: str | None = setting("embedder_url", None, "Base URL of an embedding server; unset = the local model")
    model: str = setting("embedder_model", "all-MiniLM-L6-v2", "Model name sent to it (its vectors' name)")
    api_key: SecretStr | None = setting("embedder_api_key", None, "Bearer token sent to the embedding server")
    timeout_s: float = setting("embedder_timeout_s", 2.0, "Longest wait per call to the embedding server", gt=0)
    truncate: int = setting("embedder_truncate", 256, "Tokens a text is cut to (vLLM's); 0 = not sent", ge=0)


class JudgeSettings(_Group):
    """The optional judge (guard/judge.py): an OpenAI-compatible endpoint asked about uncertain requests only."""

    url: str | None = setting("judge_url", None, "Base URL of the judge endpoint; unset = no judge (default)")
    model: str = setting("judge_model", "judge", "Model name sent to the judge endpoint")
    api_key: SecretStr | None = setting("judge_api_key", None, "Bearer token sent to the judge")
    timeout_s: float = setting("judge_timeout_s", 2.0, "Longest wait for a ruling; then the checks' verdict", gt=0)


# Settings another one makes meaningless: (the settings, when, the condition). Only settings the operator set
# count (from the environment or as arguments), never a default.
RULES: tuple[tuple[tuple[str, ...], str, Callable[[Settings], bool]], ...] = (
    (
        ("embedder", "embedder_device", "first_stage", "first_stage_audit"),
        "with GUARD_EMBEDDER_URL (the embedding server embeds every text)",
        lambda s: s.embedding_server.url is not None,
    ),
    (
        ("embedder_model", "embedder_api_key", "embedder_timeout_s", "embedder_truncate"),
        "without GUARD_EMBEDDER_URL (it configures the embedding server)",
        lambda s: s.embedding_server.url is None,
    ),
    (("ab_share", "shadow"), "without GUARD_UPSTREAM_B (it sends requests there)", lambda s: s.ab.url is None),
    (
        ("judge_model", "judge_api_key", "judge_timeout_s"),
        "without GUARD_JUDGE_URL (it configures the judge)",
        lambda s: s.judge.url is None,
    ),
    (
        ("first_stage_audit",),
        "with GUARD_FIRST_STAGE=off (it audits the first stage)",
        lambda s: s.embedding.first_stage == "off",
    ),
    (
        ("first_stage", "first_stage_audit"),
        f"unless GUARD_EMBEDDER is {' or '.join(FLOAT_MINILM)} (the first stage approximates the float MiniLM)",
        lambda s: s.embedding.kind not in FLOAT_MINILM,
    ),
    (
        ("embedder_device",),
        f"unless GUARD_EMBEDDER is {' or '.join(FLOAT_MINILM)} (only the float MiniLM runs on a GPU)",
        lambda s: s.embedding.kind not in FLOAT_MINILM,
    ),
)

# Former settings, refused with where they went (a stale one must not be silently ignored).
REMOVED = {"checks": "a bare pass-through proxy is for benchmarks only: `python -m bench.bare`"}


def var(name: str) -> str:
    """The environment variable of a setting."""
    return PREFIX + name.upper()


class _Environment(PydanticBaseSettingsSource):
    """GUARD_<NAME> for every setting name (any case, as pydantic-settings reads them); empty counts as unset."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: the names are flat, not the groups' fields (`__call__`)

    def __call__(self) -> dict[str, Any]:
        env = {key.upper(): value for key, value in os.environ.items()}
        return {name: env[var(name)] for name in (*NAMES, *REMOVED) if env.get(var(name), "").strip()}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="forbid", frozen=True)

    server: ServerSettings = Field(default_factory=ServerSettings)
    upstreams: UpstreamSettings = Field(default_factory=UpstreamSettings)
    ab: ABSettings = Field(default_factory=ABSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    policy: PolicyFiles = Field(default_factory=PolicyFiles)
    access: AccessSettings = Field(default_factory=AccessSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    embedding_server: EmbeddingServer = Field(default_factory=EmbeddingServer)
    judge: JudgeSettings = Field(default_factory=JudgeSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _Environment(settings_cls)

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """The environment's settings with `overrides`; a SettingsError naming the variables when invalid."""
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise SettingsError(describe(exc)) from exc

    @model_validator(mode="before")
    @classmethod
    def _into_groups(cls, data: Any) -> Any:
        """Flat names (`upstream_b=`, GUARD_UPSTREAM_B) into their groups; group objects pass as they are."""
        if not isinstance(data, dict):
            return data
        for name in sorted(REMOVED.keys() & data.keys()):
            raise ValueError(f"{var(name)} is no longer a setting: {REMOVED[name]}")
        grouped: dict[str, Any] = {}
        for key, value in data.items():
            if key in NAMES:
                grouped.setdefault(NAMES[key][0], {})[key] = value
            else:
                grouped[key] = value
        return grouped

    @model_validator(mode="after")
    def _meaningful(self) -> Settings:
        given = self.given()
        problems = [
            f"{var(name)} is set but means nothing {when}"
            for names, when, applies in RULES
            if applies(self)
            for name in names
            if name in given
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def given(self) -> set[str]:
        """The names of the settings set explicitly (environment or arguments), defaults left out."""
        return {name for name, (group, field) in NAMES.items() if field in getattr(self, group).model_fields_set}

    def with_values(self, **changes: Any) -> Settings:
        """These settings with some changed (flat names), validated again as a whole."""
        given = {name: getattr(getattr(self, NAMES[name][0]), NAMES[name][1]) for name in self.given()}
        return type(self).load(**{**given, **changes})

    def client_keys(self) -> list[bytes]:
        return [key.get_secret_value().encode() for key in self.access.api_keys]

    def audit_path(self) -> Path:
        return self.audit.file or self.registry.index_dir / "audit.jsonl"


# setting name (the environment variable's, lower-case) -> (group, field)
NAMES: dict[str, tuple[str, str]] = {
    str(info.validation_alias): (group, field)
    for group, slot in Settings.model_fields.items()
    if isinstance(slot.annotation, type) and issubclass(slot.annotation, _Group)
    for field, info in slot.annotation.model_fields.items()
}


def describe(exc: ValidationError) -> str:
    """A settings error as the operator reads it: the variable named, then what is wrong."""
    out = []
    for error in exc.errors():
        names = [part for part in error["loc"] if isinstance(part, str) and part in NAMES]
        message = str(error["msg"]).removeprefix("Value error, ")
        where = var(names[0]) if names else ".".join(str(part) for part in error["loc"])
        out.append(f"{where}: {message}" if where else message)
    return "; ".join(out)
