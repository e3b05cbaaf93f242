"""Pulumi.yaml declares every setting the program reads, with the program's defaults."""

from __future__ import annotations

from pathlib import Path

import yaml

from components.settings import PROJECT, SPECS, load_settings

ROOT = Path(__file__).resolve().parent.parent
TYPES = {"str": "string", "int": "integer", "bool": "boolean", "list": "array"}


def project_file() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "Pulumi.yaml").read_text())


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


def test_the_dev_stack_is_a_valid_three_member_cluster() -> None:
    stack = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    raw = {key.removeprefix(f"{PROJECT}:"): value for key, value in stack.items()
           if key.startswith(f"{PROJECT}:")}
    settings = load_settings(raw, "dev")
    assert settings.member_count == 3
