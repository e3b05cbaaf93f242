"""Cluster topology: member identities and URLs, decided before any machine exists.

Pure: no Pulumi imports. Everything keys off FQDNs, so certificates and `--initial-cluster` do
not depend on addresses a cloud assigns later (no dependency cycle).
"""

from __future__ import annotations

from dataclasses import dataclass

from model import local_network
from model.settings import Settings

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


@dataclass(frozen=True)
class Topology:
    cluster_name: str
    dns_domain: str
    cluster_token: str
    members: tuple[Member, ...]

    @property
    def initial_cluster(self) -> str:
        """The `--initial-cluster` value: `name=peer_url` for every member."""
        return ",".join(f"{member.name}={member.peer_url}" for member in self.members)

    @property
    def client_urls(self) -> list[str]:
        return [member.client_url for member in self.members]

    @property
    def etcd_servers(self) -> str:
        """kube-apiserver `--etcd-servers`: a comma list of client URLs."""
        return ",".join(self.client_urls)

    @property
    def static_hosts(self) -> list[tuple[str, str]]:
        """(address, FQDN) of every member with a static address, for /etc/hosts."""
        return [(member.static_ipv4, member.fqdn) for member in self.members if member.static_ipv4]

    @property
    def fault_tolerance(self) -> int:
        return (len(self.members) - 1) // 2


def build_topology(settings: Settings) -> Topology:
    domain = settings.dns_domain
    members = tuple(
        Member(index=index, name=f"etcd-{index}", fqdn=f"etcd-{index}.{domain}",
               static_ipv4=(local_network.member_ipv4(settings.local.network_cidr, index)
                            if settings.is_local else None))
        for index in range(1, settings.member_count + 1)
    )
    return Topology(
        cluster_name=settings.cluster_name,
        dns_domain=domain,
        cluster_token=settings.cluster_token,
        members=members,
    )
