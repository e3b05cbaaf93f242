"""EtcdCluster: one cluster's spec in, a secured etcd cluster and what Kubernetes needs out.

Thin wiring over the pure model: topology -> PKI -> user-data -> machines -> DNS -> outputs.
A program may hold several (the stack's main cluster and its events cluster): every child is
named after the cluster (`f"{name}-pki"`), so two never collide.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from cloudinit import member_files, unit
from cloudinit.userdata import (
    MemberPki,
    MemberUserData,
    check_size,
    etcd_service_unit,
    first_boot_only,
    render_user_data,
)
from components import vm_spec
from components.backup_bucket import BackupBucket, BackupCredentials, given_credentials
from components.cloudflare import CloudflareRecords, CloudflareRecordsArgs
from components.digitalocean import DigitalOceanMembers, DigitalOceanMembersArgs, volume_device
from components.local_vms import LocalVm, LocalVmMembersArgs
from components.naming import ChildNames
from components.nodes import MachineReplacement, MemberMachine
from components.pki import (
    APISERVER_CLIENT,
    HEALTHCHECK_CLIENT,
    OPERATOR_CLIENT,
    ClientPki,
    EtcdPki,
    EtcdPkiArgs,
)
from components.qemu import QemuMembers
from components.rollout import MemberRollout, MemberRolloutArgs, replacement_leave
from components.virtualbox import VirtualBoxMembers
from model import backup, consumers, expiry, membership, releases, replacement, rollout
from model.cluster_spec import ClusterSpec
from model.firewall import inbound_rules
from model.topology import Member, Topology, build_topology, possible_members


@dataclass(frozen=True)
class EtcdClusterArgs:
    spec: ClusterSpec
    # The client CA and client certificates to share (an events cluster takes the main
    # cluster's, so kube-apiserver's one set of etcd files works for both); None: its own.
    shared_clients: ClientPki | None = None
    # DigitalOcean: the VPC to join (an events cluster joins the main cluster's); None: the
    # spec's `vpc_id`, or a VPC of its own.
    vpc_id: pulumi.Input[str] | None = None
    # True for the stack's main cluster: stacks created before resources were named after their
    # cluster keep their URNs (aliases), so no member is replaced by the rename.
    keep_unprefixed_names: bool = False
    # Who founds the cluster and who joins it (components/stack.py reads it from the stack's
    # record); None: every member founds it (a new cluster).
    membership: membership.MembershipPlan | None = None
    # What the stack's last update recorded the cluster was created from (`restored_from`).
    restored_from: str | None = None


class EtcdCluster(pulumi.ComponentResource):
    spec: ClusterSpec
    topology: Topology
    membership: membership.MembershipPlan
    pki: EtcdPki
    user_data: dict[str, pulumi.Output[str]]
    # The member files' archive (cloudinit/member_files.py); secret with backups (it carries
    # their credentials).
    member_files: pulumi.Output[str]
    # The snapshot this update restores the new cluster from; None: none.
    restoring: backup.RestoreSpec | None
    # What the cluster was created from (`restoreFrom` when it was), for the record.
    restored_from: str | None
    machines: dict[str, MemberMachine]
    # DigitalOcean: the VPC the members are in; None on the local backends.
    vpc_id: pulumi.Output[str] | None
    outputs: dict[str, Any]

    def __init__(self, name: str, args: EtcdClusterArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("etcd-cluster:index:EtcdCluster", name, None, opts)
        spec = args.spec
        keep = args.keep_unprefixed_names
        names = ChildNames(self, name, keep)
        self.spec = spec
        self.topology = build_topology(spec)
        self.membership = args.membership or membership.membership_plan(
            None, None, [member.name for member in self.topology.members])
        self.pki = EtcdPki(names.name("pki"), EtcdPkiArgs(
            cluster_name=spec.name, topology=self.topology, tls=spec.tls,
            shared_clients=args.shared_clients, keep_unprefixed_names=keep,
            deploy_key=spec.rollout.enabled, protect_cas=spec.protect_members,
        ), opts=names.opts("pki"))
        self.restoring, self.restored_from = self._restore(args.restored_from)
        self.member_files = self._member_files(names)
        self.user_data = {
            member.name: self._user_data(member) for member in self.topology.members
        }
        self.vpc_id = None
        replacement_leave = self._replacement_leave(names)
        self.machines = self._machines(names.name("members"), args, names.opts("members"),
                                       MachineReplacement(
                                           generations=self.membership.generations,
                                           after=replacement_leave))
        records = None
        if spec.dns_records is not None:
            records = CloudflareRecords(names.name("dns"), CloudflareRecordsArgs(
                records=spec.dns_records,
                members=self.topology.members,
                addresses={member: machine.private_ipv4
                           for member, machine in self.machines.items()},
                dns_domain=self.topology.dns_domain,
                owner=f"{spec.name} ({spec.stack})",
                keep_unprefixed_names=keep,
            ), opts=names.opts("dns"))
        self._rollout(name, after=[records] if records is not None else [])

        self.outputs = self._outputs()
        self.register_outputs(self.outputs)
        warn_expiring_certificates(spec.name, self.pki.expiry_times(),
                                   spec.tls.expiry_warning_days)
        production_warning = releases.production_warning(spec.release.version)
        if production_warning is not None:
            pulumi.log.warn(f"etcd cluster {spec.name}: {production_warning}", self)
        if self.restoring is not None and self.restoring.bump_skipped is not None:
            pulumi.log.warn(f"etcd cluster {spec.name}: {self.restoring.bump_skipped}", self)

    def _restore(self, recorded: str | None) -> tuple[backup.RestoreSpec | None, str | None]:
        """The restore this update makes (only a new cluster starts from a snapshot), and what
        the cluster was created from: this restore, or a running cluster's record."""
        restore = self.spec.restore
        if not self.membership.running:
            return restore, restore.text if restore is not None else None
        if restore is not None and restore.text != recorded:
            pulumi.log.warn(backup.running_cluster_warning(self.spec.name, restore.text), self)
        return None, recorded

    def _member_files(self, names: ChildNames) -> pulumi.Output[str]:
        """The archive every member's files come from: at first boot and by the files step."""
        spec = self.spec
        defrag = spec.maintenance.defrag_schedule
        if spec.backup is None:
            return pulumi.Output.from_input(
                member_files.archive(member_files.member_files(None, None, defrag)))
        settings = spec.backup
        credentials = self._backup_credentials(names)

        def archive(values: list[str]) -> str:
            access_key_id, secret_access_key = values
            environment = backup.backup_environment(settings, spec.name, access_key_id,
                                                    secret_access_key)
            return member_files.archive(member_files.member_files(
                environment, settings.schedule, defrag))

        return pulumi.Output.secret(pulumi.Output.all(
            credentials.access_key_id, credentials.secret_access_key).apply(archive))

    def _backup_credentials(self, names: ChildNames) -> BackupCredentials:
        settings = self.spec.backup
        assert settings is not None
        if not settings.create_bucket:
            return given_credentials(settings)
        bucket = BackupBucket(names.name("backups"), settings, self.spec.droplets.region,
                              opts=pulumi.ResourceOptions(parent=self))
        return bucket.credentials

    def _replacement_leave(self, names: ChildNames) -> dict[str, list[pulumi.Resource]]:
        """The leave of the member whose machine this update replaces, on a member that stays
        (model/replacement.py); per member name, what its machine's replacement waits for. The
        step stays registered, unchanged, while the setting still names a member an earlier
        update replaced."""
        replacing = self.membership.replaced
        if replacing is None:
            return {}
        assert self.pki.deploy_key is not None, "a replacement without the rollout was refused"
        members = {member.name: member for member in self.topology.members}
        runs_on = replacement.stays_to_run_the_leave(replacing, list(members))
        private, public = self.membership.addresses.get(runs_on, (None, None))
        address = public if self.spec.rollout.via == "public" else private
        if address is None:
            raise ValueError(f"the stack records no address of {runs_on}, which would run the "
                             f"leave of {replacing}: run `pulumi up` once without "
                             "replaceMember (it records the members' addresses)")
        leave = replacement_leave(
            names.name(f"{replacing}-replacement-leave"), members[replacing], address,
            self.pki.deploy_key.private_key_openssh, self.spec.rollout.bastion,
            names.opts(f"{replacing}-replacement-leave"))
        return {replacing: [leave]}

    def _machines(self, name: str, args: EtcdClusterArgs, opts: pulumi.ResourceOptions,
                  replacement: MachineReplacement) -> dict[str, MemberMachine]:
        spec = args.spec
        if spec.backend == "digitalocean":
            members = DigitalOceanMembers(name, DigitalOceanMembersArgs(
                members=self.topology.members,
                user_data=self.user_data,
                droplets=spec.droplets,
                resource_prefix=spec.resource_prefix,
                cluster_tag=spec.cluster_tag,
                description=f"etcd cluster {spec.name} ({spec.stack})",
                data_volume_size_gib=spec.data_volume_size_gib,
                protect=spec.protect_members,
                firewall_rules=tuple(inbound_rules(spec)),
                vpc_id=args.vpc_id,
                keep_unprefixed_names=args.keep_unprefixed_names,
                replacement=replacement,
            ), opts=opts)
            self.vpc_id = members.vpc_id
            return members.machines
        local_args = LocalVmMembersArgs(
            vms={member.name: LocalVm(address=vm_spec.static_ipv4(spec, member),
                                      environment=vm_spec.environment(spec, member))
                 for member in self.topology.members},
            scripts=vm_spec.scripts(spec.backend),
            user_data=self.user_data,
            protect=spec.protect_members,
            keep_unprefixed_names=args.keep_unprefixed_names,
            replacement=replacement,
        )
        if spec.backend == "qemu":
            return QemuMembers(name, local_args, opts=opts).machines
        return VirtualBoxMembers(name, local_args, opts=opts).machines

    def _rollout(self, name: str, after: list[pulumi.Resource]) -> None:
        """Members leave, new members join, then renewed certificates, a new etcd release and changed flags
        reach running members, one at a time (components/rollout.py)."""
        spec = self.spec
        if self.pki.deploy_key is None:
            # A grow without the rollout was refused (components/stack.py); members that
            # joined earlier need nothing more.
            pulumi.log.warn(rollout.not_configured_warning(spec.name), self)
            return
        via_public = spec.rollout.via == "public"
        addresses = {}
        for member_name, machine in self.machines.items():
            address = machine.public_ipv4 if via_public else machine.private_ipv4
            if address is None:
                raise ValueError(f"{member_name} has no public address to roll out to")
            addresses[member_name] = address
        release = spec.release
        members = {member.name: member for member in self.topology.members}
        possible = {member.name: member for member in possible_members(spec)}
        MemberRollout(f"{name}-rollout", MemberRolloutArgs(
            members=self.topology.members,
            leaving=tuple(possible[leaver] for leaver in self.membership.leavers),
            joining=tuple(members[joiner] for joiner in self.membership.joiners),
            generations=self.membership.generations,
            # Not the replaced member's: it has left.
            join_endpoints=[members[running].client_url for running in self.membership.running
                            if running in members and running != self.membership.replacing],
            after=after,
            addresses=addresses,
            bundles={member.name: self._certificate_bundle(member)
                     for member in self.topology.members},
            units={member.name: etcd_service_unit(member, self.topology, spec.etcd_line,
                                                  spec.tuning)
                   for member in self.topology.members},
            member_files=self.member_files,
            check_backups=spec.backup is not None,
            configuration_command=rollout.configuration_step(
                len(self.topology.members), release.version, release.url, release.sha256,
                releases.previous_line_minimum(release.version)),
            deploy_key=self.pki.deploy_key.private_key_openssh,
            bastion=spec.rollout.bastion,
            expected_members=len(self.topology.members),
        ), opts=pulumi.ResourceOptions(parent=self))

    def _certificate_bundle(self, member: Member) -> pulumi.Output[str]:
        certs = self.pki.members[member.name]
        bundle = pulumi.Output.all(
            certs.server.cert_pem, certs.server.key_pem, certs.peer.cert_pem, certs.peer.key_pem,
        ).apply(lambda pems: rollout.certificate_bundle(*pems))
        return pulumi.Output.secret(bundle)

    def _data_device(self, member: Member) -> str:
        """Where the member's data disk appears on its machine (the user-data mounts it)."""
        if self.spec.backend == "digitalocean":
            return volume_device(self.spec.resource_prefix, member)
        return vm_spec.DATA_DEVICES[self.spec.backend]

    def _user_data(self, member: Member) -> pulumi.Output[str]:
        spec = self.spec
        certs = self.pki.members[member.name]
        healthcheck = self.pki.clients[HEALTHCHECK_CLIENT]

        def render(values: list[str | None]) -> str:
            *pems, rollout_public_key, archive, created_at = values
            restore_commands: tuple[tuple[str, ...], ...] = ()
            if self.restoring is not None:
                restore_commands = tuple(tuple(command) for command in backup.restore_commands(
                    self.restoring, f"{unit.SBIN}/etcd-backup", f"{unit.SBIN}/etcd-restore",
                    created_at or ""))
            user_data = render_user_data(MemberUserData(
                member=member,
                topology=self.topology,
                etcd_line=spec.etcd_line,
                tuning=spec.tuning,
                release=spec.release,
                data_device=self._data_device(member),
                pki=MemberPki(*(pem or "" for pem in pems)),
                static_hosts=self.topology.reserved_static_hosts,
                install_packages=spec.install_packages,
                rollout_public_key=rollout_public_key,
                founders=self.membership.founders,
                member_files_archive=archive or "",
                backups=spec.backup is not None,
                restore_commands=restore_commands,
            ))
            check_size(user_data, member.fqdn, spec.backend)
            return user_data

        rendered = pulumi.Output.all(
            self.pki.client_ca.cert_pem, self.pki.peer_ca.cert_pem,
            certs.server.cert_pem, certs.server.key_pem,
            certs.peer.cert_pem, certs.peer.key_pem,
            healthcheck.cert_pem, healthcheck.key_pem,
            (self.pki.deploy_key.public_key_openssh if self.pki.deploy_key
             else pulumi.Output.from_input(None)),
            self.member_files,
            # The cluster's creation: a restore of `latest` takes the newest snapshot before it.
            self.pki.peer_ca.issued_at,
        ).apply(render)
        # The one place user-data becomes secret: it holds the member's private keys.
        return pulumi.Output.secret(rendered)

    def _outputs(self) -> dict[str, Any]:
        spec = self.spec
        apiserver = self.pki.clients[APISERVER_CLIENT]
        operator = self.pki.clients[OPERATOR_CLIENT]
        endpoints = self.topology.client_urls
        return {
            "etcd_servers": self.topology.etcd_servers,
            "endpoints": endpoints,
            "ca_pem": self.pki.client_ca.cert_pem,
            "apiserver_client_cert_pem": apiserver.cert_pem,
            "apiserver_client_key_pem": pulumi.Output.secret(apiserver.key_pem),
            "kubeadm_external_etcd": consumers.kubeadm_external_etcd(endpoints),
            "etcdctl_env": pulumi.Output.secret(pulumi.Output.all(
                self.pki.client_ca.cert_pem, operator.cert_pem, operator.key_pem,
            ).apply(lambda pems: consumers.etcdctl_env(spec.name, endpoints, *pems))),
            # What the next run reads back as the running members (model/membership.py).
            membership.MEMBERS_OUTPUT: [
                {
                    "name": member.name,
                    "fqdn": member.fqdn,
                    "private_ipv4": self.machines[member.name].private_ipv4,
                    "public_ipv4": self.machines[member.name].public_ipv4,
                    membership.GENERATION: self.membership.generations.get(member.name, 0),
                }
                for member in self.topology.members
            ],
            # The member replaceMember named when this update ran (model/replacement.py): the
            # next run replaces it only if the setting changed since.
            replacement.REPLACED_OUTPUT: (spec.rollout.replace_member
                                          if spec.rollout.replace_member in
                                          [member.name for member in self.topology.members]
                                          else None),
            # The members that founded the cluster (the others joined it): what the next run
            # reads back to tell founders from joiners.
            membership.FOUNDERS_OUTPUT: list(self.membership.founders),
            "certificate_expiry": self.pki.expiry_times(),
            "etcd_version": spec.release.version,
            "backend": spec.backend,
            "cluster_name": spec.name,
            # DigitalOcean: what consumers wire up: their droplets in this VPC, carrying one of
            # the client tags the firewall admits to the client port; the members' own tag.
            # None on the local backends.
            "vpc_id": self.vpc_id,
            "client_source_tags": (list(spec.access.client_source_tags)
                                   if spec.backend == "digitalocean" else None),
            "cluster_tag": spec.cluster_tag if spec.backend == "digitalocean" else None,
            # What no rollout puts on running members: a change here shows at preview as a
            # changed output, and reaches new (or replaced) members only.
            "new_members_only": first_boot_only(spec.install_packages, spec.backup is not None),
            # What the files step installs on every member (path -> SHA-256): a change here
            # shows at preview as a changed output. The backup settings show as `secret`, so
            # a stand-in takes the place of their content.
            "member_files": member_files.manifest(member_files.member_files(
                member_files.SECRET if spec.backup else None,
                spec.backup.schedule if spec.backup else None,
                spec.maintenance.defrag_schedule)),
            # Where the snapshots go: what another stack's restoreFrom takes.
            "backup_location": spec.backup.location(spec.name).url if spec.backup else None,
            "backup_schedule": spec.backup.schedule if spec.backup else None,
            # What the cluster was created from (restoreFrom when it was created), kept after.
            backup.RESTORED_OUTPUT: self.restored_from,
        }


def warn_expiring_certificates(cluster: str, expiry_times: Mapping[str, pulumi.Output[str]],
                               warning_days: int) -> None:
    """`pulumi.log.warn` for each certificate that expires within `warning_days`.

    One apply per certificate: an apply runs only once its value is known, so at preview a
    certificate that is not created yet (expiry unknown) is skipped without holding back the
    warnings for the certificates that exist.
    """
    if warning_days <= 0:
        return
    now = datetime.datetime.now(datetime.timezone.utc)
    for name, expires_at in expiry_times.items():
        expires_at.apply(functools.partial(_warn_if_expiring, cluster, name, now, warning_days))


def _warn_if_expiring(cluster: str, name: str, now: datetime.datetime, warning_days: int,
                      expires_at: str | None) -> None:
    for cert in expiry.expiring({name: expires_at}, now, warning_days):
        pulumi.log.warn(expiry.warning_message(cluster, cert, warning_days))
