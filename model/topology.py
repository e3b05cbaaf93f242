"""Cluster topology: member identities and URLs, decided before any machine exists.

Pure: no Pulumi imports. Everything keys off FQDNs, so certificates and `--initial-cluster` do
not depend on addresses a cloud assigns later (no dependency cycle).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from model import local_network
from model.cluster_spec import ClusterSpec

CLIENT_PORT = 2379
PEER_PORT = 2380
METRICS_PORT = 2381


@dataclass(frozen=True)
class Member:
    index: int
    name: str
    fqdn: str
    # Local backends assign addresses themselves, before any machine exists; on DigitalOcean the
    # address is known only once the droplet is (None here).
    static_ipv4: str | None = None

    @property
    def client_url(self) -> str:
        return f"https://{self.fqdn}:{CLIENT_PORT}"

    @property
    def peer_url(self) -> str:
        return f"https://{self.fqdn}:{PEER_PORT}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.fqdn}:{METRICS_PORT}"


def initial_cluster(members: Sequence[Member]) -> str:
    """etcd's initial cluster for `members`: `name=peer_url` for each, comma-separated."""
    return ",".join(f"{member.name}={member.peer_url}" for member in members)


@dataclass(frozen=True)
class Topology:
    cluster_name: str
    dns_domain: str
    cluster_token: str
    members: tuple[Member, ...]
    # Local backends: (address, FQDN) of every member the cluster can ever have (1 to
    # MAX_MEMBERS; addresses follow the member number), so that a member that joins later
    # resolves on machines created before it.
    reserved_static_hosts: tuple[tuple[str, str], ...] = ()

    @property
    def client_urls(self) -> list[str]:
        return [member.client_url for member in self.members]

    @property
    def etcd_servers(self) -> str:
        """kube-apiserver `--etcd-servers`: a comma list of client URLs."""
        return ",".join(self.client_urls)

    @property
    def fault_tolerance(self) -> int:
        return (len(self.members) - 1) // 2


def possible_members(cluster: ClusterSpec) -> tuple[Member, ...]:
    """Every member the cluster can ever have, 1 to MAX_MEMBERS, whatever its count: a member
    is its number (its name, FQDN and local address follow from it)."""
    def static_ipv4(index: int) -> str | None:
        if not cluster.is_local:
            return None
        return local_network.member_ipv4(cluster.local.network_cidr, index,
                                         cluster.first_member_host)

    return tuple(Member(index=index, name=f"{cluster.member_prefix}-{index}",
                        fqdn=f"{cluster.member_prefix}-{index}.{cluster.dns_domain}",
                        static_ipv4=static_ipv4(index))
                 for index in range(1, local_network.MAX_MEMBERS + 1))


def build_topology(cluster: ClusterSpec) -> Topology:
    possible = possible_members(cluster)
    return Topology(
        cluster_name=cluster.name,
        dns_domain=cluster.dns_domain,
        cluster_token=cluster.cluster_token,
        members=tuple(possible[:cluster.member_count]),
        reserved_static_hosts=tuple((member.static_ipv4, member.fqdn) for member in possible
                                    if member.static_ipv4),
    )
