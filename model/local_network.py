"""Static addressing for the local backends (QEMU, VirtualBox): decided before any VM exists.

Pure: no Pulumi imports. On a local network nothing assigns addresses, so the program does: the
first host address of `localNetworkCidr` is the gateway (the host's bridge or host-only
adapter) and member N gets host number `FIRST_MEMBER_HOST + N` (the events cluster's members
`EVENTS_FIRST_MEMBER_HOST + N`). Knowing the addresses up front
lets certificates carry IP SANs and every member write the others into /etc/hosts.
"""

from __future__ import annotations

import hashlib
import ipaddress

# Hosts 2-10 are left to the host and anything else the user puts on the network.
FIRST_MEMBER_HOST = 10
MAX_MEMBERS = 7
EVENTS_FIRST_MEMBER_HOST = 20
# The smallest network that holds the gateway and seven members of each cluster.
MIN_HOSTS = EVENTS_FIRST_MEMBER_HOST + MAX_MEMBERS + 1


def gateway_ipv4(cidr: str) -> str:
    return str(ipaddress.ip_network(cidr).network_address + 1)


def member_ipv4(cidr: str, index: int, first_member_host: int = FIRST_MEMBER_HOST) -> str:
    return str(ipaddress.ip_network(cidr).network_address + first_member_host + index)


def prefix_length(cidr: str) -> int:
    return ipaddress.ip_network(cidr).prefixlen


def mac_address(vm_name: str) -> str:
    """A stable, locally administered unicast MAC (QEMU's 52:54:00 prefix) for one VM."""
    digest = hashlib.sha256(vm_name.encode()).hexdigest()
    return "52:54:00:" + ":".join(digest[i:i + 2] for i in range(0, 6, 2))
