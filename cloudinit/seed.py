"""The NoCloud seed besides user-data: meta-data and network-config (version 2).

Pure: no Pulumi imports; both documents come from the YAML serializer. The local backends put
them, with the user-data, on a `cidata` ISO; the interface is matched by its MAC address so the
name the guest kernel gives it does not matter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml


@dataclass(frozen=True)
class StaticInterface:
    """The member's address on the private network."""

    mac: str
    address: str  # with prefix length, e.g. 192.168.56.11/24
    gateway: str | None = None  # default route through the host, when it has one
    nameservers: tuple[str, ...] = ()


@dataclass(frozen=True)
class DhcpInterface:
    """A second NIC that takes its address (and default route) from DHCP, e.g. VirtualBox NAT."""

    mac: str


@dataclass(frozen=True)
class NetworkSeed:
    static: StaticInterface
    dhcp: tuple[DhcpInterface, ...] = field(default=())


def meta_data(instance_id: str, hostname: str) -> str:
    return yaml.safe_dump({"instance-id": instance_id, "local-hostname": hostname}, sort_keys=False)


def network_config(seed: NetworkSeed) -> str:
    static = seed.static
    ethernets: dict[str, Any] = {}
    static_config: dict[str, Any] = {
        "match": {"macaddress": static.mac},
        "set-name": "etcd0",
        "dhcp4": False,
        "dhcp6": False,
        "addresses": [static.address],
    }
    if static.gateway:
        static_config["routes"] = [{"to": "0.0.0.0/0", "via": static.gateway}]
    if static.nameservers:
        static_config["nameservers"] = {"addresses": list(static.nameservers)}
    ethernets["etcd0"] = static_config
    for number, nic in enumerate(seed.dhcp, start=1):
        ethernets[f"uplink{number}"] = {
            "match": {"macaddress": nic.mac},
            "set-name": f"uplink{number}",
            "dhcp4": True,
        }
    return yaml.safe_dump({"version": 2, "ethernets": ethernets}, sort_keys=False)


def hosts_entries(members: Sequence[tuple[str, str]]) -> str:
    """/etc/hosts lines (address, FQDN and short name) for every member."""
    return "".join(f"{address} {fqdn} {fqdn.split('.')[0]}\n" for address, fqdn in members)
