"""Property-based bad input: schemathesis drives the guard's own OpenAPI schema (proxy and admin) on a real
socket and finds no 5xx; every error it provokes is OpenAI-shaped. Examples per operation are bounded for CI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error

from guard.forget.embedder import HashEmbedder
from guard.settings import REPO_ROOT, Settings
from guard.testing import ADMIN, ADMIN_TOKEN, guard_app
from guard.testing.server import BackgroundServer
from tests.helpers import upstream_echo

pytestmark = pytest.mark.socket  # real servers, processes or sockets

MAX_EXAMPLES = 40


def make_app(index_dir: Path) -> object:
    settings = Settings(
        index_dir=index_dir,
        admin_token=ADMIN_TOKEN,
        upstream="http://upstream.test",
        policy_file=REPO_ROOT / "policies" / "default.yaml",
        max_body_bytes=256 * 1024,
    )
    return guard_app(settings, embedder=HashEmbedder(), transport=upstream_echo().transport)


# The schema is the app's own (built without starting it); the calls go to a running instance.
schema = schemathesis.openapi.from_dict(make_app(Path("/nonexistent")).openapi())  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def guard_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with BackgroundServer(make_app(tmp_path_factory.mktemp("st") / "index")) as server:
        yield server.url


@schema.parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    database=None,
)
def test_no_input_makes_the_guard_fail(case: schemathesis.Case, guard_url: str) -> None:
    response = case.call(base_url=guard_url, headers=ADMIN, timeout=30)
    case.validate_response(response, checks=[not_a_server_error])
    if response.status_code >= 400:  # every error the guard writes is OpenAI-shaped JSON
        error = response.json()["error"]
        assert error["message"] and error["type"], response.text
