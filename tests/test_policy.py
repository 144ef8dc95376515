from __future__ import annotations

from pathlib import Path

import pytest

from guard.errors import PolicyError
from guard.policy import GlobalPolicy, InputAction, Policy, PolicySet, load_policy
from guard.settings import REPO_ROOT


def test_shipped_policies_load_and_default_matches_model_defaults() -> None:
    policies = PolicySet.load(REPO_ROOT / "policies" / "default.yaml")
    assert policies.names() == ["default", "rewrite"]
    assert policies.get("rewrite").input.action is InputAction.rewrite
    default = policies.default
    # the YAML documents the defaults: they must not drift apart
    assert default.input == Policy(name="x").input
    assert default.output == Policy(name="x").output
    assert policies.settings == GlobalPolicy()


@pytest.mark.parametrize(
    ("yaml_text", "field"),
    [
        ("input:\n  window_turns: 5\n", "input.window_turns"),
        ("output:\n  ngram_words: 8\n", "output.ngram_words"),
        ("output:\n  hold_back_tokens: 8\n", "output.hold_back_tokens"),
        ("lexical:\n  typo_min_chars: 4\n", "lexical.typo_min_chars"),
        ("on_error: open\n", "on_error"),
    ],
)
def test_a_global_field_set_per_policy_fails_naming_it(tmp_path: Path, yaml_text: str, field: str) -> None:
    (tmp_path / "default.yaml").write_text("name: default\n")
    (tmp_path / "other.yaml").write_text(yaml_text)
    with pytest.raises(PolicyError) as err:
        PolicySet.load(tmp_path / "default.yaml")
    message = str(err.value)
    assert "other.yaml" in message and f"'{field}'" in message and "global." in message


def test_global_section_only_in_the_default_policy(tmp_path: Path) -> None:
    (tmp_path / "default.yaml").write_text("name: default\nglobal:\n  window_turns: 5\n  on_error: open\n")
    policies = PolicySet.load(tmp_path / "default.yaml")
    assert policies.settings.window_turns == 5 and policies.settings.on_error.value == "open"
    (tmp_path / "other.yaml").write_text("name: other\nglobal:\n  window_turns: 2\n")
    with pytest.raises(PolicyError, match="only the default policy file"):
        PolicySet.load(tmp_path / "default.yaml")
    (tmp_path / "other.yaml").unlink()
    (tmp_path / "default.yaml").write_text("name: default\nglobal:\n  ngram_words: 1\n")
    with pytest.raises(PolicyError, match=r"'global\.ngram_words'"):
        PolicySet.load(tmp_path / "default.yaml")


@pytest.mark.parametrize(
    ("yaml_text", "field"),
    [
        ("input:\n  semantic_threshold: 2.0\n", "input.semantic_threshold"),
        ("output:\n  semantic_threshold: high\n", "output.semantic_threshold"),
        ("input:\n  action: ignore\n", "input.action"),
        ("output:\n  typo: 3\n", "output.typo"),
        ("input:\n  rewrite_instruction: 'say {nothing}'\n", "(top level)"),
    ],
)
def test_bad_policy_fails_naming_file_and_field(tmp_path: Path, yaml_text: str, field: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert str(path) in str(err.value) and f"'{field}'" in str(err.value)


def test_missing_or_unparsable_file_fails(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="not found"):
        load_policy(tmp_path / "nope.yaml")
    (tmp_path / "broken.yaml").write_text("input: [unclosed\n")
    with pytest.raises(PolicyError, match="cannot be read"):
        load_policy(tmp_path / "broken.yaml")
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(PolicyError, match="mapping"):
        load_policy(tmp_path / "list.yaml")


def test_duplicate_policy_names_fail(tmp_path: Path) -> None:
    (tmp_path / "default.yaml").write_text("name: a\n")
    (tmp_path / "other.yaml").write_text("name: a\n")
    with pytest.raises(PolicyError, match="used by another"):
        PolicySet.load(tmp_path / "default.yaml")


@pytest.mark.parametrize("field", ["speculative", "stream_upstream"])
def test_a_request_only_field_in_an_entry_only_policy_fails_naming_file_and_field(tmp_path: Path, field: str) -> None:
    (tmp_path / "default.yaml").write_text(f"name: default\n{field}: true\n")  # the request's policy: fine
    (tmp_path / "bound.yaml").write_text(f"{field}: true\napplies_to:\n  models: [m]\n")  # a request's too
    assert PolicySet.load(tmp_path / "default.yaml").get("bound").model_dump()[field] is True
    (tmp_path / "entry.yaml").write_text(f"{field}: false\n")  # only ever an entry's: it would be ignored
    with pytest.raises(PolicyError) as err:
        PolicySet.load(tmp_path / "default.yaml")
    assert str(tmp_path / "entry.yaml") in str(err.value) and f"'{field}'" in str(err.value)
