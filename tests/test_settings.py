"""The settings: flat GUARD_* names into typed groups, one list format, and settings that another one makes
meaningless refused at start, naming both."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest
from pydantic import SecretStr

from guard.cli import main
from guard.errors import SettingsError
from guard.forget.embedder import EMBEDDERS
from guard.settings import NAMES, REPO_ROOT, EmbedderKind, Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.upper().startswith("GUARD_"):
            monkeypatch.delenv(key)


def test_the_environment_names_are_unchanged_and_land_in_their_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "GUARD_UPSTREAM": "http://a:1, http://b:2",
        "GUARD_UPSTREAM_B": "http://edited:8000",
        "GUARD_AB_SHARE": "0.25",
        "GUARD_SHADOW": "true",
        "GUARD_INDEX_DIR": "/data/index",
        "GUARD_REGISTRY_POLL_S": "0.5",
        "GUARD_JUDGE_URL": "http://judge",
        "GUARD_JUDGE_TIMEOUT_S": "1.5",
        "GUARD_EMBEDDER_URL": "http://embedder",
        "GUARD_EMBEDDER_MODEL": "all-MiniLM-L6-v2",
        "guard_port": "9000",  # any case, as pydantic-settings read them
        "GUARD_AUDIT_FSYNC": "all",
        "GUARD_API_KEYS": "",  # empty counts as unset (compose's ${GUARD_API_KEYS:-})
        "GUARD_URL": "http://127.0.0.1:8000",  # the commands' variable, not a setting: ignored
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s = Settings.load()
    assert s.upstreams.urls == ("http://a:1", "http://b:2")
    assert (s.ab.url, s.ab.share, s.ab.shadow) == ("http://edited:8000", 0.25, True)
    assert s.registry.index_dir == Path("/data/index") and s.registry.poll_s == 0.5
    assert (s.judge.url, s.judge.timeout_s) == ("http://judge", 1.5)
    assert s.embedding_server.url == "http://embedder" and s.server.port == 9000 and s.audit.fsync == "all"
    assert s.access.api_keys == () and "api_keys" not in s.given()
    assert Settings.load(port=9100).server.port == 9100  # an argument wins over the environment
    assert all(name.islower() and not name.startswith("guard_") for name in NAMES) and len(NAMES) == 44


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("a,b", ("a", "b")), (" a , ,b ", ("a", "b")), ('["a", "b"]', ("a", "b")), (["a", "b"], ("a", "b"))],
)
def test_a_list_is_comma_separated_or_a_json_array(raw: object, expected: tuple[str, ...]) -> None:
    assert Settings.load(upstream=raw).upstreams.urls == expected
    keys = Settings.load(api_keys=raw).client_keys()
    assert keys == [k.encode() for k in expected]


def test_list_forms_users_may_have_keep_working(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARD_UPSTREAM_MODELS", '{"big": ["http://g1", "http://g2"], "small": "http://s1,http://s2"}')
    s = Settings.load(api_keys=SecretStr("k1, k2"))  # a whole comma-separated key string, as before
    assert s.upstreams.models == {"big": ("http://g1", "http://g2"), "small": ("http://s1", "http://s2")}
    assert s.client_keys() == [b"k1", b"k2"]
    assert "k1" not in repr(s)  # keys stay secret


@pytest.mark.parametrize(
    ("given", "names"),
    [
        ({"embedder": "hash", "embedder_url": "http://e"}, ("GUARD_EMBEDDER", "GUARD_EMBEDDER_URL")),
        ({"embedder_model": "m"}, ("GUARD_EMBEDDER_MODEL", "GUARD_EMBEDDER_URL")),
        ({"embedder_api_key": "k"}, ("GUARD_EMBEDDER_API_KEY", "GUARD_EMBEDDER_URL")),
        ({"embedder_timeout_s": 1}, ("GUARD_EMBEDDER_TIMEOUT_S", "GUARD_EMBEDDER_URL")),
        ({"embedder_truncate": 0}, ("GUARD_EMBEDDER_TRUNCATE", "GUARD_EMBEDDER_URL")),
        ({"shadow": True}, ("GUARD_SHADOW", "GUARD_UPSTREAM_B")),
        ({"ab_share": 0.5}, ("GUARD_AB_SHARE", "GUARD_UPSTREAM_B")),
        ({"judge_model": "j"}, ("GUARD_JUDGE_MODEL", "GUARD_JUDGE_URL")),
        ({"judge_api_key": "k"}, ("GUARD_JUDGE_API_KEY", "GUARD_JUDGE_URL")),
        ({"judge_timeout_s": 1}, ("GUARD_JUDGE_TIMEOUT_S", "GUARD_JUDGE_URL")),
        ({"first_stage": "off", "embedder_url": "http://e"}, ("GUARD_FIRST_STAGE", "GUARD_EMBEDDER_URL")),
        ({"first_stage_audit": 8, "first_stage": "off"}, ("GUARD_FIRST_STAGE_AUDIT", "GUARD_FIRST_STAGE")),
        ({"first_stage": "minilm-fast", "embedder": "hash"}, ("GUARD_FIRST_STAGE", "GUARD_EMBEDDER")),
    ],
)
def test_a_setting_another_makes_meaningless_fails_naming_both(
    given: dict[str, object], names: tuple[str, str]
) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.load(**given)
    assert all(name in str(err.value) for name in names), str(err.value)


def test_only_what_the_operator_set_counts_never_a_default() -> None:
    remote = Settings.load(embedder_url="http://e")  # the default model, first stage, truncation: not set
    assert remote.embedding_server.model == "all-MiniLM-L6-v2" and remote.given() == {"embedder_url"}
    Settings.load(upstream_b="http://b", shadow=True, ab_share=0.1)
    Settings.load(judge_url="http://j", judge_model="j", judge_timeout_s=1)
    Settings.load(embedder="minilm-torch", first_stage="minilm-fast", first_stage_audit=8)


def test_a_changed_copy_is_validated_again_and_keeps_what_was_set() -> None:
    routed = Settings.load(upstream_b="http://b", shadow=True)
    assert routed.with_values(port=1).ab.shadow is True
    with pytest.raises(SettingsError, match="GUARD_SHADOW"):
        routed.with_values(upstream_b=None)


def test_a_bad_value_names_its_variable_and_a_removed_setting_says_where_it_went(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(SettingsError, match=r"GUARD_AB_SHARE: .*less than or equal to 1"):
        Settings.load(upstream_b="http://b", ab_share=2)
    with pytest.raises(SettingsError, match=r"GUARD_UPSTREAM_MODELS: "):
        Settings.load(upstream_models="{not json")
    with pytest.raises(SettingsError, match=r"^prot: Extra inputs"):  # a misspelt name in Python, named
        Settings.load(prot=9000)
    monkeypatch.setenv("GUARD_CHECKS", "false")
    with pytest.raises(SettingsError, match=r"GUARD_CHECKS is no longer a setting.*bench\.bare"):
        Settings.load()


def test_guard_serve_refuses_meaningless_settings_before_starting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GUARD_JUDGE_TIMEOUT_S", "3")
    assert main(["serve"]) == 2
    assert "GUARD_JUDGE_TIMEOUT_S" in capsys.readouterr().err


def test_the_embedder_names_are_the_factorys() -> None:
    assert set(get_args(EmbedderKind)) == set(EMBEDDERS)


def test_the_readme_names_every_setting() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert not [name for name in NAMES if f"`GUARD_{name.upper()}`" not in readme]
