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


def secret_project_keys() -> frozenset[str]:
    """The `etcd-cluster:*` keys the stack stores as secrets (bare names): the language host
    passes them in the environment, a test's mocks through the runtime's config."""
    prefix = f"{PROJECT}:"
    keys = {*runtime_config.get_config_secret_keys_env(),
            *(key for key in runtime_config.CONFIG.get() if runtime_config.is_config_secret(key))}
    return frozenset(key.removeprefix(prefix) for key in keys if key.startswith(prefix))


def stack_settings() -> Settings:
    try:
        return load_settings(raw_project_config(), pulumi.get_stack(), secret_project_keys())
    except SettingsError as error:
        raise StackSettingsError(error.problems) from None
