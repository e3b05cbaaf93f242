"""The cluster's PKI with pulumi-tls: a client CA and a separate peer CA, and every certificate.

- client CA: signs each member's server certificate (client port 2379) and the client
  certificates (kube-apiserver, operator, health check);
- peer CA: signs each member's peer certificate (port 2380) and nothing else, so no client
  certificate is ever accepted as a peer (etcd 3.4 skips the peer SAN check for a certificate
  without SANs, so a shared CA lets a client certificate in on 2380).
Every private key is a Pulumi secret.

An events cluster shares the main cluster's client side (`ClientPki`): kube-apiserver has one
`--etcd-cafile`/`--etcd-certfile`/`--etcd-keyfile` for every etcd server, overrides included, so
the events members' server certificates are signed by the main client CA and accept the same
client certificates. Its peers have a peer CA of their own: no main member can join it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_tls as tls

from components.naming import ChildNames
from model.cluster_spec import TlsSpec
from model.settings import KeyAlgorithm
from model.topology import Member, Topology

CA_USES = ["cert_signing", "crl_signing", "digital_signature"]
# A CA key's inputs that would replace it (and so every member's trust): kept as first issued.
CA_KEY_FIXED = ["algorithm", "ecdsa_curve", "rsa_bits"]
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
    # When it was issued (RFC 3339): a cluster's peer CA dates the cluster's creation.
    issued_at: pulumi.Output[str]


@dataclass(frozen=True)
class MemberCerts:
    server: IssuedCert
    peer: IssuedCert


@dataclass(frozen=True)
class ClientPki:
    """The client CA and the client certificates it signed: what an events cluster shares."""

    ca: IssuedCert
    clients: dict[str, IssuedCert]


@dataclass(frozen=True)
class EtcdPkiArgs:
    cluster_name: str
    topology: Topology
    tls: TlsSpec
    # Another cluster's client CA and clients to use; None: this PKI makes its own.
    shared_clients: ClientPki | None = None
    # Stacks created before resources were named after their component keep their URNs.
    keep_unprefixed_names: bool = False
    # Issue an SSH deploy key for day-2 rollouts (rolloutVia is not none).
    deploy_key: bool = False
    # Protect the CAs' keys and certificates (protectMembers): a new CA is refused at preview.
    protect_cas: bool = False


@dataclass(frozen=True)
class DeployKey:
    """The SSH key day-2 rollouts log in with: the private half a secret, the public in user-data."""

    private_key_openssh: pulumi.Output[str]
    public_key_openssh: pulumi.Output[str]


class EtcdPki(pulumi.ComponentResource):
    client_ca: IssuedCert
    peer_ca: IssuedCert
    members: dict[str, MemberCerts]
    clients: dict[str, IssuedCert]
    # Whether the client CA and clients are this PKI's own (not shared from another cluster).
    owns_clients: bool
    deploy_key: DeployKey | None

    def __init__(self, name: str, args: EtcdPkiArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("etcd-cluster:index:EtcdPki", name, None, opts)
        self._tls = args.tls
        self._protect_cas = args.protect_cas
        self._names = ChildNames(self, name, args.keep_unprefixed_names)
        cluster = args.cluster_name

        self.owns_clients = args.shared_clients is None
        if args.shared_clients is None:
            self.client_ca = self._ca("client-ca", f"etcd-ca ({cluster})")
        else:
            self.client_ca = args.shared_clients.ca
        self.peer_ca = self._ca("peer-ca", f"etcd-peer-ca ({cluster})")
        self.members = {member.name: self._member_certs(member)
                        for member in args.topology.members}
        if args.shared_clients is None:
            self.clients = {
                client: self._issue(client, self.client_ca, common_name=client, dns_names=[],
                                    ip_addresses=[], uses=CLIENT_USES)
                for client in CLIENT_NAMES
            }
        else:
            self.clients = args.shared_clients.clients
        self.deploy_key = None
        if args.deploy_key:
            key = tls.PrivateKey(self._names.name("rollout-deploy-key"), algorithm="ED25519",
                                 opts=self._names.opts("rollout-deploy-key"))
            self.deploy_key = DeployKey(
                private_key_openssh=pulumi.Output.secret(key.private_key_openssh),
                public_key_openssh=key.public_key_openssh)
        self.register_outputs({
            "client_ca_cert_pem": self.client_ca.cert_pem,
            "peer_ca_cert_pem": self.peer_ca.cert_pem,
            "certificate_expiry": self.expiry_times(),
        })

    @property
    def client_pki(self) -> ClientPki:
        return ClientPki(ca=self.client_ca, clients=self.clients)

    def expiry_times(self) -> dict[str, pulumi.Output[str]]:
        """The expiry (RFC 3339) of every certificate this PKI issued, by a stable name.

        Shared client certificates are the other cluster's to report.
        """
        times: dict[str, pulumi.Output[str]] = {}
        if self.owns_clients:
            times["client-ca"] = self.client_ca.expires_at
        times["peer-ca"] = self.peer_ca.expires_at
        for name, certs in self.members.items():
            times[f"{name}-server"] = certs.server.expires_at
            times[f"{name}-peer"] = certs.peer.expires_at
        if self.owns_clients:
            times.update({client: cert.expires_at for client, cert in self.clients.items()})
        return times

    def _key(self, name: str, opts: pulumi.ResourceOptions | None = None) -> tls.PrivateKey:
        return tls.PrivateKey(self._names.name(f"{name}-key"),
                              private_key_args(self._tls.key_algorithm),
                              opts=opts or self._names.opts(f"{name}-key"))

    def _ca(self, name: str, common_name: str) -> IssuedCert:
        # Running members trust only the CAs they booted with, and this program rolls out
        # certificates, not CAs: a new CA key would make every member's next certificate
        # untrusted. So a changed keyAlgorithm applies to member and client keys only, and a CA
        # that would be replaced (expired, renamed) is refused at preview when protected.
        key = self._key(name, self._names.opts(f"{name}-key", protect=self._protect_cas,
                                               ignore_changes=CA_KEY_FIXED))
        cert = tls.SelfSignedCert(
            self._names.name(f"{name}-cert"),
            private_key_pem=key.private_key_pem,
            subject=tls.SelfSignedCertSubjectArgs(common_name=common_name, organization="etcd"),
            is_ca_certificate=True,
            validity_period_hours=self._tls.ca_validity_hours,
            allowed_uses=CA_USES,
            set_subject_key_id=True,
            opts=self._names.opts(f"{name}-cert", protect=self._protect_cas),
        )
        return IssuedCert(cert.cert_pem, pulumi.Output.secret(key.private_key_pem),
                          cert.validity_end_time, cert.validity_start_time)

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
            self._names.name(f"{name}-csr"),
            private_key_pem=key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(common_name=common_name, organization="etcd"),
            dns_names=dns_names,
            ip_addresses=ip_addresses,
            opts=self._names.opts(f"{name}-csr"),
        )
        cert = tls.LocallySignedCert(
            self._names.name(f"{name}-cert"),
            cert_request_pem=request.cert_request_pem,
            ca_private_key_pem=ca.key_pem,
            ca_cert_pem=ca.cert_pem,
            validity_period_hours=self._tls.cert_validity_hours,
            early_renewal_hours=self._tls.cert_early_renewal_hours,
            allowed_uses=key_usages(uses, self._tls.key_algorithm),
            set_subject_key_id=True,
            opts=self._names.opts(f"{name}-cert"),
        )
        return IssuedCert(cert.cert_pem, pulumi.Output.secret(key.private_key_pem),
                          cert.validity_end_time, cert.validity_start_time)
