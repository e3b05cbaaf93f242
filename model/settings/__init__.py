"""Typed, validated stack settings.

Pure: no Pulumi imports. `load_settings` takes the raw configuration (what `pulumi config` holds,
as strings or already-parsed values) and returns `Settings`, or raises `SettingsError` listing
every bad input at once, each naming the setting, the value and the fix. Nothing is created
before this passes.

The parts: `types` (the typed model), `schema` (`SPECS`, one entry per setting, in groups),
`parsing` (reading raw values, shared checks) and one validator per concern: `cluster`, `etcd`
(release and tuning), `tls`, `dns`, `digitalocean` (with who may reach the members),
`local_vms`, `events` (the optional events cluster), `rollout` (day-2 changes) and `backups`
(scheduled backups, restores and maintenance).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from model.settings.backups import check_backups, check_maintenance
from model.settings.cluster import check_cluster
from model.settings.digitalocean import check_access, check_digitalocean
from model.settings.dns import check_dns
from model.settings.etcd import check_release, check_tuning
from model.settings.events import check_events
from model.settings.local_vms import check_local_vms
from model.settings.parsing import Reader, SettingsError
from model.settings.rollout import check_rollout
from model.settings.schema import GROUPS, SPEC_BY_KEY, SPECS, SettingGroup, SettingSpec
from model.settings.tls import check_tls
from model.settings.types import (
    BACKENDS,
    KEY_ALGORITHMS,
    LOCAL_BACKENDS,
    PROJECT,
    QEMU_ACCELS,
    Backend,
    EtcdTuning,
    EventsSettings,
    KeyAlgorithm,
    LocalVmSettings,
    QemuAccel,
    Settings,
    resource_prefix,
)

__all__ = [
    "BACKENDS", "GROUPS", "KEY_ALGORITHMS", "LOCAL_BACKENDS", "PROJECT", "QEMU_ACCELS", "SPECS",
    "SPEC_BY_KEY", "Backend", "EtcdTuning", "EventsSettings", "KeyAlgorithm", "LocalVmSettings", "QemuAccel",
    "SettingGroup", "SettingSpec", "Settings", "SettingsError", "load_settings", "resource_prefix",
]


def load_settings(raw: Mapping[str, Any], stack: str,
                  secret_keys: frozenset[str] = frozenset()) -> Settings:
    """Parse and validate the raw stack configuration. Raises SettingsError listing all problems.
    `secret_keys`: the settings the stack stores as secrets (bare names)."""
    c = Reader(raw, secret_keys)
    cluster = check_cluster(c, stack)
    release = check_release(c)
    dns = check_dns(c, cluster["backend"], cluster["cluster_name"])
    access = check_access(c)
    digitalocean = check_digitalocean(c, cluster["cluster_name"], stack)
    tuning = check_tuning(c)
    tls = check_tls(c)
    install_packages = c.value("installPackages")
    local = check_local_vms(c)
    events = check_events(c, cluster, digitalocean, tuning, local)
    rollout = check_rollout(c, cluster["backend"])
    backup, restore = check_backups(c, cluster["backend"], digitalocean["region"], stack,
                                    release["etcd_version"])
    maintenance = check_maintenance(c)
    if c.problems:
        raise SettingsError(c.problems)
    return Settings(**cluster, **release, **dns, **access, **digitalocean, **tls, tuning=tuning,
                    install_packages=install_packages, local=local, events=events,
                    rollout=rollout, backup=backup, restore=restore, maintenance=maintenance)
