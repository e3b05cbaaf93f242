"""systemd units for a member: etcd itself and the metadata guard.

Pure: no Pulumi imports. Units are rendered from (key, value) pairs per section, so a value can
never break the file's structure.
"""

from __future__ import annotations

from collections.abc import Sequence

from cloudinit import timeouts
from cloudinit.etcd_flags import EtcdPaths

# Where the member's data volume is mounted; the data directory lives inside it (a filesystem
# root holds lost+found, which etcd would report as an unexpected file in its data dir).
DATA_MOUNTPOINT = "/var/lib/etcd"
SBIN = "/usr/local/sbin"

Section = tuple[str, Sequence[tuple[str, str]]]


def render_unit(sections: Sequence[Section]) -> str:
    lines: list[str] = []
    for name, entries in sections:
        if lines:
            lines.append("")
        lines.append(f"[{name}]")
        for key, value in entries:
            if "\n" in value:
                raise ValueError(f"unit value for {key} spans lines: {value!r}")
            lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def etcd_exec_start(paths: EtcdPaths, flags: Sequence[str]) -> str:
    # Every flag is `--name=value` with no spaces or quotes (checked), so systemd splits the
    # line exactly as written: what the tests run is what the unit runs.
    for flag in flags:
        if any(char in flag for char in " \t\"'\\$%;"):
            raise ValueError(f"etcd flag needs quoting, which the unit does not do: {flag!r}")
    return " ".join([paths.binary, *flags])


def etcd_unit(
    member_name: str,
    cluster_name: str,
    paths: EtcdPaths,
    flags: Sequence[str],
) -> str:
    """The member's etcd.service. Nothing in it depends on the cluster's membership (the
    initial cluster is in its EnvironmentFile=), so a member added or removed restarts no
    other member."""
    service: list[tuple[str, str]] = [
        # etcd tells systemd it is ready once it has joined a cluster with quorum.
        ("Type", "notify"),
        ("User", "etcd"),
        ("Group", "etcd"),
        ("Environment", f"ETCD_WAIT_FOR_PEERS_TIMEOUT={timeouts.PEER_NAMES_TIMEOUT_SECONDS}"),
        # The initial cluster, read at the first start only (cloudinit/etcd_flags.py); a
        # member with data needs no file.
        ("EnvironmentFile", f"-{paths.initial_cluster_file}"),
        # Its peers are the initial cluster's (the EnvironmentFile=).
        ("ExecStartPre", " ".join([f"{SBIN}/etcd-wait-for-peers", paths.data_dir])),
        ("ExecStart", etcd_exec_start(paths, flags)),
        ("Restart", "on-failure"),
        ("RestartSec", "5s"),
        # The first start waits for DNS and for a quorum of peers that boot at their own pace.
        ("TimeoutStartSec", str(timeouts.ETCD_START_TIMEOUT_SECONDS)),
        ("LimitNOFILE", "65536"),
        # etcd's tuning guide: give the member's disk I/O the best best-effort priority.
        ("IOSchedulingClass", "best-effort"),
        ("IOSchedulingPriority", "0"),
        ("UMask", "0077"),
        # Hardening that etcd tolerates: it needs only its data dir writable and no privileges.
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ReadWritePaths", DATA_MOUNTPOINT),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectHostname", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("CapabilityBoundingSet", ""),
        ("SystemCallArchitectures", "native"),
    ]
    return render_unit([
        ("Unit", [
            ("Description", f"etcd member {member_name} of cluster {cluster_name}"),
            ("Documentation", "https://etcd.io/docs/"),
            ("Wants", "network-online.target"),
            ("After", "network-online.target"),
            # Never start on the root disk: without its volume a member would look empty.
            ("RequiresMountsFor", DATA_MOUNTPOINT),
            # Start only with data, or told which cluster to found or join: a joining member's
            # machine boots before the cluster has added it, and an etcd started then would
            # found a cluster of its own. (`|`: either condition is enough.)
            ("ConditionPathExists", f"|{paths.member_dir}"),
            ("ConditionPathExists", f"|{paths.initial_cluster_file}"),
        ]),
        ("Service", service),
        ("Install", [("WantedBy", "multi-user.target")]),
    ])


def metadata_guard_unit(address: str, allowed_users: Sequence[str]) -> str:
    return render_unit([
        ("Unit", [
            ("Description", "Only root may reach the cloud metadata service (it serves keys)"),
            ("DefaultDependencies", "no"),
            ("After", "local-fs.target"),
            ("Before", "network-pre.target"),
            ("Wants", "network-pre.target"),
        ]),
        ("Service", [
            ("Type", "oneshot"),
            ("RemainAfterExit", "yes"),
            ("ExecStart", " ".join([f"{SBIN}/etcd-metadata-guard", address, *allowed_users])),
        ]),
        ("Install", [("WantedBy", "multi-user.target")]),
    ])


# Backups and defragmentation never run at once on a member (the leader does both).
MAINTENANCE_LOCK = "/run/lock/etcd-maintenance.lock"


def maintenance_service_unit(script: str, description: str, timeout_seconds: int) -> str:
    """A oneshot service running one of the maintenance scripts (etcd-backup, etcd-defrag) on
    every member; the script itself decides whether this member acts (the one that leads)."""
    return render_unit([
        ("Unit", [
            ("Description", description),
            ("Wants", "network-online.target"),
            ("After", "network-online.target etcd.service"),
        ]),
        ("Service", [
            ("Type", "oneshot"),
            ("ExecStart", " ".join(["/usr/bin/flock", MAINTENANCE_LOCK, f"{SBIN}/{script}"])),
            ("TimeoutStartSec", str(timeout_seconds)),
            # Its reads and writes yield to etcd's own (the WAL's fsyncs share the disk).
            ("Nice", "10"),
            ("IOSchedulingClass", "idle"),
            ("PrivateTmp", "yes"),
            ("NoNewPrivileges", "yes"),
        ]),
    ])


def timer_unit(description: str, on_calendar: str) -> str:
    """Every member's timer fires at the same times (AccuracySec=1s: within a second of each
    other), so the member that leads then is the one that acts; a missed run is not made up
    (Persistent=no: the next one comes)."""
    return render_unit([
        ("Unit", [("Description", description)]),
        ("Timer", [
            # In UTC whatever the member's time zone: the schedule means the same everywhere.
            ("OnCalendar", f"{on_calendar} UTC"),
            ("AccuracySec", "1s"),
            ("Persistent", "no"),
        ]),
        ("Install", [("WantedBy", "timers.target")]),
    ])
