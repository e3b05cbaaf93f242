"""EtcdCluster: settings in, a secured etcd cluster and what Kubernetes needs out.

Thin wiring over the pure model: topology -> PKI -> user-data -> machines -> DNS -> outputs.
"""

from __future__ import annotations

import datetime
import functools
from typing import Any

import pulumi

from cloudinit.userdata import (
    EtcdRelease,
    MemberPki,
    MemberUserData,
    check_size,
    render_user_data,
)
from components import vm_spec
from components.cloudflare import CloudflareRecords
from components.digitalocean import DigitalOceanMembers, volume_device
from components.nodes import NodeBackend
from components.pki import APISERVER_CLIENT, HEALTHCHECK_CLIENT, OPERATOR_CLIENT, EtcdPki
from components.qemu import QemuMembers
from components.virtualbox import VirtualBoxMembers
from model import consumers, expiry, releases
from model.settings import Settings
from model.topology import Member, Topology, build_topology

BACKENDS: dict[str, type[NodeBackend]] = {
    "digitalocean": DigitalOceanMembers,
    "qemu": QemuMembers,
    "virtualbox": VirtualBoxMembers,
}


def data_device(settings: Settings, member: Member) -> str:
    """Where the member's data disk appears on its machine (the user-data mounts it)."""
    if settings.backend == "digitalocean":
        return volume_device(settings, member)
    return vm_spec.DATA_DEVICES[settings.backend]


class EtcdCluster(pulumi.ComponentResource):
    topology: Topology
    pki: EtcdPki
    user_data: dict[str, pulumi.Output[str]]
    outputs: dict[str, Any]

    def __init__(self, name: str, settings: Settings,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("etcd-cluster:index:EtcdCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.topology = build_topology(settings)
        self.pki = EtcdPki("pki", settings, self.topology, opts=child)
        self.user_data = {
            member.name: self._user_data(settings, member) for member in self.topology.members
        }
        backend = BACKENDS[settings.backend]
        machines = backend("members", settings, self.topology, self.user_data, opts=child).machines
        if settings.uses_cloudflare:
            CloudflareRecords(
                "dns", settings, self.topology,
                {name: machine.private_ipv4 for name, machine in machines.items()}, opts=child)

        apiserver = self.pki.clients[APISERVER_CLIENT]
        operator = self.pki.clients[OPERATOR_CLIENT]
        endpoints = self.topology.client_urls
        self.outputs = {
            "etcd_servers": self.topology.etcd_servers,
            "endpoints": endpoints,
            "ca_pem": self.pki.client_ca.cert_pem,
            "apiserver_client_cert_pem": apiserver.cert_pem,
            "apiserver_client_key_pem": pulumi.Output.secret(apiserver.key_pem),
            "kubeadm_external_etcd": consumers.kubeadm_external_etcd(endpoints),
            "etcdctl_env": pulumi.Output.secret(pulumi.Output.all(
                self.pki.client_ca.cert_pem, operator.cert_pem, operator.key_pem,
            ).apply(lambda pems: consumers.etcdctl_env(settings.cluster_name, endpoints, *pems))),
            "members": [
                {
                    "name": member.name,
                    "fqdn": member.fqdn,
                    "private_ipv4": machines[member.name].private_ipv4,
                    "public_ipv4": machines[member.name].public_ipv4,
                }
                for member in self.topology.members
            ],
            "certificate_expiry": self.pki.expiry_times(),
            "etcd_version": settings.etcd_version,
            "backend": settings.backend,
        }
        self.register_outputs(self.outputs)
        warn_expiring_certificates(settings.cluster_name, self.pki.expiry_times(),
                                   settings.cert_expiry_warning_days)

    def _user_data(self, settings: Settings, member: Member) -> pulumi.Output[str]:
        certs = self.pki.members[member.name]
        healthcheck = self.pki.clients[HEALTHCHECK_CLIENT]
        release = EtcdRelease(
            version=settings.etcd_version,
            url=releases.download_url(settings.etcd_download_url, settings.etcd_version),
            sha256=settings.etcd_sha256,
        )

        def render(pems: list[str]) -> str:
            user_data = render_user_data(MemberUserData(
                member=member,
                topology=self.topology,
                etcd_line=settings.etcd_line,
                tuning=settings.tuning,
                release=release,
                data_device=data_device(settings, member),
                pki=MemberPki(*pems),
                static_hosts=tuple(self.topology.static_hosts),
                install_packages=settings.install_packages,
            ))
            check_size(user_data, [member.name])
            return user_data

        rendered = pulumi.Output.all(
            self.pki.client_ca.cert_pem, self.pki.peer_ca.cert_pem,
            certs.server.cert_pem, certs.server.key_pem,
            certs.peer.cert_pem, certs.peer.key_pem,
            healthcheck.cert_pem, healthcheck.key_pem,
        ).apply(render)
        return pulumi.Output.secret(rendered)


def warn_expiring_certificates(cluster: str, expiry_times: dict[str, pulumi.Output[str]],
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
