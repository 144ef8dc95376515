"""What an evaluation talks to: a raw OpenAI-compatible endpoint, or the guard (started here) in front of one.

Endpoint specs, as given on the command line:
  http://host:port          a raw endpoint (vLLM on a GPU, the local SmolLM2, any OpenAI-compatible server)
  oracle:ignore|obey        the memorizing TOFU reference model, started in this process
  oracle:unlearned          the same, simulating a weight-edited model that unlearned the forget split
  guard+SPEC                the guard, started here on a fresh index, in front of SPEC
"""

from __future__ import annotations

import secrets
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from guard.app import create_app, first_stage
from guard.eval.data import Tofu
from guard.eval.oracle import Oracle, Unlearned, create_oracle_app
from guard.forget.embedder import Embedder, make_embedder
from guard.settings import Settings
from guard.testing.server import BackgroundServer


@dataclass
class Target:
    name: str
    url: str
    model: str
    guarded: bool
    admin_token: str | None = None


class Targets:
    """Starts what the specs need and stops it all on exit."""

    def __init__(
        self,
        tofu: Tofu,
        embedder: Embedder,
        forget_split: str,
        policy_file: Path | None = None,
        known: dict[str, str] | None = None,
    ) -> None:
        self.starter = GuardStarter(embedder, policy_file)  # the guards, their models loaded once for all
        self.known = known  # questions the oracle answers word for word (another language's TOFU)
        self.tofu = tofu
        self.embedder = embedder
        self.forget_split = forget_split
        self.policy_file = policy_file
        self._stack = ExitStack()
        self._oracles: dict[str, str] = {}

    def __enter__(self) -> Targets:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        self.starter.close()

    def open(self, name: str, spec: str) -> Target:
        if spec.startswith("guard+"):
            upstream = self._upstream_url(spec.removeprefix("guard+"))
            return self._guard(name, upstream)
        url = self._upstream_url(spec)
        return Target(name, url, model_of(url), guarded=False)

    def _upstream_url(self, spec: str) -> str:
        if not spec.startswith("oracle:"):
            return spec.rstrip("/")
        if spec not in self._oracles:
            kind = spec.removeprefix("oracle:")
            if kind not in ("ignore", "obey", "unlearned"):
                raise ValueError(f"unknown oracle {spec!r}: expected oracle:ignore, oracle:obey or oracle:unlearned")
            unlearned = None
            if kind == "unlearned":
                unlearned = Unlearned(frozenset(a.name for a in self.tofu.authors(self.forget_split)))
            oracle = Oracle(self.tofu, self.embedder, "obey" if kind == "obey" else "ignore", unlearned, self.known)
            server = self._stack.enter_context(BackgroundServer(create_oracle_app(oracle)))
            self._oracles[spec] = server.url
        return self._oracles[spec]

    def _guard(self, name: str, upstream: str) -> Target:
        url, token = self.starter.guard(upstream, self._stack)
        return Target(name, url, model_of(upstream), guarded=True, admin_token=token)


class GuardStarter:
    """Starts guards in front of an upstream for an evaluation: a fresh index and admin token each, the embedding
    models loaded once for all of them (closed by `close`)."""

    def __init__(self, embedder: Embedder, policy_file: Path | None = None) -> None:
        self.embedder = embedder
        self.policy_file = policy_file
        self.meaning: Embedder | None = None  # the multilingual model
        self.fast: Embedder | None = None  # the first stage (`guard.pipeline.cascade`)
        self._models = ExitStack()

    def guard(self, upstream: str, stack: ExitStack) -> tuple[str, str]:
        """(URL, admin token) of a new guard in front of `upstream`, stopped when `stack` closes."""
        token = secrets.token_urlsafe(16)
        index_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="guard-eval-")))
        settings = Settings.load(upstream=upstream, index_dir=index_dir, admin_token=token)
        if self.policy_file is not None:
            settings = settings.with_values(policy_file=self.policy_file)
        if self.meaning is None and settings.embedding.multilingual != "off":
            self.meaning = make_embedder(settings.embedding.multilingual)
        if self.fast is None:
            self.fast = first_stage(settings, self.embedder.space)
            if self.fast is not None:
                self._models.callback(self.fast.close)
        app = create_app(settings, embedder=self.embedder, meaning=self.meaning, fast=self.fast)
        return stack.enter_context(BackgroundServer(app)).url, token

    def serve(self, app: Any) -> str:
        """Serve another app (an oracle) until `close`."""
        return self._models.enter_context(BackgroundServer(app)).url

    def close(self) -> None:
        self._models.close()

    def __enter__(self) -> GuardStarter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def model_of(url: str) -> str:
    """The first model the endpoint serves."""
    response = httpx.get(f"{url}/v1/models", timeout=30)
    response.raise_for_status()
    return str(response.json()["data"][0]["id"])
