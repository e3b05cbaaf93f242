"""Read this project's settings from the Pulumi stack configuration."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from model.settings import PROJECT, Settings, SettingsError, load_settings


class StackSettingsError(SettingsError, pulumi.RunError):
    """Bad settings, reported by the Pulumi SDK as the message alone: any other exception is
    shown as "Program failed with an unhandled exception" and a traceback that buries it."""


def raw_project_config() -> dict[str, Any]:
    """Every `etcd-cluster:*` key the stack sets, unknown ones included (so typos are caught)."""
    every_key = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    prefix = f"{PROJECT}:"
    return {key.removeprefix(prefix): value for key, value in every_key.items()
            if key.startswith(prefix)}


def stack_settings() -> Settings:
    try:
        return load_settings(raw_project_config(), pulumi.get_stack())
    except SettingsError as error:
        raise StackSettingsError(error.problems) from None
