"""DigitalOcean machines for the members: VPC, tags, droplets, data volumes and the firewall.

Replacing several members at once loses quorum and can lose data, so nothing this program may
change replaces a droplet: user-data, image and SSH keys (all of which DigitalOcean can only
apply by rebuilding the droplet) are ignored after creation, and with `protectMembers` (the
default) droplets and volumes are protected, so even a renamed cluster or a moved region fails
at preview instead of replacing members. Replacing one member is a deliberate `replaceMember`
(model/replacement.py): its droplet is deleted and created again, and its volume, kept, is
attached to the new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_digitalocean as do

from components.naming import ChildNames
from components.nodes import MachineReplacement, MemberMachine
from model.cluster_spec import DropletSpec
from model.firewall import InboundRule
from model.topology import Member

COMMON_TAG = "etcd"
# Properties DigitalOcean can only change by rebuilding the droplet.
REBUILD_PROPERTIES = ["user_data", "image", "ssh_keys"]


def volume_name(resource_prefix: str, member: Member) -> str:
    return f"{resource_prefix}-{member.index}"


def volume_device(resource_prefix: str, member: Member) -> str:
    """Where a DigitalOcean volume appears on its droplet."""
    return f"/dev/disk/by-id/scsi-0DO_Volume_{volume_name(resource_prefix, member)}"


@dataclass(frozen=True)
class DigitalOceanMembersArgs:
    members: tuple[Member, ...]
    # Per member name; secret (EtcdCluster renders it as a secret Output, in one place).
    user_data: Mapping[str, pulumi.Output[str]]
    droplets: DropletSpec
    # Unique per stack and cluster: prefixes droplet-independent names (volumes, VPC, firewall).
    resource_prefix: str
    # The tag that makes a droplet a member of this cluster (the firewall admits peers by it).
    cluster_tag: str
    description: str
    data_volume_size_gib: int
    protect: bool
    firewall_rules: tuple[InboundRule, ...]
    # Join this VPC (the main cluster's, for an events cluster); None: droplets.vpc_id, or a
    # VPC of this cluster's own.
    vpc_id: pulumi.Input[str] | None = None
    keep_unprefixed_names: bool = False
    replacement: MachineReplacement = field(default_factory=MachineReplacement)


class DigitalOceanMembers(pulumi.ComponentResource):
    machines: dict[str, MemberMachine]
    vpc_id: pulumi.Output[str]

    def __init__(self, name: str, args: DigitalOceanMembersArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("etcd-cluster:index:DigitalOceanMembers", name, None, opts)
        names = ChildNames(self, name, args.keep_unprefixed_names)
        droplets = args.droplets

        vpc_id = args.vpc_id or droplets.vpc_id
        if vpc_id:
            self.vpc_id = pulumi.Output.from_input(vpc_id)
        else:
            vpc = do.Vpc(names.name("vpc"), name=f"{args.resource_prefix}-vpc",
                         region=droplets.region, ip_range=droplets.vpc_ip_range,
                         description=args.description, opts=names.opts("vpc"))
            self.vpc_id = vpc.id
        # The common tag is shared by every etcd stack in the account, so no stack owns it (a
        # stack deleting it would untag the others); DigitalOcean creates it on first use.
        cluster_tag = do.Tag(names.name("cluster-tag"), name=args.cluster_tag,
                             opts=names.opts("cluster-tag"))
        tags: list[pulumi.Input[str]] = [COMMON_TAG, cluster_tag.name, *droplets.extra_tags]

        self.machines = {}
        for member in args.members:
            volume = do.Volume(
                names.name(f"{member.name}-data"),
                name=volume_name(args.resource_prefix, member),
                region=droplets.region,
                size=args.data_volume_size_gib,
                # DigitalOcean formats it once, at creation; the user-data never reformats.
                initial_filesystem_type="ext4",
                initial_filesystem_label="etcd-data",
                description=f"etcd data of {member.fqdn}",
                tags=[COMMON_TAG, args.cluster_tag],
                opts=names.opts(f"{member.name}-data", protect=args.protect,
                                depends_on=[cluster_tag]),
            )
            droplet = do.Droplet(
                names.name(member.name),
                name=member.fqdn,
                region=droplets.region,
                size=droplets.size,
                image=droplets.image,
                vpc_uuid=self.vpc_id,
                monitoring=True,
                ipv6=False,
                graceful_shutdown=True,
                ssh_keys=list(droplets.admin_ssh_keys),
                tags=tags,
                user_data=args.user_data[member.name],
                opts=names.opts(member.name, protect=args.protect,
                                ignore_changes=REBUILD_PROPERTIES,
                                replacement_trigger=args.replacement.trigger(member.name),
                                delete_before_replace=True,
                                depends_on=args.replacement.waits_for(member.name)),
            )
            # A volume attaches to one droplet: the old attachment goes first.
            do.VolumeAttachment(
                names.name(f"{member.name}-data-attachment"),
                droplet_id=droplet.id.apply(int),
                volume_id=volume.id,
                opts=names.opts(f"{member.name}-data-attachment", delete_before_replace=True),
            )
            self.machines[member.name] = MemberMachine(
                private_ipv4=droplet.ipv4_address_private,
                public_ipv4=droplet.ipv4_address,
            )

        do.Firewall(
            names.name("firewall"),
            name=f"{args.resource_prefix}-firewall",
            tags=[cluster_tag.name],
            inbound_rules=[
                do.FirewallInboundRuleArgs(
                    protocol="tcp",
                    port_range=str(rule.port),
                    source_tags=list(rule.source_tags) or None,
                    source_addresses=list(rule.source_cidrs) or None,
                )
                for rule in args.firewall_rules
            ],
            # Members fetch packages and the etcd release, and resolve names.
            outbound_rules=[
                do.FirewallOutboundRuleArgs(protocol=protocol, port_range=ports,
                                            destination_addresses=["0.0.0.0/0", "::/0"])
                for protocol, ports in (("tcp", "1-65535"), ("udp", "1-65535"), ("icmp", None))
            ],
            opts=names.opts("firewall"),
        )
        self.register_outputs({
            "vpc_id": self.vpc_id,
            "cluster_tag": cluster_tag.name,
            "private_ipv4": {member: machine.private_ipv4
                             for member, machine in self.machines.items()},
        })
