"""Who may reach which member port: the cloud firewall's rules as plain data.

Pure: no Pulumi imports. A rule with no sources is left out (DigitalOcean refuses it, and a
port nobody may reach needs no rule: the firewall drops what no rule admits).
"""

from __future__ import annotations

from dataclasses import dataclass

from model.cluster_spec import ClusterSpec
from model.topology import CLIENT_PORT, METRICS_PORT, PEER_PORT

SSH_PORT = 22


@dataclass(frozen=True)
class InboundRule:
    port: int
    purpose: str
    source_tags: tuple[str, ...] = ()
    source_cidrs: tuple[str, ...] = ()


def inbound_rules(cluster: ClusterSpec) -> list[InboundRule]:
    members = cluster.cluster_tag
    access = cluster.access
    rules = [
        # Members talk to each other's client port too (gRPC gateway, `etcdctl` on a member).
        InboundRule(CLIENT_PORT, "etcd clients",
                    source_tags=(members, *access.client_source_tags),
                    source_cidrs=access.client_source_cidrs),
        InboundRule(PEER_PORT, "etcd peers", source_tags=(members,)),
        InboundRule(METRICS_PORT, "metrics",
                    source_tags=access.monitoring_source_tags,
                    source_cidrs=access.monitoring_source_cidrs),
        InboundRule(SSH_PORT, "ssh", source_cidrs=access.admin_cidrs),
    ]
    return [rule for rule in rules if rule.source_tags or rule.source_cidrs]
