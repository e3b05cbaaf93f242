"""The cluster's PKI, checked for real: the tls mock makes real keys and certificates, and these
tests validate them with `cryptography` (path validation, SANs, key usages, key pairs).

Trust model (components/pki.py): a client CA signs member server certificates and client
certificates; a separate peer CA signs member peer certificates and nothing else.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from typing import Any

import pytest
import yaml
from cloud_config import write_file_contents
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from program import (
    CERT_REQUEST,
    LOCALLY_SIGNED_CERT,
    PRIVATE_KEY,
    SELF_SIGNED_CERT,
    ProgramRun,
)

from cloudinit.etcd_flags import DEFAULT_PATHS

MEMBERS = ("etcd-1", "etcd-2", "etcd-3")
CLIENTS = ("kube-apiserver-etcd-client", "etcd-operator", "kube-etcd-healthcheck-client")
SERVER_AUTH, CLIENT_AUTH = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
KEY_USAGE_FIELDS = ("digital_signature", "content_commitment", "key_encipherment",
                    "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign")


@pytest.fixture(scope="module")
def run(program: Any) -> ProgramRun:
    result: ProgramRun = program()
    return result


@pytest.fixture(scope="module")
def certs(run: ProgramRun) -> dict[str, x509.Certificate]:
    return run.certificates


def fqdn(member: str) -> str:
    return f"{member}.main.example.com"


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def server_verifier(ca: x509.Certificate, name: x509.DNSName | x509.IPAddress) -> Any:
    return PolicyBuilder().store(Store([ca])).time(now()).build_server_verifier(name)


def client_verifier(ca: x509.Certificate) -> Any:
    return PolicyBuilder().store(Store([ca])).time(now()).build_client_verifier()


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """Whether `ca`'s key made `cert`'s signature (names aside)."""
    key = ca.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            assert cert.signature_hash_algorithm is not None
            key.verify(cert.signature, cert.tbs_certificate_bytes,
                       ec.ECDSA(cert.signature_hash_algorithm))
        elif isinstance(key, rsa.RSAPublicKey):
            assert cert.signature_hash_algorithm is not None
            key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                       cert.signature_hash_algorithm)
        else:
            raise AssertionError(f"unexpected CA key {type(key).__name__}")
    except InvalidSignature:
        return False
    return True


def chains_to(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def key_usage(cert: x509.Certificate) -> set[str]:
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    return {name for name in KEY_USAGE_FIELDS if getattr(usage.value, name)}


def extended_key_usage(cert: x509.Certificate) -> set[x509.ObjectIdentifier]:
    try:
        return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return set()


def sans(cert: x509.Certificate) -> set[str]:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(name.value) for name in names}


def common_name(cert: x509.Certificate) -> str:
    (attribute,) = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attribute.value)


def spki(key: Any) -> bytes:
    data: bytes = key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    return data


def load_key(pem: str) -> Any:
    return serialization.load_pem_private_key(pem.encode(), password=None)


def member_files(run: ProgramRun, member: str) -> dict[str, str]:
    return write_file_contents(run.user_data[member])


# --- chains --------------------------------------------------------------------------------

@pytest.mark.parametrize("member", MEMBERS)
def test_server_certificate_chains_to_the_client_ca_for_every_name_clients_use(
        certs: dict[str, x509.Certificate], member: str) -> None:
    cert, ca = certs[f"{member}-server-cert"], certs["client-ca-cert"]
    for name in (x509.DNSName(fqdn(member)), x509.DNSName("localhost"),
                 x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                 x509.IPAddress(ipaddress.ip_address("::1"))):
        chain = server_verifier(ca, name).verify(cert, [])
        assert chain[-1] == ca
    # etcd's gRPC gateway dials its own client port with the server certificate.
    client_verifier(ca).verify(cert, [])


@pytest.mark.parametrize("member", MEMBERS)
def test_peer_certificate_chains_to_the_peer_ca_as_server_and_as_client(
        certs: dict[str, x509.Certificate], member: str) -> None:
    cert, ca = certs[f"{member}-peer-cert"], certs["peer-ca-cert"]
    server_verifier(ca, x509.DNSName(fqdn(member))).verify(cert, [])
    client_verifier(ca).verify(cert, [])


@pytest.mark.parametrize("member", MEMBERS)
def test_peer_certificate_is_not_trusted_by_the_client_ca(
        certs: dict[str, x509.Certificate], member: str) -> None:
    cert, client_ca = certs[f"{member}-peer-cert"], certs["client-ca-cert"]
    assert not signed_by(cert, client_ca)
    assert not chains_to(cert, client_ca)
    with pytest.raises(VerificationError):
        server_verifier(client_ca, x509.DNSName(fqdn(member))).verify(cert, [])


@pytest.mark.parametrize("name", [*(f"{m}-server-cert" for m in MEMBERS),
                                  *(f"{c}-cert" for c in CLIENTS)])
def test_server_and_client_certificates_are_not_trusted_by_the_peer_ca(
        certs: dict[str, x509.Certificate], name: str) -> None:
    # With one shared CA, etcd 3.4 accepted a kube-apiserver client certificate on port 2380.
    assert not signed_by(certs[name], certs["peer-ca-cert"])
    assert not chains_to(certs[name], certs["peer-ca-cert"])


@pytest.mark.parametrize("client", CLIENTS)
def test_client_certificates_are_signed_by_the_client_ca(
        certs: dict[str, x509.Certificate], client: str) -> None:
    cert = certs[f"{client}-cert"]
    assert chains_to(cert, certs["client-ca-cert"])
    assert signed_by(cert, certs["client-ca-cert"])
    assert cert.not_valid_before_utc <= now() < cert.not_valid_after_utc


def test_the_two_cas_are_self_signed_with_distinct_keys_and_names(
        certs: dict[str, x509.Certificate]) -> None:
    client_ca, peer_ca = certs["client-ca-cert"], certs["peer-ca-cert"]
    for ca in (client_ca, peer_ca):
        assert chains_to(ca, ca)
    assert spki(client_ca.public_key()) != spki(peer_ca.public_key())
    assert client_ca.subject != peer_ca.subject
    assert common_name(client_ca) == "etcd-ca (main)"
    assert common_name(peer_ca) == "etcd-peer-ca (main)"


# --- names ---------------------------------------------------------------------------------

@pytest.mark.parametrize("member", MEMBERS)
def test_server_certificate_names_the_member_fqdn_and_localhost(
        certs: dict[str, x509.Certificate], member: str) -> None:
    cert = certs[f"{member}-server-cert"]
    assert sans(cert) == {fqdn(member), "localhost", "127.0.0.1", "::1"}
    assert common_name(cert) == fqdn(member)


@pytest.mark.parametrize("member", MEMBERS)
def test_peer_certificate_names_only_the_member_fqdn(
        certs: dict[str, x509.Certificate], member: str) -> None:
    cert = certs[f"{member}-peer-cert"]
    assert sans(cert) == {fqdn(member)}
    assert common_name(cert) == fqdn(member)


@pytest.mark.parametrize("client", CLIENTS)
def test_client_certificates_are_named_by_common_name_only(
        certs: dict[str, x509.Certificate], client: str) -> None:
    cert = certs[f"{client}-cert"]
    assert common_name(cert) == client
    assert sans(cert) == set()


# --- key usages ----------------------------------------------------------------------------

EXPECTED_USAGES = {
    # kind: (key usage, extended key usage, is CA)
    "ca": ({"digital_signature", "key_cert_sign", "crl_sign"}, set(), True),
    "server": ({"digital_signature"}, {SERVER_AUTH, CLIENT_AUTH}, False),
    "peer": ({"digital_signature"}, {SERVER_AUTH, CLIENT_AUTH}, False),
    "client": ({"digital_signature"}, {CLIENT_AUTH}, False),
}


def certificates_of_kind(kind: str, members: tuple[str, ...] = MEMBERS) -> list[str]:
    if kind == "ca":
        return ["client-ca-cert", "peer-ca-cert"]
    if kind == "client":
        return [f"{client}-cert" for client in CLIENTS]
    return [f"{member}-{kind}-cert" for member in members]


@pytest.mark.parametrize("kind", EXPECTED_USAGES)
def test_key_usages_are_exactly_those_each_role_needs(
        certs: dict[str, x509.Certificate], kind: str) -> None:
    usage, extended, is_ca = EXPECTED_USAGES[kind]
    for name in certificates_of_kind(kind):
        cert = certs[name]
        assert key_usage(cert) == usage, name
        assert extended_key_usage(cert) == extended, name
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert constraints.critical, name
        assert constraints.value.ca is is_ca, name


def test_keys_are_ecdsa_p256_by_default(run: ProgramRun,
                                        certs: dict[str, x509.Certificate]) -> None:
    for key in run.of_type(PRIVATE_KEY):
        assert (key.inputs["algorithm"], key.inputs["ecdsaCurve"]) == ("ECDSA", "P256"), key.name
    for name, cert in certs.items():
        public_key = cert.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey), name
        assert isinstance(public_key.curve, ec.SECP256R1), name
        assert isinstance(cert.signature_hash_algorithm, hashes.SHA256), name
        assert "key_encipherment" not in key_usage(cert), name


def test_rsa_keys_add_key_encipherment_to_leaf_certificates_only(program: Any) -> None:
    run = program({"keyAlgorithm": "rsa-2048", "memberCount": 1})
    for key in run.of_type(PRIVATE_KEY):
        assert (key.inputs["algorithm"], key.inputs["rsaBits"]) == ("RSA", 2048), key.name
    certs = run.certificates
    for name, cert in certs.items():
        public_key = cert.public_key()
        assert isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size == 2048, name
    for kind, (usage, extended, _) in EXPECTED_USAGES.items():
        expected = usage if kind == "ca" else usage | {"key_encipherment"}
        for name in certificates_of_kind(kind, ("etcd-1",)):
            assert key_usage(certs[name]) == expected, name
            assert extended_key_usage(certs[name]) == extended, name
    client_ca = certs["client-ca-cert"]
    server_verifier(client_ca, x509.DNSName(fqdn("etcd-1"))).verify(certs["etcd-1-server-cert"], [])


def test_ecdsa_p384_is_used_when_asked(program: Any) -> None:
    run = program({"keyAlgorithm": "ecdsa-p384", "memberCount": 1})
    for name, cert in run.certificates.items():
        public_key = cert.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey), name
        assert isinstance(public_key.curve, ec.SECP384R1), name


def test_every_key_is_distinct_and_each_certificate_carries_its_own_key(
        run: ProgramRun, certs: dict[str, x509.Certificate]) -> None:
    keys = {name.removesuffix("-key"): spki(load_key(pem).public_key())
            for name, pem in run.private_key_pems.items()}
    assert len(set(keys.values())) == len(keys) == 2 + 2 * len(MEMBERS) + len(CLIENTS)
    for name, cert in certs.items():
        assert spki(cert.public_key()) == keys[name.removesuffix("-cert")], name


# --- validity -------------------------------------------------------------------------------

def test_validity_periods_follow_the_settings(program: Any) -> None:
    run = program({"memberCount": 1, "caValidityHours": 2000, "certValidityHours": 300,
                   "certEarlyRenewalHours": 48})
    for name, cert in run.certificates.items():
        hours = 2000 if name in ("client-ca-cert", "peer-ca-cert") else 300
        assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(
            hours=hours), name
        assert abs(cert.not_valid_before_utc - now()) < datetime.timedelta(minutes=10), name
    for signed in run.of_type(LOCALLY_SIGNED_CERT):
        assert signed.inputs["earlyRenewalHours"] == 48, signed.name


def test_default_validity_is_ten_years_for_cas_and_one_year_for_leaves(
        certs: dict[str, x509.Certificate]) -> None:
    for name, cert in certs.items():
        hours = 87600 if name in ("client-ca-cert", "peer-ca-cert") else 8760
        assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(
            hours=hours), name


# --- secrecy of keys -------------------------------------------------------------------------

def test_private_keys_only_travel_as_secrets(run: ProgramRun) -> None:
    for key in run.of_type(PRIVATE_KEY):
        assert "privateKeyPem" in key.additional_secret_outputs, key.name
    for resource in [*run.of_type(SELF_SIGNED_CERT), *run.of_type(CERT_REQUEST)]:
        assert "privateKeyPem" in resource.secret_inputs, resource.name
    for signed in run.of_type(LOCALLY_SIGNED_CERT):
        assert "caPrivateKeyPem" in signed.secret_inputs, signed.name
        assert "caCertPem" not in signed.secret_inputs, signed.name


# --- what each member gets in its user-data --------------------------------------------------

@pytest.mark.parametrize("member", MEMBERS)
def test_user_data_carries_the_certificates_the_pki_issued(
        run: ProgramRun, member: str) -> None:
    files = member_files(run, member)
    pems = {name: reg.outputs["certPem"] for name, reg in
            {**run.named(SELF_SIGNED_CERT), **run.named(LOCALLY_SIGNED_CERT)}.items()
            if reg.outputs is not None}
    paths = DEFAULT_PATHS
    assert files[paths.client_ca] == pems["client-ca-cert"]
    assert files[paths.peer_ca] == pems["peer-ca-cert"]
    assert files[paths.server_cert] == pems[f"{member}-server-cert"]
    assert files[paths.peer_cert] == pems[f"{member}-peer-cert"]
    assert files[paths.healthcheck_cert] == pems["kube-etcd-healthcheck-client-cert"]


@pytest.mark.parametrize("member", MEMBERS)
def test_user_data_key_files_match_their_certificates(run: ProgramRun, member: str) -> None:
    files = member_files(run, member)
    paths = DEFAULT_PATHS
    for cert_path, key_path in ((paths.server_cert, paths.server_key),
                                (paths.peer_cert, paths.peer_key),
                                (paths.healthcheck_cert, paths.healthcheck_key)):
        cert = x509.load_pem_x509_certificate(files[cert_path].encode())
        key = load_key(files[key_path])
        assert spki(key.public_key()) == spki(cert.public_key()), key_path


@pytest.mark.parametrize("member", MEMBERS)
def test_user_data_holds_no_ca_private_key(run: ProgramRun, member: str) -> None:
    ca_keys = {run.private_key_pems["client-ca-key"], run.private_key_pems["peer-ca-key"]}
    user_data = run.user_data[member]
    assert not any(key in user_data for key in ca_keys)
    # BEGIN and END lines of three keys (a script's pattern mentioning keys is no PEM line).
    boundaries = [line for line in user_data.splitlines()
                  if re.fullmatch(r"\s*-----(BEGIN|END) [A-Z ]*PRIVATE KEY-----", line)]
    assert len(boundaries) == 2 * 3


def test_member_keys_are_in_the_pem_form_pulumi_tls_emits(program: Any, run: ProgramRun) -> None:
    # etcd reads SEC 1 ("EC PRIVATE KEY") and PKCS#1 ("RSA PRIVATE KEY") as well as PKCS#8.
    assert member_files(run, "etcd-1")[DEFAULT_PATHS.server_key].startswith(
        "-----BEGIN EC PRIVATE KEY-----\n")
    rsa_run = program({"keyAlgorithm": "rsa-2048", "memberCount": 1})
    assert member_files(rsa_run, "etcd-1")[DEFAULT_PATHS.peer_key].startswith(
        "-----BEGIN RSA PRIVATE KEY-----\n")


@pytest.mark.parametrize("member", MEMBERS)
def test_user_data_key_files_are_readable_only_by_their_owner(
        run: ProgramRun, member: str) -> None:
    entries = {entry["path"]: entry
               for entry in yaml.safe_load(run.user_data[member])["write_files"]}
    paths = DEFAULT_PATHS
    for key_path, owner in ((paths.server_key, "etcd:etcd"), (paths.peer_key, "etcd:etcd"),
                            (paths.healthcheck_key, "root:root")):
        assert entries[key_path]["permissions"] == "0600", key_path
        assert entries[key_path]["owner"] == owner, key_path


def test_the_cas_are_protected_with_the_members_so_a_new_ca_is_refused_at_preview(
        run: ProgramRun, program: Any) -> None:
    # Running members trust only the CAs they booted with; a replaced CA would make every
    # member's next certificate untrusted, so the engine must refuse it (protectMembers).
    for name in ("client-ca", "peer-ca"):
        assert run.get(PRIVATE_KEY, f"{name}-key").protect, name
        assert run.get(SELF_SIGNED_CERT, f"{name}-cert").protect, name
    unprotected: ProgramRun = program({"protectMembers": False})
    assert not unprotected.get(SELF_SIGNED_CERT, "client-ca-cert").protect


def test_a_changed_key_algorithm_reissues_member_keys_but_keeps_the_ca_keys(
        run: ProgramRun) -> None:
    for name in ("client-ca", "peer-ca"):
        ignored = run.get(PRIVATE_KEY, f"{name}-key").ignore_changes
        assert {"algorithm", "ecdsaCurve", "rsaBits"} <= set(ignored), (name, ignored)
    for member in MEMBERS:
        assert not run.get(PRIVATE_KEY, f"{member}-server-key").ignore_changes
