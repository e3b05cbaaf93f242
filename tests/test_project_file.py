"""Pulumi.yaml declares every setting the program reads, with the program's defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from model.settings import GROUPS, PROJECT, SPECS, SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent
TYPES = {"str": "string", "int": "integer", "bool": "boolean", "list": "array"}


def project_file() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    return document


def test_the_project_uses_the_python_runtime_with_a_virtualenv() -> None:
    project = project_file()
    assert project["name"] == PROJECT
    assert project["runtime"] == {
        "name": "python", "options": {"toolchain": "pip", "virtualenv": ".venv"}}
    assert (ROOT / "requirements.txt").exists()


def test_every_setting_is_declared_with_its_type_description_and_default() -> None:
    declared = project_file()["config"]
    assert list(declared) == [spec.key for spec in SPECS]
    for spec in SPECS:
        entry = declared[spec.key]
        assert entry["type"] == TYPES[spec.kind], spec.key
        assert entry["description"] == spec.description, spec.key
        assert entry["default"] == ("" if spec.default is None else spec.default), spec.key


def test_the_project_file_shows_the_schemas_groups_in_order() -> None:
    # Each group opens with a `# --- <group> ---` comment line before its first setting.
    lines = (ROOT / "Pulumi.yaml").read_text().split("\nconfig:\n", 1)[1].splitlines()
    seen: list[tuple[str, list[str]]] = []
    for line in lines:
        if line.startswith("  # --- ") and line.endswith(" ---"):
            seen.append((line.removeprefix("  # --- ").removesuffix(" ---"), []))
        elif line.startswith("  ") and not line.startswith("   ") and line.endswith(":"):
            assert seen, f"{line.strip()} comes before the first group comment"
            seen[-1][1].append(line.strip().removesuffix(":"))
    assert seen == [(group.title, [spec.key for spec in group.specs]) for group in GROUPS]


def dev_stack_settings() -> dict[str, Any]:
    stack = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    return {key.removeprefix(f"{PROJECT}:"): value for key, value in stack.items()
            if key.startswith(f"{PROJECT}:")}


def test_the_committed_dev_stack_is_refused_until_the_user_sets_their_zone() -> None:
    # A committed stand-in zone that passes validation would let `pulumi up` create protected
    # droplets before Cloudflare rejects the zone; without one, nothing is created.
    with pytest.raises(SettingsError) as refused:
        load_settings(dev_stack_settings(), "dev")
    assert [problem.split(": ")[0] for problem in refused.value.problems] == [
        "etcd-cluster:dnsZone = None", "etcd-cluster:cloudflareZoneId = None"]
    assert all("is required" in problem for problem in refused.value.problems)


def test_the_dev_stack_with_the_users_zone_is_a_valid_three_member_cluster() -> None:
    settings = load_settings({**dev_stack_settings(), "dnsZone": "k8s.example.net",
                              "cloudflareZoneId": "f" * 32}, "dev")
    assert settings.member_count == 3
    assert settings.admin_cidrs == ()


def test_the_readme_error_example_is_what_the_program_prints() -> None:
    readme = (ROOT / "README.md").read_text()
    example = readme.split("```\ninvalid stack configuration", 1)[1].split("```", 1)[0]
    try:
        load_settings({"dnsZone": "example.com", "cloudflareZoneId": "0" * 32,
                       "memberCount": 4, "electionTimeoutMs": 400}, "prod")
    except SettingsError as error:
        assert "invalid stack configuration" + example == str(error) + "\n"
    else:
        raise AssertionError("the README example settings are accepted")


def test_the_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    for spec in SPECS:
        assert f"| `{spec.key}` |" in readme, spec.key


def test_the_readme_documents_the_settings_in_the_schemas_groups() -> None:
    readme = (ROOT / "README.md").read_text()
    reference = readme.split("## Configuration reference", 1)[1].split("\n## ", 1)[0]
    seen: list[tuple[str, list[str]]] = []
    for line in reference.splitlines():
        if line.startswith("**") and line.endswith("**"):
            seen.append((line.strip("*"), []))
        elif line.startswith("| `"):
            assert seen, f"{line} comes before the first group heading"
            seen[-1][1].append(line.split("`")[1])
    assert seen == [(group.title, [spec.key for spec in group.specs]) for group in GROUPS]
