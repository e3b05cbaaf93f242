"""cloud-init user-data for one member, produced by a YAML serializer.

Pure: no Pulumi imports. The document installs the pinned etcd release, its certificates, its
data volume and its systemd unit, and starts etcd without blocking cloud-init. What it
deliberately does not do: upgrade every package at boot (that makes a member's first boot
depend on the state of a mirror, and changes software under a running cluster).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from cloudinit import member_files, seed, timeouts, unit
from cloudinit.etcd_flags import DEFAULT_PATHS, EtcdPaths, etcd_flags, initial_cluster_environment
from model import consumers, rollout
from model.cluster_spec import EtcdRelease
from model.settings import Backend, EtcdTuning
from model.topology import CLIENT_PORT, Member, Topology

# The largest user-data each backend takes: DigitalOcean refuses more than 64 KiB; the local
# backends hand it to cloud-init in a NoCloud seed of their own, which has no limit.
USER_DATA_LIMITS: dict[Backend, tuple[int, str] | None] = {
    "digitalocean": (64 * 1024, "DigitalOcean's user-data limit"),
    "qemu": None,
    "virtualbox": None,
}
DATA_VOLUME_LABEL = "etcd-data"
ETCD_UNIT_PATH = "/etc/systemd/system/etcd.service"
METADATA_ADDRESS = "169.254.169.254"
# Users besides root that may reach the metadata service: DigitalOcean's monitoring agent.
METADATA_ALLOWED_USERS = ("do-agent",)
# openssl: the rollout scripts check and verify certificates with it.
PACKAGES = ("ca-certificates", "curl", "nftables", "openssl")
# rclone: the backups upload and fetch snapshots with it.
BACKUP_PACKAGES = ("rclone",)
LOCAL_HOSTS = (
    "127.0.0.1 localhost\n"
    "::1 localhost ip6-localhost ip6-loopback\n"
    "ff02::1 ip6-allnodes\n"
    "ff02::2 ip6-allrouters\n"
)
# Every member-side script (cloudinit/member_files.py carries them in one archive).
SCRIPTS = member_files.SCRIPTS
# Where the user-data leaves the archive for etcd-install-files (tmpfs: gone after the boot).
MEMBER_FILES_PATH = "/run/etcd-member-files.b64"


@dataclass(frozen=True)
class MemberPki:
    """PEM documents one member needs on disk."""

    client_ca_pem: str
    peer_ca_pem: str
    server_cert_pem: str
    server_key_pem: str
    peer_cert_pem: str
    peer_key_pem: str
    healthcheck_cert_pem: str
    healthcheck_key_pem: str


@dataclass(frozen=True)
class MemberUserData:
    member: Member
    topology: Topology
    etcd_line: str
    tuning: EtcdTuning
    release: EtcdRelease
    data_device: str
    pki: MemberPki
    paths: EtcdPaths = DEFAULT_PATHS
    metadata_allowed_users: tuple[str, ...] = METADATA_ALLOWED_USERS
    # (address, FQDN) of every member when addresses are static (local backends): names then
    # resolve from /etc/hosts, with no DNS server on the members' network.
    static_hosts: tuple[tuple[str, str], ...] = ()
    # False for images that already carry curl, ca-certificates, nftables and openssl (offline images).
    install_packages: bool = True
    # The deploy key's public half (OpenSSH format): day-2 rollouts log in as the rollout user
    # with it. None: no rollout user (rolloutVia none).
    rollout_public_key: str | None = None
    # The members that found the cluster (the initial-cluster file lists them); empty: all of
    # the topology's. A member not among them joins a running cluster: its user-data writes no
    # initial-cluster file, so its etcd stays down until `etcd-member-join` has the cluster
    # add it and writes the file.
    founders: tuple[str, ...] = ()
    # The member files' archive (cloudinit/member_files.py): the scripts, the maintenance
    # timers, the backup settings. Empty: the scripts alone.
    member_files_archive: str = ""
    # Backups are on: the packages include rclone.
    backups: bool = False
    # What a founding member runs before etcd first starts to restore the cluster from a
    # snapshot (model/backup.py restore_commands); empty: the cluster starts empty.
    restore_commands: tuple[tuple[str, ...], ...] = ()

    @property
    def founding_members(self) -> tuple[Member, ...]:
        return tuple(member for member in self.topology.members
                     if not self.founders or member.name in self.founders)

    @property
    def founding(self) -> bool:
        return self.member in self.founding_members


def _file(path: str, content: str, permissions: str, owner: str = "root:root") -> dict[str, Any]:
    entry: dict[str, Any] = {"path": path, "content": content, "permissions": permissions,
                             "owner": owner}
    if owner != "root:root":
        # Written in cloud-init's final stage, after the `etcd` user exists.
        entry["defer"] = True
    return entry


def _installer_file() -> dict[str, Any]:
    # The one script outside the archive: it installs the archive. Compressed (cloud-init's
    # gz+b64); mtime=0: the same script always renders the same bytes (no spurious diffs).
    content = member_files.installed_copy(member_files.INSTALLER).encode()
    packed = base64.b64encode(gzip.compress(content, mtime=0)).decode()
    return {"path": f"{unit.SBIN}/{member_files.INSTALLER}", "content": packed,
            "encoding": "gz+b64", "permissions": "0755", "owner": "root:root"}


def packages(install_packages: bool, backups: bool) -> list[str]:
    if not install_packages:
        return []
    return [*PACKAGES, *(BACKUP_PACKAGES if backups else ())]


def _etcdctl_env(paths: EtcdPaths) -> str:
    # For operators on the machine: `set -a; . /etc/etcd/etcdctl.env; etcdctl member list`.
    variables = consumers.etcdctl_variables([f"https://127.0.0.1:{CLIENT_PORT}"], paths.client_ca,
                                            paths.healthcheck_cert, paths.healthcheck_key)
    return "".join(f"{name}={value}\n" for name, value in variables.items())


def _rollout_user(public_key: str) -> dict[str, Any]:
    # Logs in with the deploy key only (no password) and may run only the rollout scripts.
    return {
        "name": rollout.ROLLOUT_USER,
        "shell": "/bin/sh",
        "lock_passwd": True,
        "ssh_authorized_keys": [public_key.strip()],
        "sudo": rollout.sudoers_rule(),
    }


def _hosts(static_hosts: Sequence[tuple[str, str]]) -> str:
    return LOCAL_HOSTS + seed.hosts_entries(static_hosts)


def member_flags(spec: MemberUserData) -> list[str]:
    return etcd_flags(spec.etcd_line, spec.member, spec.topology, spec.tuning, spec.paths)


def etcd_service_unit(member: Member, topology: Topology, etcd_line: str, tuning: EtcdTuning,
                      paths: EtcdPaths = DEFAULT_PATHS) -> str:
    """The member's etcd.service: what its user-data writes at first boot, and what a
    configuration rollout installs on a running member (so the two can never differ)."""
    return unit.etcd_unit(member.name, topology.cluster_name, paths,
                          etcd_flags(etcd_line, member, topology, tuning, paths))


def first_boot_only(install_packages: bool = True, backups: bool = False,
                    metadata_allowed_users: Sequence[str] = METADATA_ALLOWED_USERS
                    ) -> dict[str, Any]:
    """What of the user-data reaches new members only (no rollout puts it on running ones):
    the packages and the files every member gets alike outside the member files' archive (by
    SHA-256). Exported per cluster, so `pulumi preview` shows a change of it as a changed stack
    output."""
    guard = unit.metadata_guard_unit(METADATA_ADDRESS, metadata_allowed_users)
    return {
        "packages": packages(install_packages, backups),
        "files": {"/etc/systemd/system/etcd-metadata-guard.service": _sha256(guard),
                  "/etc/etcd/etcdctl.env": _sha256(_etcdctl_env(DEFAULT_PATHS))},
    }


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def cloud_config(spec: MemberUserData) -> dict[str, Any]:
    """The cloud-config document as a mapping (serialized by `render_user_data`)."""
    paths = spec.paths
    pki = spec.pki
    etcd_owner = "etcd:etcd"
    archive = spec.member_files_archive or member_files.archive(
        member_files.member_files(None, None, None))
    write_files = [
        _installer_file(),
        _file(MEMBER_FILES_PATH, archive, "0600"),
        _file(ETCD_UNIT_PATH, etcd_service_unit(spec.member, spec.topology, spec.etcd_line,
                                                spec.tuning, paths), "0644"),
        _file("/etc/systemd/system/etcd-metadata-guard.service",
              unit.metadata_guard_unit(METADATA_ADDRESS, spec.metadata_allowed_users), "0644"),
        _file(paths.client_ca, pki.client_ca_pem, "0644"),
        _file(paths.peer_ca, pki.peer_ca_pem, "0644"),
        _file(paths.server_cert, pki.server_cert_pem, "0644", etcd_owner),
        _file(paths.server_key, pki.server_key_pem, "0600", etcd_owner),
        _file(paths.peer_cert, pki.peer_cert_pem, "0644", etcd_owner),
        _file(paths.peer_key, pki.peer_key_pem, "0600", etcd_owner),
        _file(paths.healthcheck_cert, pki.healthcheck_cert_pem, "0644"),
        _file(paths.healthcheck_key, pki.healthcheck_key_pem, "0600"),
        _file("/etc/etcd/etcdctl.env", _etcdctl_env(paths), "0600"),
    ]
    if spec.founding:
        write_files.append(_file(paths.initial_cluster_file,
                                 initial_cluster_environment(spec.founding_members), "0644"))
    if spec.static_hosts:
        write_files.append(_file("/etc/hosts", _hosts(spec.static_hosts), "0644"))
    wanted = packages(spec.install_packages, spec.backups)
    document: dict[str, Any] = {
        # Install what the scripts need; never upgrade the whole system at boot.
        "package_update": spec.install_packages,
        "package_upgrade": False,
        **({"packages": wanted} if wanted else {}),
        # With static hosts the file is ours: cloud-init must not rewrite it at the next boot.
        **({"manage_etc_hosts": False} if spec.static_hosts else {}),
        "users": [
            "default",
            {
                "name": "etcd",
                "system": True,
                "homedir": unit.DATA_MOUNTPOINT,
                "no_create_home": True,
                "shell": "/usr/sbin/nologin",
                "lock_passwd": True,
            },
            *([_rollout_user(spec.rollout_public_key)] if spec.rollout_public_key else []),
        ],
        "mounts": [[
            f"LABEL={DATA_VOLUME_LABEL}", unit.DATA_MOUNTPOINT, "ext4",
            "defaults,noatime,nofail,"
            f"x-systemd.device-timeout={timeouts.DATA_DEVICE_TIMEOUT_SECONDS}s", "0", "2",
        ]],
        "write_files": write_files,
        "runcmd": [
            # cloud-init runs runcmd as one plain sh script: stop at the first failure, so etcd
            # never starts after a failed install or without its data volume.
            ["set", "-e"],
            # The scripts first (the rest runs them), with the timers and backup settings.
            [f"{unit.SBIN}/{member_files.INSTALLER}", MEMBER_FILES_PATH],
            ["systemctl", "daemon-reload"],
            ["systemctl", "enable", "--now", "etcd-metadata-guard.service"],
            [f"{unit.SBIN}/etcd-install", spec.release.version, spec.release.url,
             spec.release.sha256],
            [f"{unit.SBIN}/etcd-prepare-data", spec.data_device, DATA_VOLUME_LABEL,
             unit.DATA_MOUNTPOINT, paths.data_dir, str(timeouts.DATA_DEVICE_TIMEOUT_SECONDS)],
            # A cluster created from a snapshot: its founders restore it before etcd first
            # starts (a member that joins later syncs from them).
            *(list(command) for command in spec.restore_commands if spec.founding),
            ["systemctl", "enable", "etcd.service"],
            # etcd reports ready only once a quorum has formed: starting it without --no-block
            # would hold cloud-init until the other members boot. On a joining member the
            # unit's conditions skip the start (no data, no initial-cluster file yet).
            ["systemctl", "start", "--no-block", "etcd.service"],
        ],
    }
    return document


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (PEM, scripts) so the document stays readable."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def render_document(document: dict[str, Any]) -> str:
    """A cloud-config document as user-data text: the header line, then block-style YAML."""
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=4096)
    return "#cloud-config\n" + body


def render_user_data(spec: MemberUserData) -> str:
    return render_document(cloud_config(spec))


def check_size(user_data: str, member_name: str, backend: Backend) -> None:
    """Refuse user-data the backend would refuse, before any machine is asked for."""
    limit = USER_DATA_LIMITS[backend]
    size = len(user_data.encode())
    if limit is not None and size > limit[0]:
        raise ValueError(f"user-data for {member_name} is {size} bytes, above {limit[1]} of "
                         f"{limit[0]} bytes; use ecdsa-p256 keys (keyAlgorithm), whose keys and "
                         "certificates are the smallest.")
