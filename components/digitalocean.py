"""DigitalOcean machines for the members: VPC, tags, droplets, data volumes and the firewall.

Replacing several members at once loses quorum and can lose data, so nothing this program may
change replaces a droplet: user-data, image and SSH keys (all of which DigitalOcean can only
apply by rebuilding the droplet) are ignored after creation, and with `protectMembers` (the
default) droplets and volumes are protected, so even a renamed cluster or a moved region fails
at preview instead of replacing members. Replacing one member is a deliberate day-2 operation
(README: "Replacing a member").
"""

from __future__ import annotations

import pulumi
import pulumi_digitalocean as do

from components.nodes import MemberMachine
from model.firewall import inbound_rules
from model.settings import Settings
from model.topology import Member, Topology

COMMON_TAG = "etcd"
# Properties DigitalOcean can only change by rebuilding the droplet.
REBUILD_PROPERTIES = ["user_data", "image", "ssh_keys"]


def volume_name(settings: Settings, member: Member) -> str:
    return f"{settings.resource_prefix}-{member.index}"


def volume_device(settings: Settings, member: Member) -> str:
    """Where a DigitalOcean volume appears on its droplet."""
    return f"/dev/disk/by-id/scsi-0DO_Volume_{volume_name(settings, member)}"


class DigitalOceanMembers(pulumi.ComponentResource):
    machines: dict[str, MemberMachine]

    def __init__(self, name: str, settings: Settings, topology: Topology,
                 user_data: dict[str, pulumi.Output[str]],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("etcd-cluster:index:DigitalOceanMembers", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        kept = pulumi.ResourceOptions(parent=self, protect=settings.protect_members)

        if settings.vpc_id:
            vpc_id: pulumi.Input[str] = settings.vpc_id
        else:
            vpc = do.Vpc("vpc", name=f"{settings.resource_prefix}-vpc", region=settings.region,
                         ip_range=settings.vpc_ip_range,
                         description=f"etcd cluster {settings.cluster_name} ({settings.stack})",
                         opts=child)
            vpc_id = vpc.id
        # The common tag is shared by every etcd stack in the account, so no stack owns it (a
        # stack deleting it would untag the others); DigitalOcean creates it on first use.
        cluster_tag = do.Tag("cluster-tag", name=settings.cluster_tag, opts=child)
        tags: list[pulumi.Input[str]] = [COMMON_TAG, cluster_tag.name, *settings.extra_tags]

        self.machines = {}
        for member in topology.members:
            # Secret already: EtcdCluster renders it as a secret Output (one place).
            member_user_data = user_data[member.name]
            volume = do.Volume(
                f"{member.name}-data",
                name=volume_name(settings, member),
                region=settings.region,
                size=settings.data_volume_size_gib,
                # DigitalOcean formats it once, at creation; the user-data never reformats.
                initial_filesystem_type="ext4",
                initial_filesystem_label="etcd-data",
                description=f"etcd data of {member.fqdn}",
                tags=[COMMON_TAG, settings.cluster_tag],
                opts=pulumi.ResourceOptions.merge(kept, pulumi.ResourceOptions(
                    depends_on=[cluster_tag])),
            )
            droplet = do.Droplet(
                member.name,
                name=member.fqdn,
                region=settings.region,
                size=settings.droplet_size,
                image=settings.droplet_image,
                vpc_uuid=vpc_id,
                monitoring=True,
                ipv6=False,
                graceful_shutdown=True,
                ssh_keys=list(settings.admin_ssh_keys),
                tags=tags,
                user_data=member_user_data,
                opts=pulumi.ResourceOptions.merge(kept, pulumi.ResourceOptions(
                    ignore_changes=REBUILD_PROPERTIES)),
            )
            do.VolumeAttachment(
                f"{member.name}-data-attachment",
                droplet_id=droplet.id.apply(int),
                volume_id=volume.id,
                opts=child,
            )
            self.machines[member.name] = MemberMachine(
                private_ipv4=droplet.ipv4_address_private,
                public_ipv4=droplet.ipv4_address,
            )

        do.Firewall(
            "firewall",
            name=f"{settings.resource_prefix}-firewall",
            tags=[cluster_tag.name],
            inbound_rules=[
                do.FirewallInboundRuleArgs(
                    protocol="tcp",
                    port_range=str(rule.port),
                    source_tags=list(rule.source_tags) or None,
                    source_addresses=list(rule.source_cidrs) or None,
                )
                for rule in inbound_rules(settings)
            ],
            # Members fetch packages and the etcd release, and resolve names.
            outbound_rules=[
                do.FirewallOutboundRuleArgs(protocol=protocol, port_range=ports,
                                            destination_addresses=["0.0.0.0/0", "::/0"])
                for protocol, ports in (("tcp", "1-65535"), ("udp", "1-65535"), ("icmp", None))
            ],
            opts=child,
        )
        self.register_outputs({})
