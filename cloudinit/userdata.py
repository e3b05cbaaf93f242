"""cloud-init user-data for one member, produced by a YAML serializer.

Pure: no Pulumi imports. The document installs the pinned etcd release, its certificates, its
data volume and its systemd unit, and starts etcd without blocking cloud-init. What it
deliberately does not do: upgrade every package at boot (that makes a member's first boot
depend on the state of a mirror, and changes software under a running cluster).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from cloudinit import seed, unit
from cloudinit.etcd_flags import DEFAULT_PATHS, EtcdPaths, etcd_flags
from model import consumers
from model.settings import EtcdTuning
from model.topology import CLIENT_PORT, Member, Topology

# DigitalOcean refuses user-data above 64 KiB.
USER_DATA_LIMIT_BYTES = 64 * 1024
DATA_VOLUME_LABEL = "etcd-data"
METADATA_ADDRESS = "169.254.169.254"
PACKAGES = ("ca-certificates", "curl", "nftables")
LOCAL_HOSTS = (
    "127.0.0.1 localhost\n"
    "::1 localhost ip6-localhost ip6-loopback\n"
    "ff02::1 ip6-allnodes\n"
    "ff02::2 ip6-allrouters\n"
)
SCRIPTS = ("etcd-install", "etcd-prepare-data", "etcd-wait-for-peers", "etcd-metadata-guard")


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
class EtcdRelease:
    version: str
    url: str
    sha256: str


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
    # Users besides root that may reach the metadata service: DigitalOcean's monitoring agent.
    metadata_allowed_users: tuple[str, ...] = ("do-agent",)
    # (address, FQDN) of every member when addresses are static (local backends): names then
    # resolve from /etc/hosts, with no DNS server on the members' network.
    static_hosts: tuple[tuple[str, str], ...] = ()
    # False for images that already carry curl, ca-certificates and nftables (offline images).
    install_packages: bool = True


def _script(name: str) -> str:
    return resources.files("cloudinit").joinpath("scripts", name).read_text()


def _file(path: str, content: str, permissions: str, owner: str = "root:root") -> dict[str, Any]:
    entry: dict[str, Any] = {"path": path, "content": content, "permissions": permissions,
                             "owner": owner}
    if owner != "root:root":
        # Written in cloud-init's final stage, after the `etcd` user exists.
        entry["defer"] = True
    return entry


def _etcdctl_env(paths: EtcdPaths) -> str:
    # For operators on the machine: `set -a; . /etc/etcd/etcdctl.env; etcdctl member list`.
    variables = consumers.etcdctl_variables([f"https://127.0.0.1:{CLIENT_PORT}"], paths.client_ca,
                                            paths.healthcheck_cert, paths.healthcheck_key)
    return "".join(f"{name}={value}\n" for name, value in variables.items())


def _hosts(static_hosts: Sequence[tuple[str, str]]) -> str:
    return LOCAL_HOSTS + seed.hosts_entries(static_hosts)


def member_flags(spec: MemberUserData) -> list[str]:
    return etcd_flags(spec.etcd_line, spec.member, spec.topology, spec.tuning, spec.paths)


def cloud_config(spec: MemberUserData) -> dict[str, Any]:
    """The cloud-config document as a mapping (serialized by `render_user_data`)."""
    paths = spec.paths
    pki = spec.pki
    peer_fqdns = [member.fqdn for member in spec.topology.members]
    etcd_owner = "etcd:etcd"
    write_files = [
        *(_file(f"{unit.SBIN}/{name}", _script(name), "0755") for name in SCRIPTS),
        _file("/etc/systemd/system/etcd.service",
              unit.etcd_unit(spec.member.name, spec.topology.cluster_name, paths,
                             member_flags(spec), peer_fqdns), "0644"),
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
    if spec.static_hosts:
        write_files.append(_file("/etc/hosts", _hosts(spec.static_hosts), "0644"))
    document: dict[str, Any] = {
        # Install what the scripts need; never upgrade the whole system at boot.
        "package_update": spec.install_packages,
        "package_upgrade": False,
        **({"packages": list(PACKAGES)} if spec.install_packages else {}),
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
        ],
        "mounts": [[
            f"LABEL={DATA_VOLUME_LABEL}", unit.DATA_MOUNTPOINT, "ext4",
            "defaults,noatime,nofail,x-systemd.device-timeout=600s", "0", "2",
        ]],
        "write_files": write_files,
        "runcmd": [
            # cloud-init runs runcmd as one plain sh script: stop at the first failure, so etcd
            # never starts after a failed install or without its data volume.
            ["set", "-e"],
            ["systemctl", "daemon-reload"],
            ["systemctl", "enable", "--now", "etcd-metadata-guard.service"],
            [f"{unit.SBIN}/etcd-install", spec.release.version, spec.release.url,
             spec.release.sha256],
            [f"{unit.SBIN}/etcd-prepare-data", spec.data_device, DATA_VOLUME_LABEL,
             unit.DATA_MOUNTPOINT, paths.data_dir],
            ["systemctl", "enable", "etcd.service"],
            # etcd reports ready only once a quorum has formed: starting it without --no-block
            # would hold cloud-init until the other members boot.
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


def render_user_data(spec: MemberUserData) -> str:
    body = yaml.dump(cloud_config(spec), Dumper=_Dumper, sort_keys=False, width=4096)
    return "#cloud-config\n" + body


def write_file_contents(user_data: str) -> dict[str, str]:
    """path -> content of every file a rendered user-data writes (for tests and tools)."""
    document = yaml.safe_load(user_data)
    return {entry["path"]: entry["content"] for entry in document.get("write_files", [])}


def check_size(user_data: str, where: Sequence[str] = ()) -> None:
    size = len(user_data.encode())
    if size > USER_DATA_LIMIT_BYTES:
        raise ValueError(f"user-data for {' '.join(where)} is {size} bytes, above DigitalOcean's "
                         f"limit of {USER_DATA_LIMIT_BYTES}; use ecdsa-p256 keys.")
