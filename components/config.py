"""Read this project's settings from the Pulumi stack configuration."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from components.settings import PROJECT, Settings, load_settings


def raw_project_config() -> dict[str, Any]:
    """Every `etcd-cluster:*` key the stack sets, unknown ones included (so typos are caught)."""
    every_key = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    prefix = f"{PROJECT}:"
    return {key.removeprefix(prefix): value for key, value in every_key.items()
            if key.startswith(prefix)}


def stack_settings() -> Settings:
    return load_settings(raw_project_config(), pulumi.get_stack())
