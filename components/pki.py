"""The cluster's PKI with pulumi-tls: a client CA and a separate peer CA, and every certificate.

- client CA: signs each member's server certificate (client port 2379) and the client
  certificates (kube-apiserver, operator, health check);
- peer CA: signs each member's peer certificate (port 2380) and nothing else, so no client
  certificate is ever accepted as a peer (etcd 3.4 skips the peer SAN check for a certificate
  without SANs, so a shared CA lets a client certificate in on 2380).
Every private key is a Pulumi secret.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_tls as tls

from model.settings import KeyAlgorithm, Settings
from model.topology import Member, Topology

CA_USES = ["cert_signing", "crl_signing", "digital_signature"]
# Server certs also authenticate as clients: etcd's gRPC gateway dials its own client port with
# the server certificate, and a serverAuth-only certificate breaks it (kubeadm does the same).
SERVER_USES = ["digital_signature", "server_auth", "client_auth"]
PEER_USES = ["digital_signature", "server_auth", "client_auth"]
CLIENT_USES = ["digital_signature", "client_auth"]

APISERVER_CLIENT = "kube-apiserver-etcd-client"
OPERATOR_CLIENT = "etcd-operator"
HEALTHCHECK_CLIENT = "kube-etcd-healthcheck-client"
CLIENT_NAMES = (APISERVER_CLIENT, OPERATOR_CLIENT, HEALTHCHECK_CLIENT)


def key_usages(uses: list[str], algorithm: KeyAlgorithm) -> list[str]:
    """Key encipherment only makes sense for RSA keys (an ECDSA key cannot encrypt)."""
    if algorithm.startswith("rsa"):
        return [*uses, "key_encipherment"]
    return list(uses)


def private_key_args(algorithm: KeyAlgorithm) -> tls.PrivateKeyArgs:
    """pulumi-tls PrivateKey arguments; the curve is always explicit (its default is P224)."""
    family, size = algorithm.split("-")
    if family == "ecdsa":
        return tls.PrivateKeyArgs(algorithm="ECDSA", ecdsa_curve=size.upper())
    return tls.PrivateKeyArgs(algorithm="RSA", rsa_bits=int(size))


@dataclass(frozen=True)
class IssuedCert:
    cert_pem: pulumi.Output[str]
    key_pem: pulumi.Output[str]
    expires_at: pulumi.Output[str]


@dataclass(frozen=True)
class MemberCerts:
    server: IssuedCert
    peer: IssuedCert


class EtcdPki(pulumi.ComponentResource):
    client_ca: IssuedCert
    peer_ca: IssuedCert
    members: dict[str, MemberCerts]
    clients: dict[str, IssuedCert]

    def __init__(self, name: str, settings: Settings, topology: Topology,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("etcd-cluster:index:EtcdPki", name, None, opts)
        self._settings = settings
        self._child = pulumi.ResourceOptions(parent=self)
        cluster = settings.cluster_name

        self.client_ca = self._ca("client-ca", f"etcd-ca ({cluster})")
        self.peer_ca = self._ca("peer-ca", f"etcd-peer-ca ({cluster})")
        self.members = {member.name: self._member_certs(member) for member in topology.members}
        self.clients = {
            client: self._issue(client, self.client_ca, common_name=client, dns_names=[],
                                ip_addresses=[], uses=CLIENT_USES)
            for client in CLIENT_NAMES
        }
        self.register_outputs({
            "client_ca_cert_pem": self.client_ca.cert_pem,
            "peer_ca_cert_pem": self.peer_ca.cert_pem,
        })

    def expiry_times(self) -> dict[str, pulumi.Output[str]]:
        """Every certificate's expiry (RFC 3339), by a stable name."""
        times = {"client-ca": self.client_ca.expires_at, "peer-ca": self.peer_ca.expires_at}
        for name, certs in self.members.items():
            times[f"{name}-server"] = certs.server.expires_at
            times[f"{name}-peer"] = certs.peer.expires_at
        times.update({client: cert.expires_at for client, cert in self.clients.items()})
        return times

    def _key(self, name: str) -> tls.PrivateKey:
        return tls.PrivateKey(f"{name}-key", private_key_args(self._settings.key_algorithm),
                              opts=self._child)

    def _ca(self, name: str, common_name: str) -> IssuedCert:
        key = self._key(name)
        cert = tls.SelfSignedCert(
            f"{name}-cert",
            private_key_pem=key.private_key_pem,
            subject=tls.SelfSignedCertSubjectArgs(common_name=common_name, organization="etcd"),
            is_ca_certificate=True,
            validity_period_hours=self._settings.ca_validity_hours,
            allowed_uses=CA_USES,
            set_subject_key_id=True,
            opts=self._child,
        )
        return IssuedCert(cert.cert_pem, pulumi.Output.secret(key.private_key_pem),
                          cert.validity_end_time)

    def _member_certs(self, member: Member) -> MemberCerts:
        # A static address (local backends) is known now, so clients may dial it and peers are
        # checked against it directly; a cloud address is assigned later and stays out.
        static = [member.static_ipv4] if member.static_ipv4 else []
        server = self._issue(
            f"{member.name}-server", self.client_ca, common_name=member.fqdn,
            dns_names=[member.fqdn, "localhost"], ip_addresses=[*static, "127.0.0.1", "::1"],
            uses=SERVER_USES)
        peer = self._issue(
            f"{member.name}-peer", self.peer_ca, common_name=member.fqdn,
            dns_names=[member.fqdn], ip_addresses=static, uses=PEER_USES)
        return MemberCerts(server=server, peer=peer)

    def _issue(self, name: str, ca: IssuedCert, *, common_name: str, dns_names: list[str],
               ip_addresses: list[str], uses: list[str]) -> IssuedCert:
        key = self._key(name)
        request = tls.CertRequest(
            f"{name}-csr",
            private_key_pem=key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(common_name=common_name, organization="etcd"),
            dns_names=dns_names,
            ip_addresses=ip_addresses,
            opts=self._child,
        )
        cert = tls.LocallySignedCert(
            f"{name}-cert",
            cert_request_pem=request.cert_request_pem,
            ca_private_key_pem=ca.key_pem,
            ca_cert_pem=ca.cert_pem,
            validity_period_hours=self._settings.cert_validity_hours,
            early_renewal_hours=self._settings.cert_early_renewal_hours,
            allowed_uses=key_usages(uses, self._settings.key_algorithm),
            set_subject_key_id=True,
            opts=self._child,
        )
        return IssuedCert(cert.cert_pem, pulumi.Output.secret(key.private_key_pem),
                          cert.validity_end_time)
