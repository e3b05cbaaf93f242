"""Validation of the events cluster's settings: on or off, and what differs from the main cluster.

Each `events*` setting defaults to the main cluster's value, so the checks run on what the
events cluster will really use, and name the `events*` setting when it is the one that is wrong.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from model.settings.cluster import check_member_count
from model.settings.digitalocean import MAX_VOLUME_GIB, MIN_VOLUME_GIB, check_volume_names
from model.settings.etcd import check_quota, check_retention, check_snapshot_count
from model.settings.parsing import DNS_LABEL, Reader, check_range
from model.settings.types import EtcdTuning, EventsSettings, LocalVmSettings

# The events cluster is `<clusterName>-events` (model/cluster_spec.py names it).
EVENTS_SUFFIX = "-events"


def _own(c: Reader, key: str, main_value: Any) -> Any:
    """The events cluster's own value, or the main cluster's where it is unset (0 or empty)."""
    value = c.value(key)
    return main_value if value in (None, 0, "") else value


def check_events(c: Reader, cluster: dict[str, Any], digitalocean: dict[str, Any],
                 tuning: EtcdTuning, local: LocalVmSettings) -> EventsSettings | None:
    enabled = c.value("eventsCluster")
    settings = {key: c.value(key) for key in (
        "eventsMemberCount", "eventsDropletSize", "eventsDataVolumeSizeGib", "eventsVmMemoryMib",
        "eventsQuotaBackendBytes", "eventsSnapshotCount", "eventsAutoCompactionRetention")}
    if not enabled:
        for key, value in settings.items():
            if value not in (None, 0, ""):
                c.problem(key, value, "configures the events cluster, which is off; set "
                          "`pulumi config set eventsCluster true`, or remove the setting.")
        return None

    cluster_name = cluster["cluster_name"]
    events_name = f"{cluster_name}{EVENTS_SUFFIX}"
    if DNS_LABEL.match(cluster_name) and not DNS_LABEL.match(events_name):
        c.problem("clusterName", cluster_name, f"is too long for an events cluster: its name "
                  f"{events_name!r} must be a DNS label of at most 63 characters; use at most "
                  f"{63 - len(EVENTS_SUFFIX)} characters.")
    check_volume_names(c, cluster_name, cluster["stack"], EVENTS_SUFFIX)

    member_count = _own(c, "eventsMemberCount", cluster["member_count"])
    check_member_count(c, "eventsMemberCount", member_count)
    droplet_size = _own(c, "eventsDropletSize", digitalocean["droplet_size"])
    volume = _own(c, "eventsDataVolumeSizeGib", digitalocean["data_volume_size_gib"])
    check_range(c, "eventsDataVolumeSizeGib", volume, MIN_VOLUME_GIB, MAX_VOLUME_GIB,
                "DigitalOcean volumes are 1 GiB to 16 TiB.")
    memory = _own(c, "eventsVmMemoryMib", local.memory_mib)
    check_range(c, "eventsVmMemoryMib", memory, 512, 262144,
                "etcd and the guest system need at least 512 MiB; 1024 or more is comfortable.")
    quota = _own(c, "eventsQuotaBackendBytes", tuning.quota_backend_bytes)
    check_quota(c, "eventsQuotaBackendBytes", quota)
    snapshot_count = _own(c, "eventsSnapshotCount", tuning.snapshot_count)
    check_snapshot_count(c, "eventsSnapshotCount", snapshot_count)
    retention = _own(c, "eventsAutoCompactionRetention", tuning.auto_compaction_retention)
    check_retention(c, "eventsAutoCompactionRetention", tuning.auto_compaction_mode, retention)
    return EventsSettings(
        member_count=member_count,
        droplet_size=droplet_size,
        data_volume_size_gib=volume,
        vm_memory_mib=memory,
        tuning=replace(tuning, quota_backend_bytes=quota, snapshot_count=snapshot_count,
                       auto_compaction_retention=retention),
    )
