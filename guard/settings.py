"""One typed settings class; every field can be set from the environment with the GUARD_ prefix."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]


def default_policy_file() -> Path:
    """`policies/default.yaml` of the working directory if there is one, else the one shipped beside the package."""
    local = Path("policies/default.yaml")
    return local if local.is_file() else REPO_ROOT / "policies" / "default.yaml"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GUARD_", extra="ignore")

    upstream: str = Field(
        "http://127.0.0.1:8001", description="Base URL(s) of the OpenAI-compatible upstream, comma-separated"
    )
    # Per model name, its own servers (JSON: {"model": ["http://vllm-1:8000", "http://vllm-2:8000"]}); models not
    # listed go to `upstream`. Round-robin over healthy servers; connect errors are retried on the next one.
    upstream_models: dict[str, list[str]] = Field(default_factory=dict, description="Model name -> upstream URLs")
    upstream_api_key: SecretStr | None = Field(None, description="Bearer token sent to the upstream")
    # Is the upstream vLLM (it accepts `bad_words`, used for watched conversations)? Unset: detected through
    # vLLM's GET /version the first time it matters.
    upstream_vllm: bool | None = Field(None, description="The upstream is vLLM (true/false); unset: detect")
    # Live A/B against a second upstream (e.g. a weight-edited model): route a share of traffic to it, and/or
    # mirror every request to it in shadow mode (the client gets the primary answer; the shadow's is checked and
    # its verdict logged). The request header `x-guard-route: a|b` forces the route of one request.
    upstream_b: str | None = Field(None, description="Base URL of the second upstream (B)")
    ab_share: float = Field(0.0, ge=0.0, le=1.0, description="Share of requests routed to B")
    shadow: bool = Field(False, description="Mirror every request to B and log the verdict on its answer")
    host: str = "127.0.0.1"
    port: int = 8000
    index_dir: Path = Path("indexes/default")
    # The forget registry: unset = SQLite in index_dir (one machine); postgresql://… = shared by every replica.
    registry_dsn: SecretStr | None = Field(None, description="postgresql://user@host/db, or unset for SQLite")
    registry_poll_s: float = Field(2.0, gt=0, description="Version check against the registry (notify fallback)")
    # The change log replicas replay is pruned hourly to its last this many versions (0 = never). A replica further
    # behind reconciles entry by entry; one that starts loads a snapshot: neither needs the pruned rows.
    change_log_keep: int = Field(100_000, ge=0, description="Registry change-log versions kept (0 = all)")
    policy_file: Path = Field(default_factory=default_policy_file)
    # The policy files (the default one and those beside it) are reloaded when they change, checked this often,
    # and on SIGHUP; an invalid set is refused and the running one kept (guard/policy_watch.py). 0 = SIGHUP only.
    policy_reload_s: float = Field(2.0, ge=0, description="How often the policy files are checked for changes")
    admin_token: SecretStr | None = Field(None, description="Bearer token of the admin API; unset = admin API off")
    # On SIGTERM/SIGINT: no new connections; open streams get this long to finish, then each ends with an error
    # event and [DONE] (guard/pipeline/drain.py). Keep it under the orchestrator's kill timeout (docker stop: 10 s).
    shutdown_grace_s: float = Field(8.0, ge=0, description="Seconds open streams get to finish at shutdown")
    # The operators' web page under /console (sign-in with an operator token; guard/console/routes.py).
    console: bool = Field(True, description="Serve the operators' console under /console")
    # Client keys of the proxy endpoints (/v1/*), comma-separated; unset = open. Separate from the admin token.
    api_keys: SecretStr | None = Field(None, description="Comma-separated API keys accepted on /v1/*")
    # /metrics: open when unset (a scraper on a private network); with a token, it needs `Authorization: Bearer`.
    metrics_token: SecretStr | None = Field(None, description="Bearer token /metrics requires; unset = open")
    audit_log: Path | None = Field(None, description="Append-only audit log (default: audit.jsonl in index_dir)")
    audit_rotate_bytes: int = Field(
        64 * 1024 * 1024, ge=0, description="Start a new audit file past this size; 0=never"
    )
    # changes: admin changes are fsynced before the answer, decisions only written; all: every line is fsynced
    audit_fsync: str = Field("changes", pattern="^(changes|all)$", description="changes | all")
    # Debug only: put prompt and completion text into the decision logs. Off, logs hold ids/scores/hashes only.
    log_content: bool = False
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 120.0
    max_body_bytes: int = 4 * 1024 * 1024
    embedder: str = Field(
        "minilm", description="'minilm' (ONNX, default), 'minilm-int8', 'minilm-torch', or 'hash' (a fake, tests only)"
    )
    # An embedding server instead of the local model (guard/forget/remote.py): OpenAI-compatible /v1/embeddings.
    embedder_url: str | None = Field(None, description="Base URL of an embedding server; unset = the local model")
    embedder_model: str = Field("all-MiniLM-L6-v2", description="Model name sent to it (its vectors' name)")
    embedder_api_key: SecretStr | None = Field(None, description="Bearer token sent to the embedding server")
    embedder_timeout_s: float = Field(2.0, gt=0, description="Longest wait per call to the embedding server")
    embedder_truncate: int = Field(
        256, ge=0, description="Tokens a text is cut to (vLLM's truncate_prompt_tokens); 0 = not sent"
    )
    multilingual: str = Field(
        "e5", description="Multilingual meaning for text not in English: 'e5' (multilingual-e5-small) or 'off'"
    )
    # The optional judge (guard/judge.py): an OpenAI-compatible endpoint asked about uncertain requests only.
    judge_url: str | None = Field(None, description="Base URL of the judge endpoint; unset = no judge (default)")
    judge_model: str = Field("judge", description="Model name sent to the judge endpoint")
    judge_api_key: SecretStr | None = Field(None, description="Bearer token sent to the judge")
    judge_timeout_s: float = Field(2.0, gt=0, description="Longest wait for a ruling; then the checks' verdict holds")
    model_cache: Path | None = Field(None, description="Where the ONNX export is kept (default ~/.cache/forget-guard)")
    embed_cache: int = Field(8192, ge=0, description="Embeddings of recent texts kept in memory (0 = off)")
    # The request path's first stage (guard/pipeline/cascade.py): int8 MiniLM for every new text, the float model
    # only for texts near a threshold. Used with the local float MiniLM only; the index's vectors are unchanged.
    first_stage: str = Field(
        "minilm-fast", pattern="^(minilm-fast|off)$", description="'minilm-fast' (int8 first) or 'off' (float only)"
    )
    first_stage_audit: int = Field(
        64,
        ge=0,
        description="One settled text in this many is re-embedded by the float model in the background "
        "and its shortfall put in the metrics (0 = never)",
    )
    # Benchmarks only: the same proxy with every check off (the "bare pass-through" of bench/overhead.py).
    checks: bool = Field(True, description="Run the input and output checks (false: a bare pass-through proxy)")
    log_level: str = "INFO"

    def client_keys(self) -> list[bytes]:
        raw = self.api_keys.get_secret_value() if self.api_keys else ""
        return [k.strip().encode() for k in raw.split(",") if k.strip()]

    def audit_path(self) -> Path:
        return self.audit_log or self.index_dir / "audit.jsonl"
