from __future__ import annotations

from pathlib import Path

import pytest

from guard.errors import PolicyError
from guard.policy import InputAction, Policy, PolicySet, load_policy
from guard.settings import REPO_ROOT


def test_shipped_policies_load_and_default_matches_model_defaults() -> None:
    policies = PolicySet.load(REPO_ROOT / "policies" / "default.yaml")
    assert policies.names() == ["default", "rewrite"]
    assert policies.get("rewrite").input.action is InputAction.rewrite
    default = policies.default
    # the YAML documents the defaults: they must not drift apart
    assert default.input == Policy(name="x").input
    assert default.output == Policy(name="x").output


@pytest.mark.parametrize(
    ("yaml_text", "field"),
    [
        ("input:\n  semantic_threshold: 2.0\n", "input.semantic_threshold"),
        ("output:\n  hold_back_tokens: zero\n", "output.hold_back_tokens"),
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
