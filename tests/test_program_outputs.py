"""The stack outputs other stacks read through StackReference (kubeadm, kube-apiserver, operators).

Values and secretness are those the program exports (`Output.is_secret()`) and, for secretness,
also as they reach the engine in the stack's RegisterResourceOutputs.
"""

from __future__ import annotations

import datetime
import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from program import DROPLET, ProgramRun

MEMBERS = ("etcd-1", "etcd-2", "etcd-3")
ENDPOINTS = [f"https://{member}.main.example.com:2379" for member in MEMBERS]
SECRET_OUTPUTS = {"apiserver_client_key_pem", "etcdctl_env"}
# What consumers of this stack read; renaming any of them breaks their StackReferences.
CONSUMED_OUTPUTS = {"etcd_servers", "endpoints", "ca_pem", "apiserver_client_cert_pem",
                    "apiserver_client_key_pem", "kubeadm_external_etcd", "etcdctl_env", "members",
                    "certificate_expiry", "etcd_version"}


@pytest.fixture(scope="module")
def run(program: Any) -> ProgramRun:
    result: ProgramRun = program()
    return result


def cert(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def spki(key: Any) -> bytes:
    data: bytes = key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    return data


def test_the_outputs_consumers_read_are_all_exported(run: ProgramRun) -> None:
    assert set(run.outputs) >= CONSUMED_OUTPUTS


def test_etcd_servers_is_the_comma_list_for_kube_apiserver(run: ProgramRun) -> None:
    assert run.output("etcd_servers") == ",".join(ENDPOINTS)


def test_endpoints_lists_every_member_client_url(run: ProgramRun) -> None:
    assert run.output("endpoints") == ENDPOINTS


@pytest.mark.parametrize("count", [1, 5])
def test_endpoints_follow_the_member_count(program: Any, count: int) -> None:
    run = program({"memberCount": count})
    assert len(run.output("endpoints")) == count
    assert run.output("etcd_servers").count("https://") == count
    assert len(run.output("members")) == count


def test_kubeadm_external_etcd_is_a_cluster_configuration_etcd_section(run: ProgramRun) -> None:
    section = yaml.safe_load(run.output("kubeadm_external_etcd"))
    assert section == {
        "etcd": {
            "external": {
                "endpoints": ENDPOINTS,
                "caFile": "/etc/kubernetes/pki/etcd/ca.crt",
                "certFile": "/etc/kubernetes/pki/apiserver-etcd-client.crt",
                "keyFile": "/etc/kubernetes/pki/apiserver-etcd-client.key",
            }
        }
    }


def test_ca_pem_is_the_client_ca_that_signed_every_server_certificate(run: ProgramRun) -> None:
    ca = cert(run.output("ca_pem"))
    certificates = run.certificates
    assert ca == certificates["client-ca-cert"]
    assert ca != certificates["peer-ca-cert"]
    for member in MEMBERS:
        certificates[f"{member}-server-cert"].verify_directly_issued_by(ca)


def test_apiserver_client_certificate_and_key_belong_together_and_chain_to_ca_pem(
        run: ProgramRun) -> None:
    client = cert(run.output("apiserver_client_cert_pem"))
    client.verify_directly_issued_by(cert(run.output("ca_pem")))
    usage = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    key = serialization.load_pem_private_key(run.output("apiserver_client_key_pem").encode(),
                                             password=None)
    assert spki(key.public_key()) == spki(client.public_key())


def test_members_lists_each_members_name_fqdn_and_addresses(run: ProgramRun) -> None:
    droplets = run.named(DROPLET)
    members = run.output("members")
    assert [member["name"] for member in members] == list(MEMBERS)
    for member in members:
        droplet = droplets[member["name"]]
        assert droplet.outputs is not None
        assert member["fqdn"] == f"{member['name']}.main.example.com"
        assert member["private_ipv4"] == droplet.outputs["ipv4AddressPrivate"]
        assert member["public_ipv4"] == droplet.outputs["ipv4Address"]
    assert len({member["private_ipv4"] for member in members}) == len(members)


def test_certificate_expiry_gives_every_certificates_real_expiry(run: ProgramRun) -> None:
    expiry = run.output("certificate_expiry")
    certificates = run.certificates
    assert set(expiry) == {name.removesuffix("-cert") for name in certificates}
    for name, moment in expiry.items():
        parsed = datetime.datetime.fromisoformat(moment.replace("Z", "+00:00"))
        assert parsed == certificates[f"{name}-cert"].not_valid_after_utc, name


def test_etcd_version_is_the_release_every_member_installs(program: Any) -> None:
    run = program({"etcdVersion": "3.5.21", "memberCount": 1})
    assert run.output("etcd_version") == "3.5.21"
    for member, user_data in run.user_data.items():
        commands = yaml.safe_load(user_data)["runcmd"]
        installs = [command for command in commands if command[0].endswith("/etcd-install")]
        assert [command[1] for command in installs] == ["3.5.21"], member


@pytest.mark.parametrize("name", sorted(SECRET_OUTPUTS))
def test_outputs_holding_a_private_key_are_secret(run: ProgramRun, name: str) -> None:
    output = run.outputs[name]
    assert output.secret
    assert output.secret_on_wire
    assert "PRIVATE KEY" in output.value


def test_no_plain_output_contains_a_private_key(run: ProgramRun) -> None:
    for name, output in run.outputs.items():
        if not output.secret:
            assert "PRIVATE KEY" not in json.dumps(output.value), name
            assert not output.secret_on_wire, name


def test_only_outputs_with_keys_are_secret(run: ProgramRun) -> None:
    # A secret that needs no secrecy hides diffs and forces --show-secrets on every consumer.
    assert {name for name, output in run.outputs.items() if output.secret} == SECRET_OUTPUTS


def test_etcdctl_env_sets_up_etcdctl_with_the_operator_certificate(
        run: ProgramRun, tmp_path: Path) -> None:
    script = tmp_path / "etcd.sh"
    script.write_text(run.output("etcdctl_env"))
    home = tmp_path / "home"
    home.mkdir()
    shown = subprocess.run(
        ["bash", "-c", '. "$1" && printf "%s\\n" "$ETCDCTL_API" "$ETCDCTL_ENDPOINTS" '
         '"$ETCDCTL_CACERT" "$ETCDCTL_CERT" "$ETCDCTL_KEY"', "bash", str(script)],
        env={"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    api, endpoints, ca_file, cert_file, key_file = shown
    # etcdctl 3.4+ speaks v3 by default, and 3.6 warns about ETCDCTL_API: it is not set.
    assert api == ""
    assert endpoints.split(",") == ENDPOINTS
    directory = home / ".config" / "etcd" / "main"
    assert [ca_file, cert_file, key_file] == [str(directory / name) for name in
                                              ("ca.crt", "operator.crt", "operator.key")]
    assert Path(ca_file).read_text() == run.output("ca_pem")
    operator = cert(Path(cert_file).read_text())
    assert operator == run.certificates["etcd-operator-cert"]
    operator.verify_directly_issued_by(cert(run.output("ca_pem")))
    key = serialization.load_pem_private_key(Path(key_file).read_bytes(), password=None)
    assert spki(key.public_key()) == spki(operator.public_key())
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
