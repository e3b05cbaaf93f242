"""Cloudflare DNS for the members: an A record per member FQDN at its private address.

Records are never proxied (etcd speaks mutual TLS to the member itself) and have a short TTL so
a replaced member is found quickly. Optional SRV records serve etcd's DNS discovery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_cloudflare as cloudflare

from components.naming import ChildNames
from model.cluster_spec import DnsRecordsSpec
from model.topology import CLIENT_PORT, PEER_PORT, Member


def srv_names(dns_domain: str) -> dict[str, int]:
    """etcd's discovery names (`--discovery-srv`) and the port each points at."""
    return {
        f"_etcd-server-ssl._tcp.{dns_domain}": PEER_PORT,
        f"_etcd-client-ssl._tcp.{dns_domain}": CLIENT_PORT,
    }


@dataclass(frozen=True)
class CloudflareRecordsArgs:
    records: DnsRecordsSpec
    members: tuple[Member, ...]
    # Per member name: the address its A record points at.
    addresses: Mapping[str, pulumi.Output[str]]
    dns_domain: str
    # Which cluster of which stack, for the records' comments.
    owner: str
    keep_unprefixed_names: bool = False


class CloudflareRecords(pulumi.ComponentResource):
    def __init__(self, name: str, args: CloudflareRecordsArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("etcd-cluster:index:CloudflareRecords", name, None, opts)
        names = ChildNames(self, name, args.keep_unprefixed_names)
        records = args.records
        hostnames: list[pulumi.Output[str]] = []
        for member in args.members:
            record = cloudflare.DnsRecord(
                names.name(member.name),
                zone_id=records.zone_id,
                name=member.fqdn,
                type="A",
                content=args.addresses[member.name],
                ttl=records.ttl,
                proxied=False,
                comment=f"etcd member {member.name} of {args.owner}",
                opts=names.opts(member.name),
            )
            hostnames.append(record.name)
        if records.srv_records:
            for service, port in srv_names(args.dns_domain).items():
                kind = service.split(".")[0].removeprefix("_")
                for member in args.members:
                    cloudflare.DnsRecord(
                        names.name(f"{kind}-{member.name}"),
                        zone_id=records.zone_id,
                        name=service,
                        type="SRV",
                        ttl=records.ttl,
                        priority=0,
                        data=cloudflare.DnsRecordDataArgs(
                            priority=0, weight=10, port=port, target=member.fqdn),
                        opts=names.opts(f"{kind}-{member.name}"),
                    )
        self.register_outputs({"hostnames": hostnames})
