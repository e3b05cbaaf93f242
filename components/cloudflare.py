"""Cloudflare DNS for the members: an A record per member FQDN at its private address.

Records are never proxied (etcd speaks mutual TLS to the member itself) and have a short TTL so
a replaced member is found quickly. Optional SRV records serve etcd's DNS discovery.
"""

from __future__ import annotations

import pulumi
import pulumi_cloudflare as cloudflare

from model.settings import Settings
from model.topology import CLIENT_PORT, PEER_PORT, Topology


def srv_names(dns_domain: str) -> dict[str, int]:
    """etcd's discovery names (`--discovery-srv`) and the port each points at."""
    return {
        f"_etcd-server-ssl._tcp.{dns_domain}": PEER_PORT,
        f"_etcd-client-ssl._tcp.{dns_domain}": CLIENT_PORT,
    }


class CloudflareRecords(pulumi.ComponentResource):
    def __init__(self, name: str, settings: Settings, topology: Topology,
                 addresses: dict[str, pulumi.Output[str]],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("etcd-cluster:index:CloudflareRecords", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        for member in topology.members:
            cloudflare.DnsRecord(
                member.name,
                zone_id=settings.cloudflare_zone_id,
                name=member.fqdn,
                type="A",
                content=addresses[member.name],
                ttl=settings.dns_ttl,
                proxied=False,
                comment=f"etcd member {member.name} of {settings.cluster_name} ({settings.stack})",
                opts=child,
            )
        if settings.dns_srv_records:
            for service, port in srv_names(topology.dns_domain).items():
                kind = service.split(".")[0].removeprefix("_")
                for member in topology.members:
                    cloudflare.DnsRecord(
                        f"{kind}-{member.name}",
                        zone_id=settings.cloudflare_zone_id,
                        name=service,
                        type="SRV",
                        ttl=settings.dns_ttl,
                        priority=0,
                        data=cloudflare.DnsRecordDataArgs(
                            priority=0, weight=10, port=port, target=member.fqdn),
                        opts=child,
                    )
        self.register_outputs({})
